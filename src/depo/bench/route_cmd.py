"""`depo bench route`: routing curves (accuracy vs share to the small model); see depo.bench.route."""

from __future__ import annotations

import argparse

from depo.bench.route import RouteBenchConfig, run_bench
from depo.config import add_arguments, from_arguments

FLAGS = (
    "train", "test", "holdout_fraction", "small", "large", "out", "figures_dir", "text_column", "id_column",
    "cost_small", "cost_large", "epochs", "save_estimators", "seed", "threads", "quick",
)  # fmt: skip
"""Settings that have their own flag (`--field-name`); every other one is `--set name=value`."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "route",
        help="route queries between a small and a large model: accuracy vs share sent to small",
        description="Train pass-rate predictors for two models, sweep the routing rules, report curves and tables. "
        "Needs train, small and large.",
    )
    add_arguments(parser, RouteBenchConfig, FLAGS)
    parser.add_argument("--no-estimator", dest="flag:estimator", action="store_const", const="false",
                        help="TF-IDF ridge only: skip the DEPO estimators, trunk and bayes (`estimator: false`)")
    parser.add_argument("--no-trunk", dest="flag:trunk", action="store_const", const="false",
                        help="skip the paper's trunk estimators, keep TF-IDF and bayes (`trunk: false`)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_bench(from_arguments(RouteBenchConfig, args, what="bench route"))
    return 0
