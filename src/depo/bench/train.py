"""`depo bench train`: GRPO vs DAPO vs DEPO trained side by side (the paper's Table 1/2, Fig. 1/4/5).

Every method starts from the same warm-started tiny policy, sees the same data order (the
DataOrder is seeded by the run's seed) and uses the same seeds; only what the method changes
differs. Every rollout is counted by the engine (`rollout/*`), so the cost columns are exact.

Methods (the paper's rows):
  grpo       uniform selection, sequence-mean loss (GRPO)
  dapo       dynamic sampling + clip-higher (0.28) + token-mean loss + overlong shaping (DAPO)
  depo-paper the reference design: warm-up, then keep iff p_hat in [0.15, 0.85]
  depo       our default selector (P(zero-variance) rule, exploration, memory)
  depo+dapo  our selector with DAPO's loss parts, without dynamic sampling (the paper's best row)
  dapo+depo  DAPO whole, its dynamic sampling fed by DEPO-selected candidates (plug-and-play)
  history    opt-in peer: GRESO (skip prompts on a zero-variance streak; history only)
  mopps      opt-in peer: MoPPS (per-prompt Beta posteriors, Thompson draws closest to 0.5),
             keeping by rank the batch_size best of 2 x batch_size scanned candidates
  p-oracle   opt-in: DEPO's rule on pass rates measured on the current policy (the ceiling)

The base config is configs/demo.yaml: the demo's schedule and estimator options (see its comments).
Every DEPO variant uses the same warm-up length (`--warmup-steps`, default 10 steps): the paper's 100
steps would outlast a laptop-sized run, and the comparison is fairer with equal warm-ups.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm
from transformers.utils import logging as hf_logging

from depo.bench import p_oracle  # registers the bench-only `p-oracle` selector
from depo.bench.decomposition import attach_probe
from depo.bench.report import Col, markdown_table, new_figure, save_figure, write_results
from depo.errors import DepoError
from depo.metrics import share_of_gain
from depo.policy import load_policy
from depo.rl.checkpoint import POLICY_DIR, list_checkpoints
from depo.rl.config import TrainConfig, load_config
from depo.rl.evaluation import sample_rewards
from depo.rl.metrics_log import metric_mean, read_metrics
from depo.rl.trainer import Trainer
from depo.tasks.gym import preset_tasks

DAPO_LOSS = {"loss_type": "dapo", "epsilon_high": 0.28, "overlong_buffer_len": 4, "overlong_penalty_factor": 1.0}
METHODS: dict[str, dict[str, Any]] = {
    "grpo": {"selector": "uniform", "selection": "refill", "loss_type": "grpo"},
    "dapo": {"selector": "uniform", "selection": "refill", "dynamic_sampling": True, **DAPO_LOSS},
    "depo-paper": {"selector": "depo-paper", "selection": "refill", "loss_type": "grpo"},
    "depo": {"selector": "depo", "loss_type": "grpo"},
    "depo+dapo": {"selector": "depo", **DAPO_LOSS},
    "dapo+depo": {"selector": "depo", "dynamic_sampling": True, **DAPO_LOSS},
    "history": {"selector": "history", "selection": "refill", "loss_type": "grpo"},
    "mopps": {"selector": "mopps", "loss_type": "grpo", "selection": "rank", "oversample": 2.0},
    "p-oracle": {"selector": "p-oracle", "loss_type": "grpo"},
}
"""Each method's TrainConfig values over the base config. `depo`, `depo+dapo`, `dapo+depo` and
`p-oracle` take the base config's stream (configs/demo.yaml: keep by rank, the best 1 / 2.7 of
each scanned pool), so the p-oracle is compared at the same survival; the paper's rule, GRESO
and the uniform rows use the threshold-and-refill stream (uniform keeps everything anyway)."""
DEFAULT_METHODS = ("grpo", "dapo", "depo-paper", "depo", "depo+dapo", "dapo+depo")
"""The paper's rows; the peers (history, mopps) and the p-oracle (depo.bench.p_oracle: about 16
extra answers per scanned candidate) are opt-in."""
DEPO_METHODS = ("depo-paper", "depo", "depo+dapo", "dapo+depo")
"""The rows that select with a DEPO estimator: they take the warm-up and the base config's estimator settings."""
TIME_PHASES = ("select", "rollout", "reward", "advantage", "update", "estimator", "total")
PAPER_ESTIMATOR = {"update_batch_size": 0}
"""`depo-paper`'s fixed window [0.15, 0.85] reads the level of p_hat, which the base config's
lighter update (made for keep-by-rank, where only the ranking counts) leaves less extreme, so
the window would skip little (BENCHMARKS.md section 9): the paper's row updates on the whole
replay."""


