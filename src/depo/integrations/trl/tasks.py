"""depo's tasks (reasoning-gym presets, math files) as a TRL prompt dataset and reward function.

TRL's GRPOTrainer reads a `datasets.Dataset` with a `prompt` column and calls reward functions
as `f(prompts=..., completions=..., **columns)`. These helpers turn `depo.tasks.base.Task`s into that
shape, so the embedded default (tiny policy + gym preset) and a real chat model share one path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset

from depo.tasks.base import Task, score_responses

CHAT_INSTRUCTION = "Reply with the final answer only."
"""What a chat model is told after a gym task's natural question (the verifiers compare answers)."""


def tasks_dataset(tasks: Sequence[Task], *, chat: bool = False, suffix: str = "", instruction: str | None = CHAT_INSTRUCTION):
    """A TRL prompt dataset: `prompt` (what the policy reads), `text` (what the estimator reads),
    `prompt_id`.

    With `chat`, the prompt is one user message (for real chat models): the natural question and
    `instruction`, or with `instruction=None` the task's own prompt as written (math files' tasks,
    `depo.tasks.math.load_math_tasks`, already carry theirs: "put your final answer within
    \\boxed{}"). Otherwise the compact prompt the tiny policy was trained on, plus `suffix`:
    TRL tokenizes prompts with add_special_tokens=False, so the tiny policy's separator token
    (which its tokenizer appends by itself elsewhere) must be written into the text."""
    def prompt(t: Task):
        if not chat:
            return t.prompt + suffix
        return [{"role": "user", "content": t.prompt if instruction is None else f"{t.text}\n{instruction}"}]

    return Dataset.from_dict(
        {
            "prompt": [prompt(t) for t in tasks],
            "text": [t.text for t in tasks],
            "prompt_id": [t.prompt_id for t in tasks],
        }
    )


def task_reward(tasks: Sequence[Task]):
    """A TRL reward function scoring each completion with its task's verifier (reward in [0, 1])."""
    by_id = {t.prompt_id: t for t in tasks}

    def reward(completions: list, prompt_id: list[str], **kwargs: Any) -> list[float]:
        return [score_responses(by_id[pid], [c if isinstance(c, str) else c[-1]["content"]])[0][0]
                for c, pid in zip(completions, prompt_id)]

    reward.__name__ = "task_reward"
    return reward
