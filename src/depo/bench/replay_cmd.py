"""`depo bench replay`: selectors replayed on real GRPO trajectories (argparse only; work in run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from depo.errors import DepoError

METHODS = ("uniform", "dynamic-sampling", "history", "depo-paper", "depo", "oracle")


def _options(items: list[str]) -> dict[str, dict]:
    """`--option depo.threshold=0.6` -> {"depo": {"threshold": 0.6}} (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise DepoError(f"--option wants METHOD.KEY=VALUE (e.g. depo.threshold=0.6), got {item!r}")
        out.setdefault(method, {})[name] = yaml.safe_load(value)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay selectors epoch by epoch on a real GRPO run's recorded group outcomes",
        description="Each method decides per epoch which prompts to roll out, seeing only prompt texts and its "
        "own earlier outcomes; reports effective rate, recall of informative groups and rollout cost "
        "against dynamic sampling, for " + ", ".join(METHODS) + " in one run.",
    )
    p.add_argument("--trajectories", type=Path, required=True, help="JSON: prompt id -> per-epoch share correct")
    p.add_argument("--prompts", type=Path, required=True, help="prompts (verl parquet or JSONL) keyed by the same ids")
    p.add_argument("--group-size", type=int, default=8, help="rollouts per group in the recorded run")
    p.add_argument("--batch-size", type=int, default=128, help="candidates per decision and groups per RL step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="directory for results.json, results.md and plots")
    p.add_argument("--figures-dir", default=None, help="also copy plots here as bench_replay_*.png ('' = nowhere)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma list of methods to replay")
    p.add_argument("--text-column", default=None, help="prompt text column (default: prompt|problem|question)")
    p.add_argument("--id-column", default=None, help="prompt id column (default: extra_info.index, idx, ...)")
    p.add_argument("--epochs", type=int, default=None, help="replay only the first N epochs")
    p.add_argument("--max-prompts", type=int, default=None, help="replay a seeded subset of prompts")
    p.add_argument("--part", choices=("tune", "eval"), default=None,
                   help="replay one half of the prompts (hash of the id): choose options on tune, report on eval")
    p.add_argument("--option", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="selector option, e.g. depo.threshold=0.6 or history.p_min=0.05 (repeatable)")
    p.add_argument("--estimator-option", action="append", default=[], metavar="KEY=VALUE",
                   help="EstimatorConfig override for depo/depo-paper, e.g. lr=1e-3 (repeatable)")
    p.add_argument("--estimator-init", type=Path, default=None, help="start depo/depo-paper from a saved estimator")
    p.add_argument("--quick", action="store_true", help="<= 1 minute smoke run on a few prompts and epochs (CI)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 2; 1 in --quick)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depo.bench.replay import ReplayConfig, run_replay

    estimator = {k: v for k, v in _options([f"e.{item}" for item in args.estimator_option]).get("e", {}).items()}
    cfg = ReplayConfig(
        trajectories=args.trajectories,
        prompts=args.prompts,
        group_size=args.group_size,
        batch_size=args.batch_size,
        seed=args.seed,
        out=args.out,
        figures_dir=args.figures_dir,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        text_column=args.text_column,
        id_column=args.id_column,
        epochs=args.epochs,
        max_prompts=args.max_prompts,
        part=args.part,
        options=_options(args.option),
        estimator=estimator,
        estimator_init=args.estimator_init,
        quick=args.quick,
        threads=args.threads,
    )
    run_replay(cfg)
    return 0
