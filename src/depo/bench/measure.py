"""Measure a preset's difficulty spread for a policy: zero-variance, all-correct, all-wrong.

    python -m depo.bench.measure --preset mixed [--n 500 --group-size 8 --policy DIR]

The presets are tuned with it: with the warm-started tiny policy, `mixed` is meant to give
35-65% zero-variance groups (all G rewards equal), >= 10% all-correct and >= 10% all-wrong
on 500 train prompts with G = 8 at temperature 1.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from depo.config import Config, parse_command
from depo.errors import run_command
from depo.policy import build_tiny_policy, load_policy
from depo.policy.sampling import sample
from depo.tasks.base import Task
from depo.tasks.gym import preset_tasks


def measure(
    model, tokenizer, tasks: Sequence[Task], *, group_size: int = 8, temperature: float = 1.0,
    max_new_tokens: int = 16, seed: int = 0, batch_size: int = 512,
) -> dict:
    """Group statistics of `group_size` samples per task; per-component Avg@G under 'by_component'."""
    gen = torch.Generator().manual_seed(seed)
    ro = sample(
        model, tokenizer, [t.prompt for t in tasks], group_size, max_new_tokens=max_new_tokens,
        temperature=temperature, generator=gen, batch_size=batch_size,
    )
    rewards: list[list[float]] = [[] for _ in tasks]
    for i, text in zip(ro.prompt_index, ro.response_text):
        rewards[i].append(tasks[i].reward(text))
    means = [sum(g) / len(g) for g in rewards]
    n = len(tasks)
    by_comp: dict[str, list[float]] = defaultdict(list)
    for t, m in zip(tasks, means):
        by_comp[t.meta.get("component", t.meta.get("task", "?"))].append(m)
    return {
        "n": n,
        "group_size": group_size,
        "zero_variance": sum(m in (0.0, 1.0) for m in means) / n,
        "all_correct": sum(m == 1.0 for m in means) / n,
        "all_wrong": sum(m == 0.0 for m in means) / n,
        "avg_at_g": sum(means) / n,
        "truncated": sum(ro.truncated) / len(ro.truncated),
        "by_component": {k: (len(v), sum(v) / len(v)) for k, v in sorted(by_comp.items())},
        "pass_rates": means,
    }


def write_pass_rates(path: str | Path, tasks: Sequence[Task], pass_rates: Sequence[float]) -> None:
    """JSONL of prompt_id, text (what the estimator reads) and pass_rate: a training file for
    `depo bench estimator --save DIR`, whose DIR then warm-starts DEPO (`estimator_init`)."""
    with open(path, "w", encoding="utf-8") as fh:
        for task, rate in zip(tasks, pass_rates):
            fh.write(json.dumps({"prompt_id": task.prompt_id, "text": task.text, "pass_rate": rate}) + "\n")


class MeasureConfig(Config):
    """Settings of `python -m depo.bench.measure` (each a flag of the same name, or `--set name=value`)."""

    preset: str = "mixed"
    """Task preset whose prompts are measured (mixed, easy, hard)."""
    split: Literal["train", "heldout"] = "train"
    n: int = Field(500, ge=1)
    """Prompts measured."""
    group_size: int = Field(8, ge=1)
    """Samples per prompt (G)."""
    temperature: float = Field(1.0, gt=0.0)
    max_new_tokens: int = Field(16, ge=1)
    seed: int = 0
    policy: Path | None = None
    """Hugging Face model directory (default: the preset's tiny policy)."""
    policy_preset: str | None = None
    """Build the tiny policy of this preset instead."""
    threads: int = Field(1, ge=1)
    """torch CPU threads."""
    dump: Path | None = None
    """Also write per-prompt pass rates to this JSONL file (a `depo bench estimator` training table)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(MeasureConfig, argv, prog="python -m depo.bench.measure", description=__doc__.splitlines()[0])
    torch.set_num_threads(args.threads)
    t0 = time.time()
    path = args.policy or build_tiny_policy(args.policy_preset or args.preset)
    t1 = time.time()
    model, tok = load_policy(path)
    tasks = preset_tasks(args.preset, args.split, args.n, seed=args.seed)
    stats = measure(
        model, tok, tasks, group_size=args.group_size, temperature=args.temperature,
        max_new_tokens=args.max_new_tokens, seed=args.seed,
    )
    t2 = time.time()
    if args.dump:
        write_pass_rates(args.dump, tasks, stats["pass_rates"])
    g = args.group_size
    print(f"policy {path} (ready in {t1 - t0:.1f}s)")
    print(f"preset {args.preset} split {args.split} n={stats['n']} G={g} T={args.temperature}")
    print(
        f"zero-var {stats['zero_variance']:.1%}  all-correct {stats['all_correct']:.1%}  "
        f"all-wrong {stats['all_wrong']:.1%}  Avg@{g} {stats['avg_at_g']:.3f}  "
        f"truncated {stats['truncated']:.1%}  (measured in {t2 - t1:.1f}s)"
    )
    for name, (count, acc) in stats["by_component"].items():
        print(f"  {name:8s} n={count:4d}  Avg@{g} {acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main, "python -m depo.bench.measure"))
