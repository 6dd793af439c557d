"""depo's tasks as TRL's prompt dataset and reward function: gym tasks for the tiny policy or a
chat model, and a math file's tasks with their own boxed-answer instruction."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

from depo.integrations.trl.tasks import CHAT_INSTRUCTION, task_reward, tasks_dataset  # noqa: E402
from depo.tasks.base import Task  # noqa: E402
from depo.tasks.math import BOXED_INSTRUCTION, load_math_tasks  # noqa: E402


def exact(response: str, answer: str) -> float:
    return float(response.strip() == answer)


TASKS = [
    Task("a", "sum 1 + 2", "3", exact, text="What is 1 + 2?"),
    Task("b", "sum 2 + 2", "4", exact, text="What is 2 + 2?"),
]


def test_tasks_dataset_plain_and_chat() -> None:
    plain = tasks_dataset(TASKS)
    assert plain["prompt"] == ["sum 1 + 2", "sum 2 + 2"]
    assert plain["text"] == ["What is 1 + 2?", "What is 2 + 2?"]
    assert plain["prompt_id"] == ["a", "b"]
    chat = tasks_dataset(TASKS, chat=True)
    assert chat["prompt"][0][0]["role"] == "user" and chat["prompt"][0][0]["content"].startswith("What is 1 + 2?")


def test_task_reward_scores_by_prompt_id_for_text_and_chat_completions() -> None:
    reward = task_reward(TASKS)
    assert reward(completions=["3", "5", " 4 "], prompt_id=["a", "a", "b"]) == [1.0, 0.0, 1.0]
    chat = [[{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "3"}]]
    assert reward(completions=chat, prompt_id=["b", "b"], trainer_state=None) == [1.0, 0.0]


def test_a_math_files_tasks_keep_their_own_instruction_and_are_rewarded_by_math_verify(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"problem": "What is 1/2 + 1/4?", "answer": "3/4"}) + "\n")
    tasks = load_math_tasks(tmp_path / "m.jsonl")
    (message,) = tasks_dataset(tasks, chat=True, instruction=None)["prompt"][0]
    assert message["content"] == f"What is 1/2 + 1/4?\n{BOXED_INSTRUCTION}"
    assert CHAT_INSTRUCTION not in message["content"]  # not the gym tasks' "final answer only"
    assert tasks_dataset(tasks)["text"] == ["What is 1/2 + 1/4?"]  # what the estimator reads: the bare question
    reward = task_reward(tasks)
    pid = tasks[0].prompt_id
    assert reward(completions=["so \\boxed{0.75}", "\\boxed{\\frac{3}{4}}", "\\boxed{1}"], prompt_id=[pid] * 3) == [1.0, 1.0, 0.0]
