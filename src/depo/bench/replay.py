"""`depo bench replay`: selectors replayed on a real GRPO run's recorded group outcomes.

The trajectories file records, for each prompt and each epoch of a real GRPO
run (Qwen2.5-Math-1.5B, G = 8), the share k/G of its rollouts that were correct. The replay walks
the epochs in order; in each epoch every prompt still in the run is offered once (a seeded
shuffle per epoch), in candidate batches of `batch_size`. Each method decides before the
"rollout" which candidates to roll out, seeing only prompt texts and the outcomes of its own
earlier rollouts (a skipped prompt reveals nothing). Rolling out prompt q in epoch e costs G
rollouts and reveals the recorded k/G; the group is informative iff 0 < k < G. Kept groups are
handed to the method's `observe` in steps of `batch_size` groups (one RL step each).

Methods (one run, one data order; the peers as in docs/method.md section 5): `uniform` (GRPO),
`dynamic-sampling` (DAPO: uniform's rollouts, zero-variance groups dropped after the fact),
`history` (GRESO), `mopps` (MoPPS; it keeps `options.mopps.keep_share` of each batch), `speed`
(SPEED's screens, `replay_speed`), `depo-paper` (window [0.15, 0.85] after a 100-step warm-up),
`depo` (our default), `oracle` (knows this epoch's outcome; upper bound). Every method is also
measured against the p-oracle at its own survival (`p_oracle_reference`, docs/method.md section 7).

The replay is not the real run: the recorded outcomes come from the policy trained on *all*
prompts, so a method's skips do not change what the policy learns.

The learned methods use the estimator with a frozen encoder whose vectors are cached (on disk
across runs): the replay makes ~500 estimator steps over 1,209 prompts, and re-encoding every
prompt each step would not fit a 2-core CPU budget. The trunk and heads still train online.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from depo.bench.report import Col, markdown_table, new_figure, save_figure, write_results
from depo.bench.table import set_threads
from depo.config import Config, names_from, nearest_hint
from depo.data.io import chat_text, column, first_present, holdout_mask, prompt_ids, read_table
from depo.errors import DepoError
from depo.estimator import EstimatorConfig, OnlineEstimator
from depo.metrics import precision_at_recall, precision_recall, share_of_gain
from depo.rl.state import seed_everything
from depo.selection import make_selector
from depo.selection.base import checked_select
from depo.types import Candidate, GroupOutcome
from depo.zero_variance import zero_var_probability

METHODS = ("uniform", "dynamic-sampling", "history", "mopps", "speed", "depo-paper", "depo", "oracle")
LEARNED = ("depo-paper", "depo", "history", "mopps")
WITH_OPTIONS = ("oracle", *LEARNED)
"""The methods whose selector takes `options.<method>.*`."""
FIGURE_PREFIX = "bench_replay_"

COLUMNS = [
    Col("rollouts", "rollouts", ".0f"),
    Col("groups", "groups", ".0f"),
    Col("informative", "informative", ".0f"),
    Col("effective_rate", "effective rate"),
    Col("recall", "recall"),
    Col("rollouts_per_informative", "rollouts / informative", ".2f"),
    Col("cost_vs_dynamic_sampling", "cost vs DS", ".2f"),
    Col("precision_at_recall80", "eff @ recall≥0.8 (sweep)"),
    Col("p_oracle_eff", "p-oracle eff (same survival)"),
    Col("share_of_p_oracle_gain", "share of p-oracle gain"),
    Col("wall_s", "wall s", ".0f"),
]


MethodNames = names_from(METHODS, "replay method(s)")


class ReplayConfig(Config):
    """Settings of `depo bench replay` (each is a flag of the same name, or `--set name=value`)."""

    trajectories: Path
    """JSON: prompt id -> per-epoch share correct."""
    prompts: Path
    """Prompts (verl parquet or JSONL) keyed by the same ids."""
    group_size: int = Field(8, ge=2)
    """Rollouts per group in the recorded run."""
    batch_size: int = Field(128, ge=1)
    """Candidates per decision and groups per RL step."""
    seed: int = 0
    screen: int = Field(4, ge=2)
    """speed: screening rollouts per candidate (of group_size; the rest only if the screen is mixed)."""
    out: Path | None = None
    """Directory for results.json, results.md and plots."""
    figures_dir: str | None = None
    """Also copy plots here as bench_replay_*.png ('' = nowhere)."""
    methods: MethodNames = METHODS
    """Methods to replay (comma list): uniform, dynamic-sampling, history, mopps, speed, depo-paper, depo, oracle."""
    text_column: str | None = None
    """Prompt text column (default: prompt, problem or question)."""
    id_column: str | None = None
    """Prompt id column (default: extra_info.index, idx, ...)."""
    epochs: int | None = Field(None, ge=1)
    """Replay only the first N epochs."""
    max_prompts: int | None = Field(None, ge=1)
    """Replay a seeded subset of prompts."""
    part: Literal["tune", "eval"] | None = None
    """Replay one half of the prompts (a seeded hash of the id), so selector options can be
    chosen on the "tune" half and reported on the "eval" half."""
    options: dict[str, dict[str, Any]] = {}
    """Per-method selector options, e.g. `--set options.depo.threshold=0.6`."""
    estimator: dict[str, Any] = {}
    """EstimatorConfig overrides for the learned methods, e.g. `--set estimator.lr=1e-3`
    (default: frozen encoder, mean pooling)."""
    estimator_init: Path | None = None
    """Start depo/depo-paper from a saved estimator."""
    quick: bool = False
    """A <= 1 minute smoke run on a few prompts and epochs (CI)."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads (default 1 in quick mode, else 2): oversubscribed OpenMP threads spin and crawl."""

    @field_validator("options")
    @classmethod
    def _methods_with_options(cls, options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in options:
            if name not in WITH_OPTIONS:
                raise ValueError(f"options.{name}: not a replay method with options{nearest_hint(name, WITH_OPTIONS)}; "
                                 f"those are {', '.join(WITH_OPTIONS)}")
        return options


@dataclass
class ReplayData:
    ids: list[str]
    texts: list[str]
    outcomes: list[np.ndarray]  # per prompt: successes k per epoch (ints), length = epochs in the run

    @property
    def num_epochs(self) -> int:
        return max(len(o) for o in self.outcomes)


def load_replay_data(cfg: ReplayConfig) -> ReplayData:
    """Trajectories (JSON: prompt id -> per-epoch share correct) joined with the prompts' texts."""
    path = Path(cfg.trajectories)
    if not path.is_file():
        raise DepoError(f"trajectories file not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DepoError(f"{path} is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise DepoError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(raw, dict) or not raw:
        raise DepoError(f"{path} must be a non-empty JSON object: prompt id -> list of per-epoch accuracies")
    frame = read_table(cfg.prompts)
    source = Path(cfg.prompts).name
    text_name = cfg.text_column or first_present(frame, ("prompt", "problem", "question"))
    if text_name is None:
        raise DepoError(f"{source} has no prompt text column (prompt|problem|question); pass --text-column")
    texts = dict(zip(prompt_ids(frame, cfg.id_column, source=source),
                     (chat_text(v) for v in column(frame, text_name, source=source))))
    missing = [k for k in raw if k not in texts]
    if missing:
        raise DepoError(f"{len(missing)} trajectory prompt ids are not in {source} (e.g. {missing[:3]})")
    g = cfg.group_size
    outcomes = []
    for pid, values in raw.items():
        if not isinstance(values, list) or not values:
            raise DepoError(f"trajectory of prompt {pid!r} must be a non-empty list of accuracies")
        acc = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(acc)) or acc.min() < 0 or acc.max() > 1:
            raise DepoError(f"trajectory of prompt {pid!r} has values outside [0, 1]")
        k = np.rint(acc * g)
        if np.max(np.abs(k - acc * g)) > 1e-6:
            raise DepoError(f"trajectory of prompt {pid!r} is not a multiple of 1/{g}: is --group-size right?")
        outcomes.append(k.astype(int))
    ids = list(raw)
    chosen = range(len(ids))
    if cfg.max_prompts is not None:
        chosen = sorted(np.random.default_rng(cfg.seed).permutation(len(ids))[: cfg.max_prompts])
    if cfg.part is not None:
        held = holdout_mask([ids[i] for i in chosen], 0.5, cfg.seed + 104729)
        chosen = [i for i, h in zip(chosen, held) if h == (cfg.part == "eval")]
    return ReplayData([ids[i] for i in chosen], [texts[ids[i]] for i in chosen],
                      [outcomes[i][: cfg.epochs] for i in chosen])


# ------------------------------------------------------------------------------------ methods
def _estimator(cfg: ReplayConfig, texts: Sequence[str]):
    if cfg.estimator_init is not None:
        est = OnlineEstimator.load(cfg.estimator_init)
    else:
        options = {"freeze_encoder": True, "pooling": "mean", "seed": cfg.seed, **cfg.estimator}
        if cfg.quick:
            options["max_length"] = min(int(options.get("max_length", 512)), 48)
        est = OnlineEstimator(EstimatorConfig.build(options, what="bench replay estimator"))
    est.features.warm_cache(texts, use_disk=not cfg.quick, progress=not cfg.quick)
    return est


def make_method(name: str, cfg: ReplayConfig, oracle_rates: dict[str, float], base_estimator=None):
    """The selector behind a replay method (dynamic sampling is uniform's rollouts, counted differently).

    `oracle_rates`: the current epoch's recorded pass rates (the oracle knows them in advance)."""
    if name in ("uniform", "dynamic-sampling"):
        return make_selector("uniform", group_size=cfg.group_size, seed=cfg.seed)
    if name not in WITH_OPTIONS:
        raise DepoError(f"unknown replay method {name!r}; choose from {', '.join(METHODS)}")
    options = dict(cfg.options.get(name, {}))
    if name == "oracle":
        options.setdefault("pass_rates", oracle_rates)
    estimator = copy.deepcopy(base_estimator) if name in ("depo", "depo-paper") else None
    return make_selector(name, group_size=cfg.group_size, seed=cfg.seed, options=options, estimator=estimator)


# ------------------------------------------------------------------------------------ replay
@dataclass
class MethodLog:
    """Per decision: epoch, prompt index, kept?, score (higher = keep), informative? (ground truth)."""

    epoch: list[int] = field(default_factory=list)
    prompt: list[int] = field(default_factory=list)
    kept: list[bool] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    informative: list[bool] = field(default_factory=list)

    def add(self, epoch: int, prompt: int, kept: bool, score: float, informative: bool) -> None:
        self.epoch.append(epoch)
        self.prompt.append(prompt)
        self.kept.append(kept)
        self.score.append(score)
        self.informative.append(informative)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}  # no deep copy first


