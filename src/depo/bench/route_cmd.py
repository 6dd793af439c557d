"""`depo bench route`: routing curves (accuracy vs share to the small model); see depo.bench.route."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "route",
        help="route queries between a small and a large model: accuracy vs share sent to small",
        description="Train pass-rate predictors for two models, sweep the routing rules, report curves and tables.",
    )
    parser.add_argument("--train", type=Path, required=True, help="parquet/JSONL with texts and both models' success rates")
    parser.add_argument("--test", type=Path, help="separate test file (default: hold out --holdout-fraction of --train)")
    parser.add_argument("--holdout-fraction", type=float, default=0.2, help="held-out share, by a seeded hash of the prompt id")
    parser.add_argument("--small", required=True, help="column of the small model's success rates")
    parser.add_argument("--large", required=True, help="column of the large model's success rates")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_route"), help="results.json, results.md, plot")
    parser.add_argument("--figures-dir", default=None, help="also copy the plot here (e.g. docs/figures; '' = nowhere)")
    parser.add_argument("--text-column", default="problem")
    parser.add_argument("--id-column", help="prompt id column (default: the first of prompt_id, extra_info.index, idx, id, ...)")
    parser.add_argument("--cost-small", type=float, default=1.5, help="cost per query of the small model (e.g. params, B)")
    parser.add_argument("--cost-large", type=float, default=7.0)
    parser.add_argument("--no-estimator", action="store_true", help="TF-IDF ridge only (skip the DEPO estimators: trunk and bayes)")
    parser.add_argument("--no-trunk", action="store_true", help="skip the paper's trunk estimators (keep TF-IDF and bayes)")
    parser.add_argument("--epochs", type=int, default=30, help="most trunk epochs (best on a validation part of train)")
    parser.add_argument("--save-estimators", type=Path, help="save the two trained estimators here (for depo route serve)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 2; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a <= 1 minute run on a few rows (tests, CI)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depo.bench.route import RouteBenchConfig, run_bench
    from depo.errors import DepoError

    if not 0.0 < args.holdout_fraction < 1.0:
        raise DepoError(f"--holdout-fraction must be in (0, 1), got {args.holdout_fraction}")
    if args.epochs < 1:
        raise DepoError("--epochs must be >= 1")
    cfg = RouteBenchConfig(
        train=args.train,
        test=args.test,
        holdout_fraction=args.holdout_fraction,
        small=args.small,
        large=args.large,
        out=args.out,
        figures_dir=args.figures_dir,
        text_column=args.text_column,
        id_column=args.id_column,
        cost_small=args.cost_small,
        cost_large=args.cost_large,
        estimator=not args.no_estimator,
        trunk=not args.no_trunk,
        epochs=args.epochs,
        save_estimators=args.save_estimators,
        seed=args.seed,
        threads=args.threads,
        quick=args.quick,
    )
    run_bench(cfg)
    return 0
