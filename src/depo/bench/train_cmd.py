"""`depo bench train`: register the command (argparse only; the work is in depo.bench.train)."""

from __future__ import annotations

import argparse
from pathlib import Path

from depo.bench.train import DEFAULT_METHODS, METHODS, run_bench
from depo.config import apply_overrides, read_yaml
from depo.errors import DepoError
from depo.paths import find_config
from depo.policy.tiny import TinyPolicyConfig, build_tiny_policy
from depo.rl.config import TrainConfig

QUICK = {"steps": 4, "seeds": 1, "warmup": 1, "paired": 32}
QUICK_BASE = {"batch_size": 8, "heldout_size": 32, "eval_steps": 2, "train_size": 2000, "sampling_chunk_size": 512,
              "estimator_precompute": False}  # encoding all 2,000 prompts would outlast the 4 steps
CONTROLLED = {
    **dict.fromkeys(("selector", "loss_type", "dynamic_sampling", "epsilon_high"), "set per method by --methods"),
    "max_steps": "use --max-steps", "seed": "use --seeds", "preset": "use --preset", "output_dir": "use --output-dir",
}
"""Config keys this command sets itself (a --set of one is refused, not silently replaced)."""
QUICK_SFT_STEPS = 60
"""--quick checks the pipeline, not the method: its policy gets a few SFT steps, built in seconds."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="GRPO vs DAPO vs DEPO trained side by side on the tiny policy",
        description=__doc__,
    )
    p.add_argument("--preset", default="mixed", help="task preset: mixed, easy or hard")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (0..seeds-1)")
    p.add_argument("--max-steps", "--steps", dest="steps", type=int, default=60, help="training steps per run")
    p.add_argument("--warmup-steps", "--warmup", dest="warmup", type=int, default=10,
                   help="warm-up steps of both DEPO selectors")
    p.add_argument("--methods", default=None,
                   help="comma-separated (default: grpo,dapo,depo-paper,depo,depo+dapo,dapo+depo); opt-in: history (GRESO) and mopps (MoPPS), the peers, and "
                        "p-oracle (it samples every candidate), the selection ceiling")
    p.add_argument("--config", default=None, help="base training config (default: configs/demo.yaml; its selector and loss keys are replaced per method)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base config field (repeatable)")
    p.add_argument("--output-dir", "--out", dest="out", default=None, help="output directory (default runs/bench-train-<preset>)")
    p.add_argument("--figures-dir", default="docs/figures", help="where to copy the PNGs ('' = nowhere)")
    p.add_argument("--quick", action="store_true", help="pipeline check: 1 seed, 4 steps, small batches")
    p.add_argument("--paired-heldout", type=int, default=2000, metavar="N",
                   help="evaluate every final policy on N held-out prompts and report its Avg@8 difference to "
                        "grpo with the paired standard error (0 = off)")
    p.add_argument("--decompose", action="store_true",
                   help="probe a random sample of every scanned pool on the current policy (bench-only answers, "
                        "not counted as rollouts) and say where each selector's gain is lost; use a fresh --output-dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in (args.methods or ",".join(DEFAULT_METHODS)).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise DepoError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if args.seeds < 1 or args.steps < 1 or args.warmup < 0:
        raise DepoError("--seeds and --max-steps must be >= 1 and --warmup-steps >= 0")
    base = read_yaml(find_config(args.config, "demo.yaml"))  # the demo's schedule and estimator options
    for key in CONTROLLED:
        base.pop(key, None)
    steps, seeds, warmup = args.steps, args.seeds, args.warmup
    if args.quick:
        steps, seeds, warmup = QUICK["steps"], QUICK["seeds"], QUICK["warmup"]
        base.update(QUICK_BASE)
        if base.get("model", "tiny") == "tiny":
            small = TinyPolicyConfig(preset=args.preset, sft_steps=QUICK_SFT_STEPS, sft_warmup_steps=10)
            base["model"] = str(build_tiny_policy(args.preset, config=small, progress=False))
    base = apply_overrides(base, args.overrides, locked=CONTROLLED)
    TrainConfig.build({**base, "preset": args.preset, "selector": "depo"})  # validate the base before any run
    out = Path(args.out or f"runs/bench-train-{args.preset}{'-quick' if args.quick else ''}")
    figures = Path(args.figures_dir) if args.figures_dir and not args.quick else None
    result = run_bench(
        preset=args.preset, seeds=seeds, steps=steps, out=out, warmup=warmup,
        methods=methods, base=base, figures_dir=figures, decompose=args.decompose,
        paired=min(args.paired_heldout, QUICK["paired"]) if args.quick else args.paired_heldout,
    )
    print(result["table"])
    print(f"\nprojection to the paper's setting: {result['meta']['flops_projection']['arithmetic']}")
    meta = result["meta"]
    print(f"results: {out / 'results.json'} ({meta['wall_s']:.0f} s now; the runs took {meta['runs_wall_s']:.0f} s in all)")
    return 0