def method_config(method: str, *, preset: str, seed: int, steps: int, out: Path, warmup: int, base: dict[str, Any]):
    """The TrainConfig of one (method, seed) run."""
    values = {**base, **METHODS[method], "preset": preset, "seed": seed, "max_steps": steps}
    if method in DEPO_METHODS:
        values["selector_options"] = {**values.get("selector_options", {}), "warmup_steps": warmup}
        if method == "depo-paper":
            values["estimator_options"] = {**values.get("estimator_options", {}), **PAPER_ESTIMATOR}
    else:  # the estimator settings of the base config only concern the DEPO rows
        for key in ("selector_options", "estimator_options", "estimator_init", "estimator_precompute"):
            values.pop(key, None)
    values["output_dir"] = str(out / "runs" / method / f"seed{seed}")
    values["progress"] = False
    return TrainConfig.build(values)


def run_summary(records: list[dict[str, Any]], *, warmup: int, eval_k: int) -> dict[str, float]:
    """One run's figures from its metrics.jsonl records (step 0 = the evaluation before training)."""
    steps = [r for r in records if r.get("step", 0) >= 1 and "rollout/responses" in r]
    evals = [r for r in records if f"eval/avg@{eval_k}" in r]
    after = [r for r in steps if r["step"] > warmup] or steps

    last = steps[-1] if steps else {}
    out = {
        "steps": float(len(steps)),
        "rollouts": float(last.get("rollout/total_responses", 0.0)),
        "tokens": float(last.get("rollout/total_tokens", 0.0)),
        "rollouts_per_step": metric_mean(steps, "rollout/responses"),
        "effective_rate": metric_mean(steps, "select/effective_rate"),
        "effective_rate_after_warmup": metric_mean(after, "select/effective_rate"),
        "survival_rate_after_warmup": metric_mean(after, "select/survival_rate"),
        "avg_at_k_start": float(evals[0][f"eval/avg@{eval_k}"]) if evals else float("nan"),
        "avg_at_k": float(evals[-1][f"eval/avg@{eval_k}"]) if evals else float("nan"),
        "pass_at_k": float(evals[-1].get(f"eval/pass@{eval_k}", float("nan"))) if evals else float("nan"),
    }
    out["avg_gain"] = out["avg_at_k"] - out["avg_at_k_start"]
    out["gain_per_1k_rollouts"] = 1000 * out["avg_gain"] / out["rollouts"] if out["rollouts"] else float("nan")
    probe = metric_mean(steps, "time/probe_s")  # --decompose's measuring, inside the select phase
    for phase in TIME_PHASES:
        out[f"time_{phase}_s"] = metric_mean(steps, f"time/{phase}_s")
        if phase in ("select", "estimator", "total") and math.isfinite(probe):
            out[f"time_{phase}_s"] -= probe
    total = out["time_total_s"]
    out["estimator_share"] = out["time_estimator_s"] / total if total and math.isfinite(total) else float("nan")
    # estimator_precompute: the one-off encoding of the pool (0 when loaded from disk or unused),
    # charged to this run alone in the second share, as a first run on new data would pay it.
    first = records[0] if records else {}
    out["run_s"] = float(last.get("time/elapsed_s", float("nan")))  # the run's own wall time, also when reused
    out["precompute_s"] = float(first.get("time/estimator_precompute_s", 0.0))
    probe_total = sum(float(r.get("time/probe_s", 0.0)) for r in steps)
    run_total = sum(float(r.get("time/total_s", 0.0)) for r in steps) + out["precompute_s"] - probe_total
    run_estimator = sum(float(r.get("time/estimator_s", 0.0)) for r in steps) + out["precompute_s"] - probe_total
    out["estimator_share_with_precompute"] = run_estimator / run_total if run_total else float("nan")
    out["calib_mae_first"] = metric_mean(steps[:5], "estimator/calib_mae")
    out["calib_mae_last"] = metric_mean(steps[-5:], "estimator/calib_mae")
    for col in DECOMPOSITION:  # --decompose: each step's pooled-window figure, averaged after warm-up
        out[col.key] = metric_mean(after, f"probe/{col.key}")
    return out


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean and std over seeds of every metric: {"x": mean, "x_std": std}."""
    out: dict[str, float] = {}
    for key in per_seed[0]:
        vals = np.array([s[key] for s in per_seed], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if vals.size else float("nan")
        out[f"{key}_std"] = float(vals.std()) if vals.size else float("nan")
    return out


def estimator_flops_projection(
    *,
    encoder_params: float = 22.7e6,
    prompt_tokens: int = 256,
    hidden: int = 384,
    width: int = 1024,
    feature_width: int = 512,
    num_blocks: int = 2,
    policy_params: float = 1.5e9,
    group_size: int = 8,
    response_tokens: int = 4096,
) -> dict[str, Any]:
    """Estimator FLOPs per prompt vs the policy's rollout FLOPs per prompt (forward ~ 2 x params x tokens).

    Encoder: all-MiniLM-L6-v2 (22.7M parameters) reads the prompt once, then the trunk and the
    DualHead's linear layers; policy: G responses of `response_tokens` tokens, ~2 x policy_params
    FLOPs per generated token. Both simplifications understate the ratio: the policy side leaves
    out attention over the context, and the estimator side counts the encoder's 11.7M-parameter
    embedding table, a lookup, as a matmul.
    """
    trunk = 2 * (hidden * width + num_blocks * 2 * width**2 + width * feature_width + 2 * feature_width)
    estimator = 2 * encoder_params * prompt_tokens + trunk
    rollout = 2 * policy_params * group_size * response_tokens
    return {
        "estimator_flops": estimator,
        "rollout_flops": rollout,
        "ratio": rollout / estimator,
        "arithmetic": (
            f"estimator: 2 x {encoder_params:.3g} params x {prompt_tokens} tokens + trunk {trunk:.3g} "
            f"= {estimator:.3g} FLOPs; rollout: 2 x {policy_params:.3g} params x {group_size} x "
            f"{response_tokens} tokens = {rollout:.3g} FLOPs; the estimator costs 1/{rollout / estimator:,.0f} "
            "of one prompt's rollout"
        ),
    }


TABLE = [
    Col("rollouts", "rollouts", ".0f"),
    Col("tokens", "tokens", ".0f"),
    Col("rollouts_per_step", "rollouts/step", ".0f"),
    Col("effective_rate_after_warmup", "eff. rate (after warm-up)"),
    Col("survival_rate_after_warmup", "survival"),
    Col("share_of_p_oracle_gain", "share of p-oracle gain"),
    Col("avg_at_k_start", "Avg@{k} start"),
    Col("avg_at_k", "Avg@{k} final"),
    Col("pass_at_k", "pass@{k} final"),
    Col("gain_per_1k_rollouts", "gain / 1k rollouts", ".4f"),
    Col("time_rollout_s", "rollout s/step", ".2f"),
    Col("time_estimator_s", "estimator s/step", ".2f"),
    Col("time_total_s", "total s/step", ".2f"),
    Col("estimator_share", "estimator share", ".3f"),
]


DECOMPOSITION = [
    Col("survival", "probed survival"),
    Col("eff_random", "eff random"),
    Col("eff_kept", "eff kept"),
    Col("eff_rank", "eff by its ranking"),
    Col("eff_p_oracle", "eff p-oracle"),
    Col("loss_ranking", "loss: ranking"),
    Col("loss_cut", "loss: cut + exploration"),
    Col("gain_freshness", "gain: fresher scores"),
    Col("spearman_pool", "Spearman on the pool"),
    Col("ece_zero_var", "ECE P(zero-var)"),
    Col("seen_share", "seen share"),
]
"""`--decompose`: where the gain is lost on the scanned pool (depo.bench.decomposition)."""


PAIRED_SEED = 4242
"""Sampling seed of the paired evaluation: every final policy answers with the same random draws."""


def final_policy(run_dir: Path) -> Path:
    """The policy of a finished run's last complete checkpoint (a run always saves its last step)."""
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise DepoError(f"{run_dir} has no complete checkpoint to evaluate")
    return found[-1][1] / POLICY_DIR