def replay_method(selector, data: ReplayData, cfg: ReplayConfig, oracle_rates: dict[str, float]) -> MethodLog:
    """Walk the epochs; the selector decides per candidate batch and observes its kept groups.

    torch's global generator is seeded first: the trunk's dropout draws from it, so each method's
    replay is a function of the seed alone, whatever ran before it in the process."""
    seed_everything(cfg.seed)
    g, bs = cfg.group_size, cfg.batch_size
    record = MethodLog()
    pending: list[GroupOutcome] = []
    for epoch in range(data.num_epochs):
        alive = [i for i, o in enumerate(data.outcomes) if len(o) > epoch]
        order = np.random.default_rng([cfg.seed, epoch]).permutation(alive)
        oracle_rates.clear()
        oracle_rates.update({data.ids[i]: data.outcomes[i][epoch] / g for i in alive})
        for start in range(0, len(order), bs):
            idx = [int(i) for i in order[start : start + bs]]
            batch = [Candidate(data.ids[i], data.texts[i]) for i in idx]
            decisions = checked_select(selector, batch)
            for j, i in enumerate(idx):
                k = int(data.outcomes[i][epoch])
                record.add(epoch, i, decisions.keep[j], float(decisions.priority[j]), 0 < k < g)
                if decisions.keep[j]:
                    rewards = (1.0,) * k + (0.0,) * (g - k)
                    pending.append(GroupOutcome(data.ids[i], data.texts[i], rewards, explored=decisions.explored[j]))
            while len(pending) >= bs:
                selector.observe(pending[:bs])
                pending = pending[bs:]
        if pending:  # the epoch's last, partial RL step
            selector.observe(pending)
            pending = []
    return record


