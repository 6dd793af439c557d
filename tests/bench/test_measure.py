"""`python -m depo.bench.measure --dump`: per-prompt pass rates as an estimator training file."""

from __future__ import annotations

from depo.bench.measure import write_pass_rates
from depo.data.io import read_table
from depo.tasks.base import Task
from depo.tasks.gym import exact_match


def test_dumped_pass_rates_read_back_as_an_estimator_training_table(tmp_path):
    tasks = [Task("a/1", "sum 1 + 2", "3", exact_match, text="What is 1 + 2?"),
             Task("a/2", "mul 9 * 9", "81", exact_match, text="What is 9 * 9?")]
    path = tmp_path / "rates.jsonl"
    write_pass_rates(str(path), tasks, [0.875, 0.0])
    table = read_table(path)
    assert list(table["prompt_id"]) == ["a/1", "a/2"]
    assert list(table["text"]) == ["What is 1 + 2?", "What is 9 * 9?"]
    assert list(table["pass_rate"]) == [0.875, 0.0]
