"""`python -m depo.bench.measure`: a preset's difficulty spread for a policy; `--dump` writes the
per-prompt pass rates as an estimator training file."""

from __future__ import annotations

from depo.bench.measure import main, write_pass_rates
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


def test_the_printed_spread_is_that_of_the_dumped_pass_rates(random_policy_dir, tmp_path, capsys):
    dump = tmp_path / "rates.jsonl"
    argv = ["--policy", random_policy_dir, "--n", "16", "--group-size", "2", "--max-new-tokens", "2", "--dump", str(dump)]
    assert main(argv) == 0
    rates = list(read_table(dump)["pass_rate"])
    assert len(rates) == 16 and set(rates) <= {0.0, 0.5, 1.0}  # k / G with G = 2
    zero_var, correct, wrong = (sum(r in v for r in rates) / 16 for v in ((0.0, 1.0), (1.0,), (0.0,)))
    out = capsys.readouterr().out
    assert f"zero-var {zero_var:.1%}  all-correct {correct:.1%}  all-wrong {wrong:.1%}  Avg@2 {sum(rates) / 16:.3f}" in out
    counts = [int(line.split("n=")[1].split()[0]) for line in out.splitlines() if line.startswith("  ")]
    assert len(counts) > 1 and sum(counts) == 16  # a row per gym task, every prompt in one of them