def replay_speed(data: ReplayData, cfg: ReplayConfig) -> MethodLog:
    """SPEED-style screening: every candidate gets `screen` rollouts, drawn without replacement
    from its recorded G answers (k_s ~ Hypergeometric(G, k, screen)); the group is completed (and
    trained on) iff the screen is mixed, 0 < k_s < screen, so every completed group is informative
    and an informative prompt whose screen came out unanimous is lost. `score` = the screen's
    own informativeness, so the run's sweep is its single operating point."""
    g, n_screen = cfg.group_size, cfg.screen
    if n_screen >= g:
        raise DepoError(f"speed: screen ({n_screen}) must be smaller than the group size ({g})")
    rng = np.random.default_rng([cfg.seed, 7177])
    record = MethodLog()
    for epoch in range(data.num_epochs):
        alive = [i for i, o in enumerate(data.outcomes) if len(o) > epoch]
        for i in np.random.default_rng([cfg.seed, epoch]).permutation(alive):
            k = int(data.outcomes[i][epoch])
            k_s = int(rng.hypergeometric(k, g - k, n_screen))
            mixed = 0 < k_s < n_screen
            record.add(epoch, int(i), mixed, float(mixed), 0 < k < g)
    return record


def rollouts_spent(name: str, candidates: int, groups: int, g: int, screen: int = 0) -> int:
    """Rollouts a method paid for `groups` rolled-out groups out of `candidates` offered: speed
    screens every candidate (`screen` answers) and completes only its `groups`."""
    return candidates * screen + groups * (g - screen) if name == "speed" else groups * g


