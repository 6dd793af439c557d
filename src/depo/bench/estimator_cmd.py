"""`depo bench estimator`: estimator quality on real LLM success rates (argparse only; work in run_bench)."""

from __future__ import annotations

import argparse

from depo.bench.estimator import EstimatorBenchConfig, run_bench
from depo.config import add_arguments, from_arguments

FLAGS = (
    "train", "test", "holdout_fraction", "target", "text_column", "id_column", "level_column", "group_size",
    "seed", "out", "save", "save_variant", "figures_dir", "variants", "pooling", "max_length", "lr", "epochs",
    "batch_size", "full_epochs", "full_max_length", "full_max_rows", "normalize_latex", "quick", "threads",
)  # fmt: skip
"""Settings that have their own flag (`--field-name`); every other one is `--set name=value`."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "estimator",
        help="train pass-rate predictors offline on real success rates and compare them on held-out rows",
        description="Train the DEPO estimator (full fine-tuning and frozen encoder + trunk) and baselines "
        "(constant mean, per-level mean, TF-IDF + ridge) on one split; report Spearman, Pearson, MAE, ECE, "
        "zero-variance AUC at group size G, and effective rates of kept prompts. Needs train and target.",
    )
    add_arguments(p, EstimatorBenchConfig, FLAGS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_bench(from_arguments(EstimatorBenchConfig, args, what="bench estimator"))
    return 0
