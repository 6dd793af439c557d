"""Benchmark: TRL's plain `GRPOTrainer` against `DEPOGRPOTrainer` on the embedded default.

    python -m depo.bench.trl --max-steps 60 --seed 0 --output-dir runs/trl_bench

Both runs use the same policy (the embedded tiny policy of the `mixed` preset, or `--model
DIR`), the same training pool and held-out set (data seed 0, as the built-in engine), the same
TRL settings and the same seed; only the sampler differs. TRL always fills its batch, so both
runs roll out the same number of completions per step: DEPO's gain shows as more *informative*
groups (non-zero reward std) per rollout. With dynamic sampling (`dapo`, `dapo+depo`) a step
may generate several rounds: every round's completions count as rollouts. Reported per run (means over training steps):
`frac_reward_zero_std` (TRL's own), the effective rate (= 1 - frac_reward_zero_std),
informative groups and rollouts in total, rollouts per informative group, held-out Avg@k before
and after training (`depo.rl.evaluation.evaluate`, the engine's metric), and wall time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from trl import GRPOConfig, GRPOTrainer

from depo.bench.report import Col, markdown_table
from depo.config import Config, names_from, parse_command
from depo.errors import run_command
from depo.integrations.trl import DEPOGRPOTrainer
from depo.integrations.trl.tasks import task_reward, tasks_dataset
from depo.policy import build_tiny_policy, load_policy
from depo.rl.evaluation import evaluate
from depo.selection import Uniform, make_selector
from depo.tasks.base import Task
from depo.tasks.gym import preset_tasks

RUNS = ("grpo", "depo", "uniform", "dapo", "dapo+depo")
"""grpo = plain trl.GRPOTrainer; depo = DEPOGRPOTrainer + DEPO selector; uniform =
DEPOGRPOTrainer keeping everything (isolates the sampler machinery from the selection);
dapo = DEPOGRPOTrainer keeping everything, with dynamic sampling (TRL has none of its own);
dapo+depo = dynamic sampling fed by the DEPO selector's prompts."""
DYNAMIC = ("dapo", "dapo+depo")


RunNames = names_from(RUNS, "run(s)")


class TRLBenchConfig(Config):
    """Settings of `python -m depo.bench.trl`; the TRL ones carry TRL's names (`max_steps`,
    `learning_rate`, `num_generations`, ...). Each is a flag, or `--set name=value`."""

    model: str = "tiny"
    """'tiny' (the embedded policy of `preset`) or a local HF model directory."""
    preset: str = "mixed"
    runs: RunNames = ("grpo", "depo")
    """Which runs, a comma list of grpo, depo, uniform, dapo, dapo+depo."""
    max_num_gen_batches: int = Field(4, ge=1)
    """dapo, dapo+depo: generation rounds per step at most (dynamic sampling)."""
    max_steps: int = Field(60, ge=1)
    seed: int = 0
    batch_prompts: int = Field(32, ge=1)
    """Distinct prompts per step."""
    num_generations: int = Field(8, ge=2)
    max_completion_length: int = Field(16, ge=1)
    learning_rate: float = Field(2e-4, gt=0.0)
    train_size: int = Field(20000, ge=1)
    heldout_size: int = Field(200, ge=0)
    """Held-out prompts for Avg@k (0: no evaluation)."""
    eval_k: int = Field(8, ge=1)
    selector: str = "depo"
    """The selector of the `depo` run (a registry name)."""
    selector_options: dict[str, Any] = {}
    """Selector options, e.g. `--set selector_options.warmup_steps=5`."""
    estimator_options: dict[str, Any] = {}
    """EstimatorConfig overrides, e.g. `--set estimator_options.lr=1e-3`."""
    logprobs: Literal["auto", "always", "never"] = "always"
    threads: int = Field(2, ge=1)
    output_dir: str = "runs/trl_bench"


def grpo_config(out: Path, opts: TRLBenchConfig):
    """TRL's GRPO settings for the bench: configs/grpo.yaml's loss and schedule (constant lr, no
    KL), at this bench's own batch size and learning rate (TRLBenchConfig)."""
    return GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=opts.batch_prompts * opts.num_generations,
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        max_steps=opts.max_steps,
        learning_rate=opts.learning_rate,
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