def summarize(name: str, rec: MethodLog, g: int, screen: int = 0) -> dict[str, float]:
    """Totals over the whole replay for one method (`screen`: speed's screening rollouts)."""
    a = rec.arrays()
    kept, informative = a["kept"].astype(bool), a["informative"].astype(bool)
    groups = int(kept.sum())
    found = int((kept & informative).sum())
    total_informative = int(informative.sum())
    if name == "dynamic-sampling":  # DAPO rolls out everything, drops zero-variance groups after
        groups, found = len(kept), total_informative
    rollouts = rollouts_spent(name, len(kept), groups, g, screen)
    return {
        "rollouts": float(rollouts),
        "groups": float(groups),
        "informative": float(found),
        # informative groups per G rollouts spent (SPEED's screens count; equals found / groups otherwise)
        "effective_rate": found * g / rollouts if rollouts else float("nan"),
        "recall": found / total_informative if total_informative else float("nan"),
        "rollouts_per_informative": rollouts / found if found else float("nan"),
    }


def p_oracle_rates(data: ReplayData, g: int, window: int = 2) -> list[np.ndarray]:
    """Per prompt and epoch, the pass rate a p-oracle knows: *estimated*, since the recorded run
    holds one sample of G answers per epoch: the mean k/G of the `window` epochs on each side,
    the current epoch excluded (the rate drifts slowly; this epoch's outcome stays unseen)."""
    rates = []
    for outcome in data.outcomes:
        share = np.asarray(outcome, float) / g
        n = len(share)
        est = np.empty(n)
        for e in range(n):
            near = [share[j] for j in range(max(0, e - window), min(n, e + window + 1)) if j != e]
            est[e] = np.mean(near) if near else 0.5
        rates.append(est)
    return rates


