"""Math tasks from real datasets, verified with math-verify.

Two layouts are read (parquet, JSONL or a JSON array, see `depo.data.io`):
- verl's: `prompt` (chat list), `reward_model.ground_truth`, `extra_info.index`
  (DAPO-Math-17K, the GRPO trajectories' prompts, GSM8K-difficulty);
- plain: `problem` or `question`, and `answer` or `final_answer` (MATH500, AIME, AMC,
  OlympiadBench, Minerva's answer file). GSM8K's worked answers end in `#### N`: N is the gold.

The verifier extracts the response's final answer (last `\\boxed{}` first, then any LaTeX or
plain expression) and compares it with the gold symbolically (fractions, decimals, sets,
intervals). math-verify uses `signal.alarm` for its timeouts, which only works in the main
thread; elsewhere (data-loader workers, servers) timeouts are disabled rather than crash.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from math_verify import parse, verify

from depo.data.io import chat_text, column, describe_columns, first_present, prompt_ids, read_table
from depo.errors import DepoError
from depo.tasks.base import Task

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""Appended to plain problems (the Qwen2.5-Math evaluation prompt); verl prompts keep their own."""

TEXT_COLUMNS = ("problem", "question")
ANSWER_COLUMNS = ("reward_model.ground_truth", "answer", "final_answer")
VERL_PROMPT = "prompt"

logging.getLogger("math_verify").setLevel(logging.ERROR)
_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def _timeout() -> int | None:
    """math-verify's default 5 s timeout in the main thread; None (disabled) elsewhere."""
    return 5 if threading.current_thread() is threading.main_thread() else None


def normalize_gold(value: Any) -> str:
    """A gold answer as one string: lists joined by ', ', `$...$` stripped, GSM8K's `#### N` -> N."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return ", ".join(normalize_gold(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if match := _GSM8K_ANSWER.search(text):
        text = match.group(1).replace(",", "").strip()
    if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$").strip()
    return text


@lru_cache(maxsize=65536)
def _parse_gold(gold: str) -> tuple:
    return tuple(parse(f"\\boxed{{{gold}}}", parsing_timeout=_timeout()))


def _plain(text: str) -> str:
    return re.sub(r"\s+", "", text).strip(".").lower()


def math_verify_reward(response: str, answer: str) -> float:
    """1.0 if the response's final answer equals the gold (math-verify), else 0.0.

    When math-verify can parse neither side, falls back to whitespace-insensitive string equality
    of the last `\\boxed{}` content with the gold.
    """
    gold = _parse_gold(normalize_gold(answer))
    boxed = last_boxed(response)  # the final answer is the last \boxed{}; math-verify would take the first
    predicted = parse(response if boxed is None else f"\\boxed{{{boxed}}}", parsing_timeout=_timeout())
    if gold and predicted:
        try:
            return 1.0 if verify(list(gold), predicted, timeout_seconds=_timeout()) else 0.0
        except Exception:  # sympy can raise on odd expressions; treat as not verified
            return 0.0
    return 1.0 if boxed is not None and _plain(boxed) == _plain(normalize_gold(answer)) else 0.0


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def load_math_tasks(path: str | Path, *, text_column: str | None = None, answer_column: str | None = None,
                    id_column: str | None = None, instruction: str = BOXED_INSTRUCTION,
                    limit: int | None = None) -> list[Task]:
    """Tasks from a verl-layout or plain math file; columns are auto-detected unless named.

    Task.prompt is what the policy reads (verl: the user message as stored; plain: the problem
    plus `instruction`); Task.text is what the difficulty estimator reads (the same user text).
    Task.meta keeps `source` and, when present, `level`, `type`/`subject`. Rows whose gold
    answer is empty are skipped with a warning (they cannot be rewarded).
    """
    frame = read_table(path)
    source = Path(path).name
    verl = text_column is None and first_present(frame, [VERL_PROMPT]) is not None
    text_name = text_column or (VERL_PROMPT if verl else first_present(frame, TEXT_COLUMNS))
    answer_name = answer_column or first_present(frame, ANSWER_COLUMNS)
    if text_name is None or answer_name is None:
        wanted = "problem text (" + "|".join((VERL_PROMPT, *TEXT_COLUMNS)) + ")" if text_name is None else ""
        if answer_name is None:
            wanted += (" and " if wanted else "") + "answer (" + "|".join(ANSWER_COLUMNS) + ")"
        hint = " (Minerva's answers are in minerva_math_with_answer.json)" if "minerva" in source.lower() else ""
        raise DepoError(f"{source} has no {wanted} column; columns found: {describe_columns(frame)}{hint}")
    texts = [chat_text(v) for v in column(frame, text_name, source=source)]
    answers = [normalize_gold(v) for v in column(frame, answer_name, source=source)]
    ids = prompt_ids(frame, id_column, source=source)
    meta_columns = [c for c in ("level", "type", "subject") if c in frame.columns]
    empty = [pid for pid, answer in zip(ids, answers) if not answer]
    if len(empty) == len(ids):
        raise DepoError(f"every gold answer in column {answer_name!r} of {source} is empty")
    if empty:  # real data has these (dsr1209 row 265): such a task cannot be rewarded, so skip it
        warnings.warn(f"{source}: skipped {len(empty)} rows with an empty gold answer (ids {empty[:5]})", stacklevel=2)
    tasks = []
    for row, (pid, text, answer) in enumerate(zip(ids, texts, answers)):
        if limit is not None and len(tasks) >= limit:
            break
        if not answer:
            continue
        is_chat = text_name == VERL_PROMPT or not isinstance(frame[text_name.split(".")[0]].iloc[row], str)
        prompt = text if is_chat or not instruction else f"{text}\n{instruction}"
        meta = {"source": source, **{c: frame[c].iloc[row] for c in meta_columns}}
        tasks.append(Task(pid, prompt, answer, math_verify_reward, text=text, meta=meta))
    return tasks


def verify_golds(answers: Sequence[str]) -> dict[str, bool]:
    """For each distinct gold, whether `\\boxed{gold}` verifies against it (a data self-check)."""
    return {a: math_verify_reward(f"The answer is \\boxed{{{a}}}.", a) == 1.0 for a in dict.fromkeys(answers)}
