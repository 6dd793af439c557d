"""`depo bench estimator`: estimator quality on real LLM success rates (argparse only; work in run)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "estimator",
        help="train pass-rate predictors offline on real success rates and compare them on held-out rows",
        description="Train the DEPO estimator (full fine-tuning and frozen encoder + trunk) and baselines "
        "(constant mean, per-level mean, TF-IDF + ridge) on one split; report Spearman, Pearson, MAE, ECE, "
        "zero-variance AUC at group size G, and effective rates of kept prompts.",
    )
    p.add_argument("--train", type=Path, required=True, help="parquet/JSONL/JSON file with texts and pass rates")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--test", type=Path, default=None, help="separate test file (same columns)")
    split.add_argument("--holdout-fraction", type=float, default=0.2, help="held-out share, hashed by prompt id")
    p.add_argument("--target", required=True, help="pass-rate column, e.g. sr_qwen2.5-1.5b-instruct_k50_t1.0")
    p.add_argument("--text-column", default="problem", help="prompt text column (verl: prompt)")
    p.add_argument("--id-column", default=None, help="prompt id column (default: first of prompt_id, extra_info.index, idx, id)")
    p.add_argument("--level-column", default="level", help="column for the per-level baseline, when present")
    p.add_argument("--group-size", type=int, default=8, help="G for zero-variance metrics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="directory for results.json, results.md and plots")
    p.add_argument("--save", type=Path, default=None, help="save the trained estimator here (depo.estimator.load_estimator)")
    p.add_argument("--save-variant", choices=("frozen", "full", "bayes"), default="frozen", help="which variant --save stores")
    p.add_argument("--figures-dir", default=None, help="also copy plots here as bench_estimator_*.png ('' = nowhere)")
    p.add_argument("--variants", default="frozen,full", help="estimator variants to run: frozen, full, bayes (comma list)")
    p.add_argument("--pooling", choices=("cls", "mean"), default="mean", help="encoder pooling")
    p.add_argument("--max-length", type=int, default=512, help="encoder tokens per prompt (frozen variant)")
    p.add_argument("--lr", type=float, default=2e-4, help="trunk/head learning rate (encoder: 0.2x)")
    p.add_argument("--epochs", type=int, default=60, help="most epochs of the frozen variant (best on validation kept)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--full-epochs", type=int, default=2, help="epochs of full fine-tuning")
    p.add_argument("--full-max-length", type=int, default=256, help="encoder tokens per prompt when fine-tuning")
    p.add_argument("--full-max-rows", type=int, default=None, help="fine-tune on at most this many training rows")
    p.add_argument("--normalize-latex", action="store_true", help="rewrite LaTeX commands as words before encoding")
    p.add_argument("--quick", action="store_true", help="<= 1 minute smoke run on a few rows (CI)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 2; 1 in --quick)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depo.bench.estimator import EstimatorBenchConfig, run_bench

    cfg = EstimatorBenchConfig(
        train=args.train,
        test=args.test,
        holdout_fraction=args.holdout_fraction,
        target=args.target,
        text_column=args.text_column,
        id_column=args.id_column,
        level_column=args.level_column,
        group_size=args.group_size,
        seed=args.seed,
        out=args.out,
        save=args.save,
        save_variant=args.save_variant,
        figures_dir=args.figures_dir,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        pooling=args.pooling,
        max_length=args.max_length,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        full_epochs=args.full_epochs,
        full_max_length=args.full_max_length,
        full_max_rows=args.full_max_rows,
        normalize_latex=args.normalize_latex,
        quick=args.quick,
        threads=args.threads,
    )
    run_bench(cfg)
    return 0
