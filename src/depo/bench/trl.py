"""Benchmark: TRL's plain `GRPOTrainer` against `DEPOGRPOTrainer` on the embedded default.

    python -m depo.bench.trl --steps 60 --seed 0 --out runs/trl_bench

Both runs use the same policy (the embedded tiny policy of the `mixed` preset, or `--model
DIR`), the same training pool and held-out set (data seed 0, as the built-in engine), the same
TRL settings and the same seed; only the sampler differs. TRL always fills its batch, so both
runs roll out the same number of completions per step: DEPO's gain shows as more *informative*
groups (non-zero reward std) per rollout. Reported per run (means over training steps):
`frac_reward_zero_std` (TRL's own), the effective rate (= 1 - frac_reward_zero_std),
informative groups and rollouts in total, rollouts per informative group, held-out Avg@k before
and after training (`depo.rl.evaluation.evaluate`, the engine's metric), and wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depo.errors import DepoError
from depo.integrations.trl.tasks import task_reward, tasks_dataset
from depo.tasks.base import Task

RUNS = ("grpo", "depo", "uniform")
"""grpo = plain trl.GRPOTrainer; depo = DEPOGRPOTrainer + DEPO selector; uniform =
DEPOGRPOTrainer keeping everything (isolates the sampler machinery from the selection)."""


def grpo_config(out: Path, opts: argparse.Namespace):
    """TRL settings mirroring configs/grpo.yaml of the built-in engine."""
    import torch
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=opts.batch_prompts * opts.num_generations,
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        max_steps=opts.steps,
        learning_rate=opts.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        loss_type="grpo",
        scale_rewards="group",
        epsilon=0.2,
        beta=0.0,
        temperature=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=opts.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        disable_tqdm=True,
    )


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise DepoError(f"expected KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)  # numbers, true/false, lists
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_one(kind: str, opts: argparse.Namespace, model_dir: Path, train: list[Task], heldout: list[Task]) -> dict[str, Any]:
    """Train one run and return its summary."""
    import numpy as np
    import torch
    from trl import GRPOTrainer

    from depo.integrations.trl import DEPOGRPOTrainer
    from depo.policy import load_policy
    from depo.rl.evaluation import evaluate
    from depo.selection import Uniform, make_selector

    torch.manual_seed(opts.seed)
    out = Path(opts.out) / kind
    args = grpo_config(out, opts)
    model, tokenizer = load_policy(model_dir)  # AutoTokenizer would mangle the tiny policy's tokenizer
    model.train()
    chat = bool(getattr(tokenizer, "chat_template", None))
    dataset = tasks_dataset(train, chat=chat, suffix="" if chat else (tokenizer.sep_token or ""))
    reward = task_reward(train)
    common = dict(model=model, reward_funcs=reward, args=args, train_dataset=dataset, processing_class=tokenizer)
    if kind == "grpo":
        trainer = GRPOTrainer(**common)
    else:
        if kind == "depo":
            options = _parse_options(opts.selector_option)
            estimator_cfg = _parse_options(opts.estimator_option)
            if estimator_cfg:
                options["estimator_config"] = {"seed": opts.seed, **estimator_cfg}
            selector = make_selector(opts.selector, group_size=opts.num_generations, seed=opts.seed, options=options)
        else:
            selector = Uniform()
        trainer = DEPOGRPOTrainer(**common, selector=selector, text_column="text", id_column="prompt_id", logprobs=opts.logprobs)

    def held_out() -> dict[str, float]:
        if not heldout or chat:
            return {}
        trainer.model.eval()
        with torch.no_grad():
            res = evaluate(trainer.model, tokenizer, heldout, k=opts.eval_k, max_new_tokens=opts.max_completion_length, seed=opts.seed)
        trainer.model.train()
        return res

    before = held_out()
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    after = held_out()

    steps = [h for h in trainer.state.log_history if "frac_reward_zero_std" in h]
    zero = np.array([h["frac_reward_zero_std"] for h in steps], dtype=float)
    prompts_per_step = opts.batch_prompts
    informative = float(np.sum((1.0 - zero) * prompts_per_step))
    rollouts = len(steps) * prompts_per_step * opts.num_generations
    summary: dict[str, Any] = {
        "run": kind,
        "steps": len(steps),
        "frac_reward_zero_std": float(zero.mean()),
        "frac_reward_zero_std_last_half": float(zero[len(zero) // 2 :].mean()),
        "effective_rate": float(1.0 - zero.mean()),
        "informative_groups": informative,
        "rollouts": rollouts,
        "rollouts_per_informative_group": rollouts / informative if informative else float("inf"),
        "reward_mean": float(np.mean([h["reward"] for h in steps])),
        "train_wall_s": wall,
        "heldout_before": before,
        "heldout_after": after,
    }
    if kind != "grpo":
        last = steps[-1]
        summary["scanned_total"] = float(last.get("select/total_scanned", float("nan")))
        summary["select_s_total"] = float(sum(h.get("time/select_s", 0.0) for h in steps))
    (out / "summary.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history))
    return summary


def format_table(results: list[dict[str, Any]], eval_k: int) -> str:
    key = f"eval/avg@{eval_k}"
    rows = [
        ("frac_reward_zero_std (mean over steps)", lambda r: f"{r['frac_reward_zero_std']:.3f}"),
        ("frac_reward_zero_std (last half)", lambda r: f"{r['frac_reward_zero_std_last_half']:.3f}"),
        ("effective rate", lambda r: f"{r['effective_rate']:.3f}"),
        ("rollouts (completions)", lambda r: f"{r['rollouts']:,}"),
        ("informative groups", lambda r: f"{r['informative_groups']:.0f}"),
        ("rollouts per informative group", lambda r: f"{r['rollouts_per_informative_group']:.2f}"),
        ("candidates scanned", lambda r: f"{r['scanned_total']:.0f}" if "scanned_total" in r else "-"),
        (f"held-out Avg@{eval_k} before", lambda r: f"{r['heldout_before'].get(key, float('nan')):.3f}"),
        (f"held-out Avg@{eval_k} after", lambda r: f"{r['heldout_after'].get(key, float('nan')):.3f}"),
        ("train wall time (s)", lambda r: f"{r['train_wall_s']:.0f}"),
        ("  of which selection (s)", lambda r: f"{r['select_s_total']:.1f}" if "select_s_total" in r else "-"),
    ]
    names = {"grpo": "TRL GRPOTrainer", "depo": "DEPOGRPOTrainer (depo)", "uniform": "DEPOGRPOTrainer (uniform)"}
    header = "| metric | " + " | ".join(names[r["run"]] for r in results) + " |"
    sep = "|---|" + "---|" * len(results)
    lines = [header, sep] + ["| " + label + " | " + " | ".join(f(r) for r in results) + " |" for label, f in rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m depo.bench.trl", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="'tiny' (embedded policy of --preset) or a local HF model directory")
    p.add_argument("--preset", default="mixed")
    p.add_argument("--runs", default="grpo,depo", help=f"comma-separated, from {', '.join(RUNS)}")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-prompts", type=int, default=32, help="distinct prompts per step")
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-completion-length", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--heldout", type=int, default=200)
    p.add_argument("--eval-k", type=int, default=8)
    p.add_argument("--selector", default="depo")
    p.add_argument("--selector-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--estimator-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--logprobs", default="always", choices=("auto", "always", "never"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/trl_bench")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    import torch

    from depo.tasks.gym import preset_tasks

    torch.set_num_threads(opts.threads)
    runs = [r.strip() for r in opts.runs.split(",") if r.strip()]
    bad = [r for r in runs if r not in RUNS]
    if bad:
        raise DepoError(f"unknown run(s) {', '.join(bad)}; choose from {', '.join(RUNS)}")
    if opts.model == "tiny":
        from depo.policy import build_tiny_policy

        model_dir = Path(build_tiny_policy(opts.preset))
    else:
        model_dir = Path(opts.model)
    train = preset_tasks(opts.preset, "train", opts.train_size, seed=0)
    heldout = preset_tasks(opts.preset, "heldout", opts.heldout, seed=0) if opts.heldout else []
    t0 = time.perf_counter()
    results = [run_one(kind, opts, model_dir, train, heldout) for kind in runs]
    table = format_table(results, opts.eval_k)
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    (Path(opts.out) / "results.md").write_text(table + "\n")
    (Path(opts.out) / "results.json").write_text(json.dumps(results, indent=2))
    print(table)
    print(f"total wall time: {time.perf_counter() - t0:.0f} s; results in {opts.out}")
    return 0


if __name__ == "__main__":
    import sys

    try:
        sys.exit(main())
    except DepoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