def p_oracle_reference(rec: MethodLog, data: ReplayData, rates: list[np.ndarray], g: int) -> dict[str, float]:
    """The p-oracle and random keeping at this method's survival: per epoch, as many prompts as
    the method kept, the p-oracle taking those most likely informative under its known rate
    (1 - P(zero-variance)); effective rates on the recorded outcomes. `share_of_p_oracle_gain` =
    (method - random) / (p-oracle - random): how much of what selection before the rollout can
    buy the method captured (docs/method.md section 7)."""
    a = rec.arrays()
    epoch, kept = a["epoch"], a["kept"].astype(bool)
    found_oracle = found_random = kept_total = 0.0
    for e in np.unique(epoch):
        alive = [i for i, o in enumerate(data.outcomes) if len(o) > e]
        n_keep = int(kept[epoch == e].sum())
        if not n_keep:
            continue
        inf = np.array([0 < data.outcomes[i][e] < g for i in alive], float)
        score = 1.0 - zero_var_probability(np.array([rates[i][e] for i in alive]), g)
        top = np.argsort(-score, kind="stable")[:n_keep]
        found_oracle += inf[top].sum()
        found_random += n_keep * inf.mean()
        kept_total += n_keep
    if not kept_total:
        return {"p_oracle_eff": float("nan"), "random_eff_same_survival": float("nan"), "share_of_p_oracle_gain": float("nan")}
    oracle, random = found_oracle / kept_total, found_random / kept_total
    method = float((kept & a["informative"].astype(bool)).sum()) / kept_total
    return {"p_oracle_eff": oracle, "random_eff_same_survival": random, "share_of_p_oracle_gain": share_of_gain(method, random, oracle)}


def per_epoch(rec: MethodLog, name: str, num_epochs: int, g: int, screen: int = 0) -> dict[str, list[float]]:
    a = rec.arrays()
    kept, informative = a["kept"].astype(bool), a["informative"].astype(bool)
    if name == "dynamic-sampling":
        kept = np.ones_like(kept)
    eff, recall, share = [], [], []
    for e in range(num_epochs):
        m = a["epoch"] == e
        k, i = kept[m], informative[m]
        spent = rollouts_spent(name, len(k), int(k.sum()), g, screen) / g  # in groups of G
        eff.append(float((k & i).sum() / spent) if spent else float("nan"))
        recall.append(float((k & i).sum() / i.sum()) if i.sum() else float("nan"))
        share.append(float(k.mean()) if m.any() else float("nan"))
    return {"effective_rate": eff, "recall": recall, "keep_share": share}


# ------------------------------------------------------------------------------------ run
def quick_config(cfg: ReplayConfig) -> ReplayConfig:
    """The <= 1 minute CI mode: 96 prompts, 6 epochs, batches of 16, short encoder inputs."""
    options = {**cfg.options, "depo-paper": {"warmup_steps": 6, **cfg.options.get("depo-paper", {})}}
    return cfg.model_copy(update={"quick": True, "max_prompts": min(cfg.max_prompts or 96, 96),
                                  "epochs": min(cfg.epochs or 6, 6), "batch_size": min(cfg.batch_size, 16),
                                  "options": options})


