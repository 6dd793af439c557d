"""`python -m depo.bench.per_task`: per-task held-out Avg@k of a `depo bench train` run's final policies."""

from __future__ import annotations

import pytest

from depo.bench.per_task import main
from depo.errors import DepoError
from depo.policy import load_policy
from depo.rl.checkpoint import save_checkpoint
from depo.rl.config import TrainConfig
from depo.rl.run_dir import RunDirectory


def _bench_dir(tmp_path, policy_dir, seeds_by_method, **config):
    """A bench-train layout: runs/METHOD/seedN/ with the run's config.yaml and checkpoints."""
    model, tokenizer = load_policy(policy_dir)
    for method, seeds in seeds_by_method.items():
        for seed, steps in seeds.items():
            run = RunDirectory(tmp_path / "runs" / method / f"seed{seed}")
            run.claim(TrainConfig.build({"model": policy_dir, "preset": "mixed", **config}))
            for step in steps:
                save_checkpoint(run.checkpoints, step, model, tokenizer, state={"step": step})
    return tmp_path


def test_a_row_per_task_and_a_column_per_method_beside_the_start(random_policy_dir, tmp_path, capsys):
    # the policies are all the random start, so every column must equal the start's
    # depo's seed 2 was killed before its first checkpoint: passed over
    bench = _bench_dir(tmp_path, random_policy_dir, {"grpo": {0: [1, 2]}, "depo": {0: [2], 1: [1], 2: []}})
    assert main([str(bench), "--preset", "mixed", "--methods", "grpo,depo,dapo", "--n", "12", "--k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| task (12 held-out prompts, Avg@2) | start | grpo (1 seeds) | depo (2 seeds) |"
    rows = [line.strip("|").split("|") for line in lines[2:]]
    assert rows[0][0].strip() == "all" and len(rows) > 2  # the overall figure, then one row per gym task
    for row in rows:
        start, *methods = (float(v) for v in row[1:])
        assert methods == [start, start]


def test_a_directory_without_trained_policies_is_one_line(tmp_path, random_policy_dir):
    with pytest.raises(DepoError, match="is not the output directory"):
        main([str(tmp_path), "--preset", "mixed"])
    bench = _bench_dir(tmp_path, random_policy_dir, {"grpo": {0: []}})
    with pytest.raises(DepoError, match="holds no trained policy of grpo"):
        main([str(bench), "--preset", "mixed", "--methods", "grpo"])


def test_answers_are_as_long_as_the_runs_generated(tmp_path, random_policy_dir, monkeypatch):
    import depo.bench.per_task as per_task

    lengths = []
    real = per_task.evaluate
    monkeypatch.setattr(per_task, "evaluate", lambda *a, **kw: lengths.append(kw["max_new_tokens"]) or real(*a, **kw))
    bench = _bench_dir(tmp_path, random_policy_dir, {"grpo": {0: [1]}}, max_completion_length=5)
    assert main([str(bench), "--preset", "mixed", "--methods", "grpo", "--n", "4", "--k", "1"]) == 0
    assert lengths == [5, 5]  # the start and the final policy, with the run's max_completion_length