def paired_scores(run_dir: Path, tasks: list, *, k: int, max_new_tokens: int) -> np.ndarray:
    """Per held-out prompt, the final policy's Avg@k (cached in the run directory)."""
    cache = run_dir / f"paired_eval_{len(tasks)}x{k}.json"
    if cache.is_file():
        return np.asarray(json.loads(cache.read_text()), dtype=float)
    hf_logging.disable_progress_bar()  # one "Loading weights" bar per policy would bury the bench's own
    model, tokenizer = load_policy(final_policy(run_dir))
    rewards, _ = sample_rewards(model, tokenizer, tasks, k=k, max_new_tokens=max_new_tokens, seed=PAIRED_SEED)
    scores = rewards.mean(axis=1)
    cache.write_text(json.dumps(scores.tolist()))
    return scores


def add_paired_differences(results: dict[str, dict[str, float]], scores: dict[str, list[np.ndarray]]) -> None:
    """Each method's final Avg@k on the paired held-out set and its difference to `grpo` with the
    paired standard error: per prompt the difference of the two policies' Avg@k (same prompts,
    same seeds, same sampling draws), averaged over the seeds; SE = sd / sqrt(prompts). The SE is
    the evaluation's noise (which prompts, which answers), not the spread between training seeds
    (the ± column of the main table)."""
    for name, per_seed in scores.items():
        results[name]["paired_avg"] = float(np.mean(per_seed))
        if "grpo" not in scores or name == "grpo":
            continue
        pairs = min(len(per_seed), len(scores["grpo"]))
        diff = np.mean([per_seed[i] - scores["grpo"][i] for i in range(pairs)], axis=0)
        results[name]["paired_diff_vs_grpo"] = float(diff.mean())
        results[name]["paired_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))


def add_p_oracle_share(results: dict[str, dict[str, float]]) -> None:
    """With `grpo` and `p-oracle` in the run: each method's share of the p-oracle's gain in
    effective rate over GRPO's (docs/method.md section 7). The p-oracle keeps by rank at the base
    config's survival, as `depo` and `depo+dapo` do; the refill methods (`depo-paper`, `history`)
    keep their own survival: read the survival column beside the share."""
    if "grpo" not in results or "p-oracle" not in results:
        return
    base = results["grpo"]["effective_rate_after_warmup"]
    ceiling = results["p-oracle"]["effective_rate_after_warmup"]
    for name, agg in results.items():
        share = share_of_gain(agg["effective_rate_after_warmup"], base, ceiling)
        if name not in ("grpo", "dapo", "dapo+depo") and math.isfinite(share):  # dynamic sampling trains on informative groups only
            agg["share_of_p_oracle_gain"] = share


def _pm(agg: dict[str, float], key: str, fmt: str) -> str:
    mean, std = agg.get(key, float("nan")), agg.get(f"{key}_std", float("nan"))
    if not math.isfinite(mean):
        return "–"
    return f"{mean:{fmt}} ± {std:{fmt}}" if math.isfinite(std) and std > 0 else f"{mean:{fmt}}"


def results_table(results: dict[str, dict[str, float]], columns: list[Col] = TABLE, *, k: int = 8) -> str:
    """Markdown table, mean ± std over seeds (`k`: the evaluation's samples per prompt, for the headers)."""
    rows = [{"method": m, **{c.key: _pm(agg, c.key, c.fmt) for c in columns}} for m, agg in results.items()]
    return markdown_table(rows, [Col(c.key, c.header.format(k=k), "") for c in columns])


def _mean_curve(runs: list[list[dict[str, Any]]], x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Average y over seeds at each record index that has y (x averaged too: rollouts differ)."""
    series = [[(r.get(x_key), r[y_key]) for r in recs if isinstance(r.get(y_key), int | float)] for recs in runs]
    n = min(len(s) for s in series) if series else 0
    if n == 0:
        return np.zeros(0), np.zeros(0)
    xs = np.array([[float(p[0] or 0.0) for p in s[:n]] for s in series]).mean(axis=0)
    ys = np.array([[float(p[1]) for p in s[:n]] for s in series]).mean(axis=0)
    return xs, ys


def write_figures(records: dict[str, list[list[dict[str, Any]]]], out: Path, figures_dir: Path | None, prefix: str, k: int):
    """Fig. 1 (accuracy vs step), Fig. 4 (estimator vs actual), Fig. 5 (survival), efficiency curve."""
    avg = f"eval/avg@{k}"
    # Cumulative rollouts at an evaluation record = the step's running total (step 0 has none yet).
    for recs_list in records.values():
        for recs in recs_list:
            for r in recs:
                r.setdefault("rollout/total_responses", 0.0)

    def accuracy(ax, x_key: str):
        for method, runs in records.items():
            ax.plot(*_mean_curve(runs, x_key, avg), marker="o", ms=3, label=method)

    def estimator_vs_actual(ax):
        for method in (m for m in DEPO_METHODS if m in records):
            xs, pred = _mean_curve(records[method], "step", "estimator/pred_mean")
            xs2, target = _mean_curve(records[method], "step", "estimator/target_mean")
            line = ax.plot(xs, pred, label=f"{method} predicted")[0]
            ax.plot(xs2, target, ls="--", color=line.get_color(), label=f"{method} actual")

    def survival(ax):
        for method in (m for m in DEPO_METHODS if m in records):
            ax.plot(*_mean_curve(records[method], "step", "select/survival_rate"), label=method)

    held_out = f"held-out Avg@{k}"
    specs = [  # file, title, draw, x label, y label
        ("accuracy_vs_step.png", "held-out accuracy (paper Fig. 1)", lambda ax: accuracy(ax, "step"),
         "step", held_out),
        ("estimator_vs_actual.png", "estimator vs actual (paper Fig. 4)", estimator_vs_actual, "step",
         "mean reward of rolled-out prompts"),
        ("survival_rate.png", "survival rate (paper Fig. 5)", survival, "step",
         "survival rate (kept / scanned)"),
        ("accuracy_vs_rollouts.png", "accuracy vs rollouts consumed",
         lambda ax: accuracy(ax, "rollout/total_responses"), "cumulative rollouts (responses)",
         held_out),
    ]
    written = []
    for name, title, draw, xlabel, ylabel in specs:
        fig, (ax,) = new_figure(width=5.0, height=3.6)
        draw(ax)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        written.append(save_figure(fig, out, name, figures_dir=figures_dir, prefix=prefix))
    return written


def _check_same_config(cfg, run_dir: Path) -> None:
    """A finished run is reused only if it was trained with exactly this config."""
    saved = load_config(run_dir / "config.yaml").to_dict()
    wanted = cfg.to_dict()
    changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if changed:
        raise DepoError(
            f"{run_dir} is a finished run with other settings ({', '.join(changed)}): "
            "delete it or pick another --out to rerun"
        )


def run_bench(
    *,
    preset: str,
    seeds: int,
    steps: int,
    out: Path,
    warmup: int,
    methods: list[str],
    base: dict[str, Any],
    figures_dir: Path | None,
    decompose: bool = False,
    paired: int = 0,
) -> dict[str, Any]:
    """Train every method for every seed, then aggregate, tabulate and plot; with `decompose`,
    every method that selects is probed (depo.bench.decomposition) and a second table says
    where its gain is lost; with `paired` = N, every final policy is evaluated on N held-out
    prompts and compared with grpo's, prompt by prompt (`add_paired_differences`)."""
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[list[dict[str, Any]]]] = {m: [] for m in methods}
    summaries: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    start = time.perf_counter()
    jobs = [(seed, m) for seed in range(seeds) for m in methods]
    for seed, method in tqdm(jobs, desc="bench train", unit="run"):
        cfg = method_config(method, preset=preset, seed=seed, steps=steps, out=out, warmup=warmup, base=base)
        run_dir = Path(cfg.output_dir)
        if (run_dir / "summary.md").exists():  # finished earlier: reuse (delete the folder to rerun)
            _check_same_config(cfg, run_dir)
            recs = read_metrics(run_dir / "metrics.jsonl")
        else:
            trainer = Trainer.resume(run_dir) if (run_dir / "config.yaml").exists() else Trainer(cfg)
            if isinstance(trainer.selector, p_oracle.PolicyPassRateOracle):
                trainer.selector.bind(trainer)
            elif decompose:
                attach_probe(trainer, seed=seed)
            trainer.train()
            recs = trainer.read_metrics()
        records[method].append(recs)
        # every method read over the same steps, those after the DEPO rows' warm-up
        summaries[method].append(run_summary(recs, warmup=warmup, eval_k=cfg.eval_k))
    results = {m: aggregate(s) for m, s in summaries.items()}
    add_p_oracle_share(results)
    k = int(base.get("eval_k", 8))
    if paired:
        tasks = preset_tasks(preset, "heldout", paired, seed=0)
        scores = {m: [paired_scores(out / "runs" / m / f"seed{seed}", tasks, k=k,
                                    max_new_tokens=int(base.get("max_completion_length", 16)))
                      for seed in range(seeds)] for m in tqdm(methods, desc="paired evaluation", unit="method")}
        add_paired_differences(results, scores)
    table = results_table(results, k=k)
    if paired and "grpo" in results:
        rows = [{"method": m, "avg": f"{100 * r['paired_avg']:.1f}",
                 "diff": f"{100 * r['paired_diff_vs_grpo']:+.2f} ± {100 * r['paired_se']:.2f}" if "paired_se" in r else "–"}
                for m, r in results.items()]
        table += f"\n\nFinal Avg@{k} on {paired} held-out prompts, paired with grpo (same prompts, seeds and draws):\n\n"
        table += markdown_table(rows, [Col("avg", f"Avg@{k} (points)", ""), Col("diff", "vs grpo ± paired SE", "")])
    if decompose:
        probed = {m: r for m, r in results.items() if math.isfinite(r.get("eff_kept", float("nan")))}
        table += "\n\nWhere the gain is lost, on probed scanned pools (after warm-up):\n\n"
        table += results_table(probed, DECOMPOSITION)
    est = base.get("estimator_options", {})
    trunk_shape = {k: int(est[k]) for k in ("width", "feature_width", "num_blocks") if k in est}
    projection = estimator_flops_projection(**trunk_shape)
    meta = {
        "preset": preset,
        "seeds": seeds,
        "steps": steps,
        "warmup": warmup,
        "decompose": decompose,
        "paired_heldout": paired,
        "base": base,
        "wall_s": time.perf_counter() - start,
        "runs_wall_s": float(sum(s["run_s"] for runs in summaries.values() for s in runs if math.isfinite(s["run_s"]))),
        "flops_projection": projection,
        "per_seed": summaries,
    }
    write_results(out, results, table=table, meta=meta)
    write_figures(records, out, figures_dir, f"bench_train_{preset}_", k=k)
    (out / "records.json").write_text(json.dumps(records))
    return {"results": results, "table": table, "meta": meta}
