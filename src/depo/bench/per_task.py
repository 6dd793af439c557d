"""Held-out Avg@8 per gym task of the final policies of a `depo bench train` run.

    python -m depo.bench.per_task runs/bench-train-easy --preset easy

Evaluates each method's final checkpoint (every seed) on `--n` held-out prompts of the preset,
with one fixed evaluation seed for all of them, and prints a markdown table of the per-task
Avg@8, mean over seeds, beside the starting policy's. Answers "where does a method gain or
lose?" (BENCHMARKS.md section 9).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from transformers.utils import logging as hf_logging

from depo.bench.report import Col, markdown_table
from depo.bench.train import DEFAULT_METHODS, final_policy
from depo.config import CommaList, Config, parse_command
from depo.errors import DepoError, run_command
from depo.policy import load_policy
from depo.rl.checkpoint import list_checkpoints
from depo.rl.config import load_config
from depo.rl.evaluation import evaluate
from depo.rl.trainer import resolve_model_path
from depo.tasks.gym import preset_tasks


class PerTaskConfig(Config):
    """Settings of `python -m depo.bench.per_task` (each a flag of the same name, or `--set name=value`)."""

    bench_dir: Path
    """The output directory of a `depo bench train` run."""
    preset: str
    """The preset that run trained on (its held-out prompts are evaluated)."""
    methods: CommaList = DEFAULT_METHODS
    """Methods whose final policies are evaluated (those the run has)."""
    n: int = Field(400, ge=1)
    """Held-out prompts."""
    k: int = Field(8, ge=1)
    """Samples per prompt (Avg@k)."""
    seed: int = 0
    """Evaluation sampling seed (the same for every policy)."""


def main(argv: list[str] | None = None) -> int:
    args = parse_command(PerTaskConfig, argv, prog="python -m depo.bench.per_task", description=__doc__.splitlines()[0],
                         positional=["bench_dir"])
    if not (args.bench_dir / "runs").is_dir():
        raise DepoError(f"{args.bench_dir} is not the output directory of a `depo bench train` run (no runs/ in it)")
    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    tasks = preset_tasks(args.preset, "heldout", args.n, seed=0)

    def score(path: Path, max_new_tokens: int) -> dict[str, float]:
        model, tokenizer = load_policy(path)
        out = evaluate(model, tokenizer, tasks, k=args.k, max_new_tokens=max_new_tokens, seed=args.seed, per_task=True)
        return {key.removeprefix(f"eval/avg@{args.k}").lstrip("/") or "all": v for key, v in out.items()
                if key.startswith(f"eval/avg@{args.k}")}

    columns: dict[str, dict[str, float]] = {}
    for method in args.methods:
        runs = sorted((args.bench_dir / "runs" / method).glob("seed*"))
        finals = [final_policy(r) for r in runs if list_checkpoints(r / "checkpoints")]
        if not finals:
            continue
        run_cfg = load_config(runs[0] / "config.yaml")  # answers as long as the runs generated
        if "start" not in columns:
            columns["start"] = score(resolve_model_path(run_cfg), run_cfg.max_completion_length)
        per_seed = [score(f, run_cfg.max_completion_length) for f in finals]
        columns[f"{method} ({len(finals)} seeds)"] = {k: float(np.mean([s[k] for s in per_seed])) for k in per_seed[0]}
    if not columns:
        raise DepoError(f"{args.bench_dir} holds no trained policy of {', '.join(args.methods)} "
                        "(runs/METHOD/seed*/checkpoints/step_*)")
    first = f"task ({args.n} held-out prompts, Avg@{args.k})"
    rows = [{first: task, **{name: scores[task] for name, scores in columns.items()}} for task in next(iter(columns.values()))]
    print(markdown_table(rows, [Col(name, name) for name in columns], name_key=first))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main, "python -m depo.bench.per_task"))
