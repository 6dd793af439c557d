"""The `depo bench` commands: estimator, replay, route, train (argparse only; the work is in
the module of each benchmark).

estimator, replay and route read their settings from one pydantic model each (`--config FILE`,
then `--field-name` flags, then `--set name=value`); train takes a base training config
(configs/demo.yaml) and sets the selector and loss keys itself per method.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from depo.bench import estimator, replay, route
from depo.bench.train import DEFAULT_METHODS, METHODS, run_bench
from depo.config import Config, add_arguments, apply_overrides, from_arguments, read_yaml
from depo.errors import DepoError
from depo.paths import find_config
from depo.policy.tiny import TinyPolicyConfig, build_tiny_policy
from depo.rl.config import TrainConfig

ESTIMATOR_FLAGS = (
    "train", "test", "holdout_fraction", "target", "text_column", "id_column", "level_column", "group_size",
    "seed", "out", "save", "save_variant", "figures_dir", "variants", "pooling", "max_length", "lr", "epochs",
    "batch_size", "full_epochs", "full_max_length", "full_max_rows", "normalize_latex", "quick", "threads",
)  # fmt: skip
REPLAY_FLAGS = (
    "trajectories", "prompts", "group_size", "batch_size", "seed", "out", "figures_dir", "methods", "text_column",
    "id_column", "epochs", "max_prompts", "part", "estimator_init", "quick", "threads", "screen",
)  # fmt: skip
ROUTE_FLAGS = (
    "train", "test", "holdout_fraction", "small", "large", "out", "figures_dir", "text_column", "id_column",
    "cost_small", "cost_large", "epochs", "save_estimators", "seed", "threads", "quick",
)  # fmt: skip
"""Settings that have their own flag (`--field-name`); every other one is `--set name=value`
(replay's selector and estimator options: `--set options.depo.threshold=0.6`, `--set estimator.lr=1e-3`)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add estimator, replay, route and train to the `depo bench` subparsers."""
    _add(subparsers, "estimator", estimator.EstimatorBenchConfig, ESTIMATOR_FLAGS, estimator.run_bench,
         help="train pass-rate predictors offline on real success rates and compare them on held-out rows",
         description="Train the DEPO estimators (by default the frozen encoder + trunk, the Bayesian one and its "
         "calibrated form; opt-in: top layers, full fine-tuning) and baselines "
         "(constant mean, per-level mean, TF-IDF + ridge) on one split; report Spearman, Pearson, MAE, ECE, "
         "zero-variance AUC at group size G, and effective rates of kept prompts. Needs train and target.")
    _add(subparsers, "replay", replay.ReplayConfig, REPLAY_FLAGS, replay.run_replay,
         help="replay selectors epoch by epoch on a real GRPO run's recorded group outcomes",
         description="Each method decides per epoch which prompts to roll out, seeing only prompt texts and its "
         "own earlier outcomes; reports effective rate, recall of informative groups and rollout cost "
         "against dynamic sampling, for " + ", ".join(replay.METHODS) + " in one run. Needs trajectories and "
         "prompts; selector options: --set options.METHOD.KEY=VALUE, estimator options: --set estimator.KEY=VALUE.")
    p = _add(subparsers, "route", route.RouteBenchConfig, ROUTE_FLAGS, route.run_bench,
             help="route queries between a small and a large model: accuracy vs share sent to small",
             description="Train pass-rate predictors for two models, sweep the routing rules, report curves and "
             "tables. Needs train, small and large.")
    p.add_argument("--no-estimator", dest="flag:estimator", action="store_const", const="false",
                   help="TF-IDF ridge only: skip the DEPO estimators, trunk and bayes (`estimator: false`)")
    p.add_argument("--no-trunk", dest="flag:trunk", action="store_const", const="false",
                   help="skip the paper's trunk estimators, keep TF-IDF and bayes (`trunk: false`)")
    _add_train(subparsers)


def _add(subparsers: argparse._SubParsersAction, name: str, model: type[Config], flags: Sequence[str],
         work: Callable[[Config], object], *, help: str, description: str) -> argparse.ArgumentParser:
    """A command whose settings are `model`: it validates them, then calls `work` with them."""
    p = subparsers.add_parser(name, help=help, description=description)
    add_arguments(p, model, flags)

    def run(args: argparse.Namespace) -> int:
        work(from_arguments(model, args, what=f"bench {name}"))
        return 0

    p.set_defaults(func=run)
    return p


# ------------------------------------------------------------------------------------ train
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


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="GRPO vs DAPO vs DEPO trained side by side on the tiny policy",
        description="Train GRPO, DAPO and the DEPO selectors on the tiny policy, the same seeds and steps "
        "each, and compare rollouts, effective rate and held-out accuracy (paired with grpo).",
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
    p.add_argument("--figures-dir", default="", help="also copy the PNGs here, e.g. docs/figures (default: nowhere)")
    p.add_argument("--quick", action="store_true", help="pipeline check: 1 seed, 4 steps, small batches")
    p.add_argument("--paired-heldout", type=int, default=2000, metavar="N",
                   help="evaluate every final policy on N held-out prompts and report its Avg@8 difference to "
                        "grpo with the paired standard error (0 = off)")
    p.add_argument("--decompose", action="store_true",
                   help="probe a random sample of every scanned pool on the current policy (bench-only answers, "
                        "not counted as rollouts) and say where each selector's gain is lost; use a fresh --output-dir")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    methods = [m.strip() for m in (args.methods or ",".join(DEFAULT_METHODS)).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise DepoError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if args.seeds < 1 or args.steps < 1 or args.warmup < 0 or args.paired_heldout < 0:
        raise DepoError("--seeds and --max-steps must be >= 1, --warmup-steps and --paired-heldout >= 0")
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
