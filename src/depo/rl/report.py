"""What a finished run leaves for a human: plots/*.png and summary.md, from metrics.jsonl alone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from depo.metrics import share_of_gain
from depo.rl.config import TrainConfig
from depo.rl.metrics_log import metric_mean


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            steps.append(r["step"])
            values.append(float(v))
    return steps, values


def write_plots(run_dir: Path, records: list[dict[str, Any]], cfg: TrainConfig) -> None:
    """plots/heldout_accuracy.png (Avg@k and pass@k vs step) and plots/effective_rate.png."""
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    k = cfg.eval_k
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for key, label in ((f"eval/avg@{k}", f"Avg@{k}"), (f"eval/pass@{k}", f"pass@{k}")):
        steps, values = _series(records, key)
        if steps:
            ax.plot(steps, values, marker="o", label=label)
    ax.set(xlabel="step", ylabel="held-out accuracy",
           title=f"{cfg.selector} on {cfg.preset}: held-out accuracy")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no held-out set", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(out_dir / "heldout_accuracy.png", dpi=100)

    steps, values = _series(records, "select/effective_rate")
    if steps:
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        ax.plot(steps, values, label="effective rate")
        s2, v2 = _series(records, "select/survival_rate")
        if s2 and cfg.selector != "uniform":
            ax.plot(s2, v2, label="survival rate")
        ax.set(xlabel="step", ylim=(0, 1.05), title="share of rolled-out groups with a gradient")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "effective_rate.png", dpi=100)


def summary_rows(records: list[dict[str, Any]], cfg: TrainConfig, extra: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(label, value) rows: held-out accuracy before/after, rollouts, effective rate, time."""
    extra = extra or {}
    k = cfg.eval_k
    steps = [r for r in records if r.get("step", 0) > 0 and "rollout/prompts" in r]
    rows = [("selector", cfg.selector + (" + dynamic sampling" if cfg.dynamic_sampling else "")),
            ("steps", str(len(steps)))]
    for key, label in ((f"eval/avg@{k}", f"held-out Avg@{k}"), (f"eval/pass@{k}", f"held-out pass@{k}")):
        s, v = _series(records, key)
        if len(v) >= 2:
            rows.append((label, f"{100 * v[0]:.1f} -> {100 * v[-1]:.1f} ({100 * (v[-1] - v[0]):+.1f} points)"))
        elif v:
            rows.append((label, f"{100 * v[0]:.1f}"))
    if steps:
        last = steps[-1]
        rows.append(("rollouts (responses)", f"{int(last['rollout/total_responses'])}"))
        rows.append(("rollout tokens", f"{int(last['rollout/total_tokens'])}"))
        eff = "select/effective_rate"
        rows.append(("effective rate (mean)", f"{metric_mean(steps, eff):.3f}"))
        warmup = extra.get("warmup_steps")
        if warmup and cfg.selector != "uniform":
            before = metric_mean([r for r in steps if r["step"] <= warmup], eff)
            after = metric_mean([r for r in steps if r["step"] > warmup], eff)
            ratio = after / before if before > 0 else math.nan  # NaN when either window is empty
            rows.append((f"effective rate: warm-up (steps <= {warmup})", f"{before:.3f}"))
            rows.append(("effective rate: after warm-up", f"{after:.3f} ({ratio:.2f}x)"))
        if "select/total_skipped" in last:
            skipped = int(last["select/total_skipped"])
            rows.append(("prompts skipped before rollout", f"{skipped} ({skipped * cfg.num_generations} responses not generated)"))
        errors = sum(int(r.get("reward/errors", 0)) for r in steps)
        if errors:
            rows.append(("groups dropped (reward errors)", str(errors)))
        if cfg.dynamic_sampling:
            short = sum(int(r.get("dynamic/short", 0)) for r in steps)
            gen = sum(r.get("dynamic/gen_batches", 0) for r in steps)
            rows.append(("dynamic sampling: generation batches", f"{int(gen)} ({short} steps short of a full batch)"))
        probed = [r for r in steps if warmup is None or r["step"] > warmup]
        if any("probe/eff_p_oracle" in r for r in probed):
            def avg(key: str) -> float:
                return metric_mean(probed, key)

            po, rand, kept = avg("probe/eff_p_oracle"), avg("probe/eff_random"), avg("probe/eff_kept")
            rows.append(("share of the p-oracle's gain (probed pool)",
                         f"{share_of_gain(kept, rand, po):.2f} (effective rate {kept:.3f}; random {rand:.3f}, "
                         f"p-oracle {po:.3f} at survival {avg('probe/survival'):.2f})"))
        probe = sum(r.get("time/probe_s", 0.0) for r in steps)  # measuring only: not the method's cost
        total = sum(r.get("time/total_s", 0.0) for r in steps) - probe
        rollout = sum(r.get("time/rollout_s", 0.0) for r in steps)
        est = sum(r.get("time/estimator_s", 0.0) for r in steps) - probe
        rows.append(("train time", f"{total:.0f} s ({100 * rollout / total if total else 0:.0f}% rollout, {100 * est / total if total else 0:.1f}% selection/estimator)"))
        if "time/elapsed_s" in last:
            rows.append(("wall time incl. evaluation", f"{last['time/elapsed_s']:.0f} s"))
    return rows


def format_table(rows: list[tuple[str, str]]) -> str:
    width = max((len(a) for a, _ in rows), default=0)
    return "\n".join(f"{a.ljust(width)}  {b}" for a, b in rows)


def write_summary(run_dir: Path, records: list[dict[str, Any]], cfg: TrainConfig,
                  extra: dict[str, Any] | None = None) -> None:
    rows = summary_rows(records, cfg, extra)
    lines = [
        f"# Run summary: {run_dir.name}",
        "",
        f"Policy `{cfg.model}` on preset `{cfg.preset}`, G = {cfg.num_generations}, "
        f"{cfg.batch_size} prompts per step, learning rate {cfg.learning_rate}, loss {cfg.loss_type}, seed {cfg.seed}.",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
        "Plots: `plots/heldout_accuracy.png`, `plots/effective_rate.png`. Every step: `metrics.jsonl`.",
        "",
    ]
    (run_dir / "summary.md").write_text("\n".join(lines), encoding="utf-8")