def run_one(kind: str, opts: TRLBenchConfig, model_dir: Path, train: list[Task], heldout: list[Task]) -> dict[str, Any]:
    """Train one run and return its summary."""
    torch.manual_seed(opts.seed)
    out = Path(opts.output_dir) / kind
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
        if kind in ("depo", "dapo+depo"):
            estimator = {"seed": opts.seed, **opts.estimator_options} if opts.estimator_options else None
            selector = make_selector(opts.selector, group_size=opts.num_generations, seed=opts.seed,
                                     options=opts.selector_options, estimator=estimator)
        else:
            selector = Uniform()
        trainer = DEPOGRPOTrainer(**common, selector=selector, text_column="text", id_column="prompt_id", logprobs=opts.logprobs,
                                  dynamic_sampling=kind in DYNAMIC, max_num_gen_batches=opts.max_num_gen_batches)

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
    if kind == "grpo":  # one generation batch per step, every group trained on
        informative = trained = float(np.sum((1.0 - zero) * opts.batch_prompts))
        rollouts, effective = len(steps) * opts.batch_prompts * opts.num_generations, float(1.0 - zero.mean())
    else:  # the feed counts every rolled-out group, dynamic sampling's extra rounds included
        feed = trainer.depo_feed
        informative, rollouts = float(feed.groups_informative), feed.rollouts
        effective = feed.groups_informative / max(feed.groups_observed, 1)
        trained = float(sum(h["select/ds_informative"] for h in steps)) if kind in DYNAMIC else informative
    summary: dict[str, Any] = {
        "run": kind,
        "steps": len(steps),
        "frac_reward_zero_std": float(zero.mean()),
        "frac_reward_zero_std_last_half": float(zero[len(zero) // 2 :].mean()),
        "effective_rate": effective,
        "informative_groups": informative,
        "trained_informative_groups": trained,
        "rollouts": rollouts,
        "rollouts_per_informative_group": rollouts / trained if trained else float("inf"),
        "reward_mean": float(np.mean([h["reward"] for h in steps])),
        "train_wall_s": wall,
        "heldout_before": before,
        "heldout_after": after,
    }
    if kind != "grpo":
        summary["scanned_total"] = float(steps[-1].get("select/total_scanned", float("nan")))
        summary["select_s_total"] = float(sum(h.get("time/select_s", 0.0) for h in steps))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history))
    return summary


def format_table(results: list[dict[str, Any]], eval_k: int) -> str:
    key = f"eval/avg@{eval_k}"
    rows = [
        ("frac_reward_zero_std (mean over steps)", lambda r: f"{r['frac_reward_zero_std']:.3f}"),
        ("frac_reward_zero_std (last half)", lambda r: f"{r['frac_reward_zero_std_last_half']:.3f}"),
        ("effective rate (informative / rolled-out groups)", lambda r: f"{r['effective_rate']:.3f}"),
        ("rollouts (completions, every round)", lambda r: f"{r['rollouts']:,}"),
        ("informative groups rolled out", lambda r: f"{r['informative_groups']:.0f}"),
        ("informative groups trained on", lambda r: f"{r['trained_informative_groups']:.0f}"),
        ("rollouts per informative group trained on", lambda r: f"{r['rollouts_per_informative_group']:.2f}"),
        ("candidates scanned", lambda r: f"{r['scanned_total']:.0f}" if "scanned_total" in r else "-"),
        (f"held-out Avg@{eval_k} before", lambda r: f"{r['heldout_before'].get(key, float('nan')):.3f}"),
        (f"held-out Avg@{eval_k} after", lambda r: f"{r['heldout_after'].get(key, float('nan')):.3f}"),
        ("train wall time (s)", lambda r: f"{r['train_wall_s']:.0f}"),
        ("  of which selection (s)", lambda r: f"{r['select_s_total']:.1f}" if "select_s_total" in r else "-"),
    ]
    names = {"grpo": "TRL GRPOTrainer", "depo": "DEPOGRPOTrainer (depo)", "uniform": "DEPOGRPOTrainer (uniform)",
             "dapo": "DEPOGRPOTrainer (uniform + dynamic sampling)", "dapo+depo": "DEPOGRPOTrainer (depo + dynamic sampling)"}
    table = [{"metric": label, **{str(i): f(r) for i, r in enumerate(results)}} for label, f in rows]
    return markdown_table(table, [Col(str(i), names[r["run"]]) for i, r in enumerate(results)], name_key="metric")


FLAGS = (
    "model", "preset", "runs", "max_steps", "seed", "batch_prompts", "num_generations", "max_completion_length",
    "learning_rate", "train_size", "heldout_size", "eval_k", "selector", "logprobs", "threads", "output_dir",
    "max_num_gen_batches",
)  # fmt: skip
ALIASES = {"max_steps": "--steps", "learning_rate": "--lr", "heldout_size": "--heldout", "output_dir": "--out"}
"""The flags' earlier names, still accepted."""


def parse_args(argv: Sequence[str] | None = None) -> TRLBenchConfig:
    return parse_command(TRLBenchConfig, argv, prog="python -m depo.bench.trl", description=__doc__.split("\n\n")[0],
                         flags=FLAGS, aliases=ALIASES)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)  # a DepoError for bad settings, before anything is built
    torch.set_num_threads(opts.threads)
    model_dir = Path(build_tiny_policy(opts.preset) if opts.model == "tiny" else opts.model)
    train = preset_tasks(opts.preset, "train", opts.train_size, seed=0)
    heldout = preset_tasks(opts.preset, "heldout", opts.heldout_size, seed=0) if opts.heldout_size else []
    t0 = time.perf_counter()
    results = [run_one(kind, opts, model_dir, train, heldout) for kind in opts.runs]
    table = format_table(results, opts.eval_k)
    Path(opts.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(opts.output_dir) / "results.md").write_text(table + "\n")
    (Path(opts.output_dir) / "results.json").write_text(json.dumps(results, indent=2))
    print(table)
    print(f"total wall time: {time.perf_counter() - t0:.0f} s; results in {opts.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main, "python -m depo.bench.trl"))
