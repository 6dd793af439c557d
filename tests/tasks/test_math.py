"""Math tasks: both layouts load, the verifier handles boxed answers, fractions and decimals,
and every gold answer of the shared real datasets verifies against itself written as \\boxed{...}."""

from __future__ import annotations

import json
import threading
from multiprocessing import get_context

import pandas as pd
import pytest

from depo.errors import DepoError
from depo.paths import shared_data_dir
from depo.tasks.math import last_boxed, load_math_tasks, math_verify_reward, normalize_gold, verify_golds


@pytest.mark.parametrize(
    ("response", "gold", "reward"),
    [
        ("so the answer is \\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("\\boxed{0.5}", "\\frac12", 1.0),
        ("\\boxed{3/7}", "\\frac{3}{7}", 1.0),
        ("we get \\boxed{2} first, then \\boxed{4}", "4", 1.0),
        ("\\boxed{5}", "4", 0.0),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", 1.0),
        ("no answer here", "4", 0.0),
        ("\\boxed{1,000,000}", "1000000", 1.0),
    ],
)
def test_verifier(response, gold, reward):
    assert math_verify_reward(response, gold) == reward


def test_verifier_works_outside_the_main_thread():
    results = []
    thread = threading.Thread(target=lambda: results.append(math_verify_reward("\\boxed{\\frac{2}{4}}", "0.5")))
    thread.start()
    thread.join()
    assert results == [1.0]


def test_gold_normalisation():
    assert normalize_gold("Janet sells 9 eggs.\n#### 1,018") == "1018"
    assert normalize_gold(["$\\frac{1}{2}$"]) == "\\frac{1}{2}"
    assert normalize_gold(["9.6\n"]) == "9.6"
    assert normalize_gold(27.0) == "27"
    assert last_boxed("\\boxed{\\frac{a}{b}} x") == "\\frac{a}{b}"


def test_both_layouts(tmp_path):
    verl = pd.DataFrame(
        {
            "prompt": [[{"role": "user", "content": "Compute 1/2+1/4. Answer in \\boxed{}."}]],
            "reward_model": [{"ground_truth": "\\frac{3}{4}", "style": "rule"}],
            "extra_info": [{"index": 7}],
        }
    )
    verl.to_parquet(tmp_path / "v.parquet")
    (task,) = load_math_tasks(tmp_path / "v.parquet")
    assert (task.prompt_id, task.answer, task.text) == ("7", "\\frac{3}{4}", task.prompt)
    assert task.reward("... \\boxed{0.75}") == 1.0
    rows = [{"question": "Tom has 3 apples and buys 4.", "answer": "3 + 4 = 7\n#### 7", "idx": 1}]
    (tmp_path / "g.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (task,) = load_math_tasks(tmp_path / "g.jsonl")
    assert task.answer == "7" and task.text == rows[0]["question"] and "\\boxed{}" in task.prompt
    assert task.reward("\\boxed{7}") == 1.0 and task.reward("\\boxed{8}") == 0.0


def test_missing_answer_column_names_the_columns(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"problem": "x", "solution": "y"}))
    with pytest.raises(DepoError, match="no answer .* columns found: problem, solution"):
        load_math_tasks(tmp_path / "m.jsonl")


def test_empty_golds_are_skipped_with_a_warning(tmp_path):
    rows = [{"problem": "a", "answer": ""}, {"problem": "b", "answer": "2"}]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.warns(UserWarning, match="empty gold"):
        tasks = load_math_tasks(tmp_path / "e.jsonl")
    assert [t.prompt_id for t in tasks] == ["1"]


SHARED = shared_data_dir()
SHARED_FILES = [
    "dapo_math_17k.parquet",
    "benchmarks/math500_test.jsonl",
    "benchmarks/gsm8k_test.jsonl",
    "benchmarks/aime24_test.jsonl",
    "benchmarks/aime25_test.jsonl",
    "benchmarks/amc23_test.jsonl",
    "benchmarks/olympiadbench_test.jsonl",
    "benchmarks/minerva_math_with_answer.json",
]


@pytest.mark.shared
@pytest.mark.skipif(SHARED is None, reason="../shared/data not present (real datasets are not in the repo)")
def test_every_shared_gold_verifies_against_itself_boxed():
    answers: dict[str, list[str]] = {}
    for name in SHARED_FILES:
        tasks = load_math_tasks(SHARED / name)
        assert len(tasks) > 0
        answers[name] = sorted({t.answer for t in tasks})
    unique = sorted({a for values in answers.values() for a in values})
    chunks = [unique[i::2] for i in range(2)]  # distinct answers only, in two processes: < 60 s
    with get_context("spawn").Pool(2) as pool:
        results = {}
        for part in pool.map(verify_golds, chunks):
            results.update(part)
    failed = {name: [a for a in values if not results[a]] for name, values in answers.items()}
    assert all(not f for f in failed.values()), failed
