"""`depo bench replay`: selectors replayed on real GRPO trajectories (argparse only; work in run_replay)."""

from __future__ import annotations

import argparse

from depo.bench.replay import METHODS, ReplayConfig, run_replay
from depo.config import add_arguments, from_arguments

FLAGS = (
    "trajectories", "prompts", "group_size", "batch_size", "seed", "out", "figures_dir", "methods", "text_column",
    "id_column", "epochs", "max_prompts", "part", "estimator_init", "quick", "threads", "screen",
)  # fmt: skip
"""Settings that have their own flag (`--field-name`); selector and estimator options are
`--set options.depo.threshold=0.6` and `--set estimator.lr=1e-3`."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay selectors epoch by epoch on a real GRPO run's recorded group outcomes",
        description="Each method decides per epoch which prompts to roll out, seeing only prompt texts and its "
        "own earlier outcomes; reports effective rate, recall of informative groups and rollout cost "
        "against dynamic sampling, for " + ", ".join(METHODS) + " in one run. Needs trajectories and prompts; "
        "selector options: --set options.METHOD.KEY=VALUE, estimator options: --set estimator.KEY=VALUE.",
    )
    add_arguments(p, ReplayConfig, FLAGS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_replay(from_arguments(ReplayConfig, args, what="bench replay"))
    return 0
