"""`depo train`, `depo eval`, `depo demo`: the built-in engine from the command line."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from transformers.utils import logging as hf_logging

from depo.bench.decomposition import attach_probe
from depo.config import Config, add_arguments, from_arguments
from depo.errors import DepoError
from depo.paths import find_config
from depo.policy import build_tiny_policy, load_policy
from depo.rl.config import load_config
from depo.rl.evaluation import evaluate
from depo.rl.report import format_table, summary_rows
from depo.rl.trainer import Trainer, resolve_model_path
from depo.selection import SELECTORS, trainable_selector
from depo.tasks.gym import preset_tasks

DEMO_CONFIG = "demo.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="GRPO/DAPO/DEPO training run (config YAML + overrides)")
    train.add_argument("--config", help="YAML file of TrainConfig fields (see configs/); may `extends:` another")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set learning_rate=2e-4 (repeatable)")
    trainable = ", ".join(name for name, spec in SELECTORS.items() if not spec.bench_only)
    train.add_argument("--selector", help=f"shortcut for --set selector=NAME ({trainable})")
    train.add_argument("--model", help="shortcut for --set model=PATH: 'tiny' or a local Hugging Face causal LM")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    train.set_defaults(func=run_train)

    ev = subparsers.add_parser("eval", help="held-out Avg@k and pass@k of a policy")
    add_arguments(ev, EvalConfig, tuple(EvalConfig.model_fields))
    ev.set_defaults(func=run_eval)

    demo = subparsers.add_parser("demo", help="the embedded default: train the tiny policy on 'mixed', print a summary")
    demo.add_argument("--config", help=f"config YAML (default: configs/{DEMO_CONFIG} of this repository)")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    demo.add_argument("--output-dir", help="run directory (default runs/demo-<timestamp>)")
    demo.add_argument("--no-probe", action="store_true",
                      help="do not measure a sample of each scanned pool on the policy (the summary's share of "
                           "the p-oracle's gain; bench-only answers, never trained on)")
    demo.set_defaults(func=run_demo)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="depo: %(levelname)s: %(message)s")


def run_train(args: argparse.Namespace) -> int:
    _configure_logging()
    overrides = list(args.overrides)
    overrides += [f"selector={args.selector}"] if args.selector else []
    overrides += [f"model={args.model}"] if args.model else []
    if args.resume:
        if args.config:
            raise DepoError("--resume takes the run's own config.yaml; drop --config")
        trainer = Trainer.resume(args.resume, overrides)
        trainable_selector(trainer.cfg.selector, key="config selector")
    else:
        cfg = load_config(args.config, overrides)
        trainable_selector(cfg.selector, key="config selector")  # before the run directory is made
        trainer = Trainer(cfg)
    run_dir = trainer.train()
    print(format_table(summary_rows(trainer.read_metrics(), trainer.cfg, trainer.summary_extra())))
    if trainer.interrupted:
        print(f"interrupted at step {trainer.step}; checkpoint saved. Continue with: depo train --resume {run_dir}")
        return 130
    print(f"run directory: {run_dir}")
    return 0


class EvalConfig(Config):
    """Settings of `depo eval` (each a flag of the same name, or `--set name=value`)."""

    model: str = "tiny"
    """'tiny' (the embedded policy of the preset) or a local Hugging Face model directory."""
    preset: Literal["mixed", "easy", "hard"] = "mixed"
    """Task preset whose held-out prompts are evaluated."""
    k: int = Field(8, ge=1)
    """Samples per prompt."""
    n: int = Field(200, ge=1)
    """Held-out prompts."""
    max_completion_length: int = Field(16, ge=1)
    """Most tokens per sampled answer."""
    temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature (0 = greedy)."""
    seed: int = 0
    """Sampling seed (the same seed gives the same answers)."""


def run_eval(namespace: argparse.Namespace) -> int:
    args = from_arguments(EvalConfig, namespace, what="eval")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    hf_logging.disable_progress_bar()
    path = build_tiny_policy(args.preset) if args.model == "tiny" else Path(args.model)
    model, tokenizer = load_policy(path)
    tasks = preset_tasks(args.preset, "heldout", args.n, seed=0)
    start = time.perf_counter()
    out = evaluate(model, tokenizer, tasks, k=args.k, max_new_tokens=args.max_completion_length,
                   temperature=args.temperature, seed=args.seed, per_task=True)
    print(f"model {path}, preset {args.preset}, {len(tasks)} held-out prompts, k={args.k} "
          f"({time.perf_counter() - start:.1f} s)")
    for key, value in out.items():
        name = key.removeprefix("eval/")
        print(f"{name:<32} {int(value)}" if "errors" in key else f"{name:<32} {value:.4f}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    _configure_logging()
    start = time.perf_counter()
    out_dir = args.output_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = load_config(find_config(args.config, DEMO_CONFIG), [*args.overrides, f"output_dir={out_dir}"])
    print(f"depo demo: {cfg.selector} on preset '{cfg.preset}', {cfg.max_steps} steps x {cfg.batch_size} prompts "
          f"x G={cfg.num_generations}; run directory {out_dir}")
    warm = time.perf_counter()
    resolve_model_path(cfg)  # builds (or reuses) the warm-started tiny policy
    warm_s = time.perf_counter() - warm
    trainer = Trainer(cfg)
    if not args.no_probe:  # the summary's share of the p-oracle's gain (depo.bench.decomposition)
        attach_probe(trainer, seed=cfg.seed)
    run_dir = trainer.train()
    rows = summary_rows(trainer.read_metrics(), cfg, trainer.summary_extra())
    rows.append(("warm start (tiny policy build)", f"{warm_s:.0f} s"))
    rows.append(("demo wall time", f"{time.perf_counter() - start:.0f} s"))
    print(f"\n{format_table(rows)}")
    print(f"\nrun directory: {run_dir} (summary.md, metrics.jsonl, plots/heldout_accuracy.png)")
    if trainer.interrupted:
        print(f"interrupted; continue with: depo train --resume {run_dir}")
        return 130
    return 0