def run_replay(cfg: ReplayConfig, log=print) -> dict[str, Any]:
    """Replay every method over the same epochs and data order; write results, table and figures."""
    if cfg.quick:
        cfg = quick_config(cfg)
    set_threads(cfg.threads, cfg.quick)
    wall = time.perf_counter()
    data = load_replay_data(cfg)
    n_groups = sum(len(o) for o in data.outcomes)
    n_inf = sum(int(((o > 0) & (o < cfg.group_size)).sum()) for o in data.outcomes)
    log(f"{len(data.ids)} prompts, {data.num_epochs} epochs, {n_groups} groups, {n_inf / n_groups:.3f} informative")
    base_estimator = None
    if any(m in cfg.methods for m in ("depo", "depo-paper")):
        start = time.perf_counter()
        base_estimator = _estimator(cfg, data.texts)
        log(f"estimator ready (frozen encoder, cached vectors) in {time.perf_counter() - start:.0f} s")
    oracle_rates: dict[str, float] = {}
    p_rates = p_oracle_rates(data, cfg.group_size)
    records: dict[str, MethodLog] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in cfg.methods:
        start = time.perf_counter()
        if name == "dynamic-sampling" and "uniform" in records:
            rec = records["uniform"]
        elif name == "speed":
            rec = replay_speed(data, cfg)
        else:
            rec = replay_method(make_method(name, cfg, oracle_rates, base_estimator), data, cfg, oracle_rates)
        records[name] = rec
        r = results[name] = summarize(name, rec, cfg.group_size, cfg.screen)
        if name not in ("dynamic-sampling", "speed"):  # speed's survival is after its screens
            r.update(p_oracle_reference(rec, data, p_rates, cfg.group_size))
        r["wall_s"] = time.perf_counter() - start
        if name in LEARNED:
            r["precision_at_recall80"] = precision_at_recall(rec.score, rec.informative, 0.8)
        log(f"  {name}: effective rate {r['effective_rate']:.3f}, recall {r['recall']:.3f} ({r['wall_s']:.0f} s)")
    ds = results.get("dynamic-sampling") or results.get("uniform")
    if ds is not None and ds["informative"]:
        ds_cost = ds["rollouts"] / ds["informative"]
        for metrics in results.values():
            metrics["cost_vs_dynamic_sampling"] = metrics["rollouts_per_informative"] / ds_cost
    for name, rec in records.items():
        results[name]["per_epoch"] = per_epoch(rec, name, data.num_epochs, cfg.group_size, cfg.screen)
    wall_s = time.perf_counter() - wall
    table = markdown_table([{"method": n, **m} for n, m in results.items()], COLUMNS)
    meta = {
        "command": "depo bench replay",
        "config": cfg.to_dict(),
        "prompts": len(data.ids),
        "epochs": data.num_epochs,
        "groups": n_groups,
        "informative_share": n_inf / n_groups,
        "wall_s": wall_s,
    }
    if cfg.out is not None:
        write_results(cfg.out, results, table=table, meta=meta)
        _figures(cfg, records, results)
    log(table)
    log(f"wall time {wall_s:.0f} s")
    return {"meta": meta, **results}


def _figures(cfg: ReplayConfig, records: dict[str, MethodLog], results: dict[str, dict[str, Any]]) -> None:
    fig, axes = new_figure(2, width=4.4, height=3.4)
    for name, r in results.items():
        if name == "dynamic-sampling":
            continue
        axes[0].plot(r["per_epoch"]["effective_rate"], label=name, lw=1.2)
        axes[1].plot(r["per_epoch"]["recall"], label=name, lw=1.2)
    axes[0].set(title="effective rate per epoch", xlabel="epoch", ylabel="informative / rolled out", ylim=(0, 1.02))
    axes[1].set(title="recall of informative groups", xlabel="epoch", ylabel="found / all informative", ylim=(0, 1.02))
    axes[0].legend(fontsize=7)
    save_figure(fig, cfg.out, "curves.png", figures_dir=cfg.figures_dir, prefix=FIGURE_PREFIX)
    fig, (ax,) = new_figure(1, width=4.6, height=3.8)
    for name in LEARNED:
        if name in records:
            recall, precision = precision_recall(records[name].score, records[name].informative)
            ax.plot(recall, precision, label=f"{name} (sweep)", lw=1.2)
    for name, r in results.items():  # the run's own operating point
        ax.plot([r["recall"]], [r["effective_rate"]], "o", ms=4, label=f"{name} (run)")
    ax.axvline(0.8, color="grey", lw=0.6, ls=":")
    ax.set(title="precision-recall of informative groups", xlabel="recall", ylabel="effective rate",
           xlim=(0, 1.02), ylim=(0.4, 1.02))
    ax.legend(fontsize=6)
    save_figure(fig, cfg.out, "pr.png", figures_dir=cfg.figures_dir, prefix=FIGURE_PREFIX)
