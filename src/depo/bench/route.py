"""`depo bench route`: accuracy against the share of queries sent to the small model.

The DEPO paper's routing experiment (section 5, Table 3) in kind, on measured success rates:
train pass-rate predictors for the small and the large model on the training rows, then on the
held-out rows route each query and score the routing by its expected accuracy, the mean true
success rate of the chosen model (depo.bench.route_curves). In one run, on one split:

- `random`: a random share of queries goes small (exact expectation, no sampling noise);
- `oracle_small`: the paper's threshold rule on the small model's *true* rate (an upper bound
  for any predictor of p_small);
- `oracle_gain`: the gain-aware rule on the *true* gain p_large - p_small (the ceiling);
- for each predictor (TF-IDF ridge, the DEPO estimator with a frozen encoder + trained trunk,
  and their average `ensemble`): `<predictor>_threshold` (paper: small iff p_small >= tau) and
  `<predictor>_gain` (large iff predicted gain > lambda * cost gap).

Tau and lambda are swept through the Router's own rules; the dense curve is the same sweep over
every distinct score value. Those curves show what a predictor's ranking allows; the target is
measured at an operating point chosen on validation rows instead (`operating_points`), for the
primary rule `bayes_gain` (the two-head Bayesian estimator, gain rule), the paper's threshold
rule beside it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from depo.bench.estimator import EstimatorBenchConfig, tfidf_ridge, train_bayes, train_frozen
from depo.bench.report import Col, markdown_table, new_figure, save_figure, timed, write_results
from depo.bench.route_curves import CurvePoint, accuracy_at_share, random_curve, routed_accuracy
from depo.bench.table import Rows, TableBenchConfig, load_rows, set_threads
from depo.data.io import holdout_mask
from depo.errors import DepoError
from depo.metrics import spearman
from depo.routing.router import gain_choice, threshold_choice

TABLE_TAUS = (0.75, 0.7, 0.5, 0.3)
PAPER_SHARES = (0.267, 0.348, 0.552, 0.683)  # shares the paper's tau values gave (docs/method.md section 2.4)
TARGET_SHARE = 0.27
VALIDATION_FRACTION = 0.2
TARGET_MAX_LOSS = 4.0  # accuracy points below large-only the bench reports as met
SHARE_SLACK = 0.01  # the test share may fall this far below TARGET_SHARE (sending fewer queries small loses less)
PRIMARY_RULE = "bayes_gain"
DENSE_SHARES = tuple(np.round(np.linspace(0.0, 1.0, 101), 4).tolist())


class RouteBenchConfig(TableBenchConfig):
    """Settings of `depo bench route` (each is a flag of the same name, or `--set name=value`)."""

    small: str
    """Column of the small model's success rates."""
    large: str
    """Column of the large model's success rates."""
    out: Path = Path("runs/bench_route")
    """Directory for results.json, results.md and the plot."""
    cost_small: float = Field(1.5, gt=0.0)
    """Cost per query of the small model (e.g. parameters, B)."""
    cost_large: float = Field(7.0, gt=0.0)
    estimator: bool = True
    """Fit the DEPO estimators (trunk and bayes); false: TF-IDF ridge only."""
    trunk: bool = True
    """With `estimator`: also fit the paper's trunk per model (slow on CPU; bayes is always fitted)."""
    epochs: int = Field(30, ge=1)
    """Most trunk epochs (the best on a validation part of train is kept)."""
    patience: int = Field(5, ge=1)
    save_estimators: Path | None = None
    """Save the trained estimators here, for depo route serve: estimator_bayes (one estimator,
    a head per model: the config's top-level `estimator:`), and with the trunk estimator_small /
    estimator_large (per-backend `estimator:`)."""

    @model_validator(mode="after")
    def _large_costs_more(self) -> RouteBenchConfig:
        if self.cost_large <= self.cost_small:
            raise ValueError("cost_large must exceed cost_small (the large model is the expensive one)")
        return self


MODELS = ("small", "large")
"""The two models, in the order of the pass-rate columns of `Rows.y`."""


# ---------------------------------------------------------------------------------------- predictors
def fit_tfidf(train: Rows, test: Rows) -> dict[str, np.ndarray]:
    """TF-IDF ridge per model (the README's reference regressor; depo.bench.estimator.tfidf_ridge)."""
    return {w: tfidf_ridge(train.target(j), test.target(j)) for j, w in enumerate(MODELS)}


def fit_estimators(cfg: RouteBenchConfig, train: Rows, test: Rows, log) -> tuple[dict[str, np.ndarray], dict]:
    """One DEPO estimator per model: frozen encoder (vectors cached on disk) + trunk trained with the
    paper's losses; epochs chosen on a validation part of the training rows (never the test rows)."""
    bench_cfg = EstimatorBenchConfig(
        train=cfg.train, target="", seed=cfg.seed, epochs=cfg.epochs, patience=cfg.patience, quick=cfg.quick
    )
    if cfg.quick:
        bench_cfg.max_length = 48
    preds, info = {}, {}
    for j, which in enumerate(MODELS):
        log(f"estimator for the {which} model ({(cfg.small, cfg.large)[j]}):")
        est, info[which] = train_frozen(bench_cfg, train.target(j), test.target(j), log)
        preds[which] = est.predict(test.texts)
        if cfg.save_estimators is not None:
            path = est.save(Path(cfg.save_estimators) / f"estimator_{which}")
            log(f"  saved to {path}")
    return preds, info


def fit_bayes(cfg: RouteBenchConfig, train: Rows, test: Rows, save: bool = False) -> dict[str, np.ndarray]:
    """One Bayesian estimator with a head per model (docs/method.md section 4.10): both heads
    share the features and one factorisation, so their errors are correlated and their
    difference, the predicted gain, is less noisy than two separate fits'."""
    est = train_bayes(EstimatorBenchConfig(train=cfg.train, target="", seed=cfg.seed, quick=cfg.quick,
                                           max_length=48 if cfg.quick else 256), train)
    pred = est.predict(test.texts)
    if save and cfg.save_estimators is not None:  # heads in (small, large) order, for `depo route serve`'s `estimator:`
        est.save(Path(cfg.save_estimators) / "estimator_bayes")
    return {"small": pred[:, 0], "large": pred[:, 1]}


# ---------------------------------------------------------------------------------------- evaluation
def sweep_router(rates: np.ndarray, costs: tuple[float, float], rule: str, knobs: Sequence[float], test: Rows) -> list[dict]:
    """Route the test rows with the Router's own rule functions at each knob value (tau or lambda)."""
    out = []
    for knob in knobs:
        chosen = threshold_choice(rates, knob) if rule == "threshold" else gain_choice(rates, costs, knob)
        to_small = chosen == 0
        out.append({"knob": round(float(knob), 5), "share": round(float(to_small.mean()), 4),
                    "accuracy": round(routed_accuracy(to_small, *test.y.T), 5)})
    return out


def evaluate_rules(preds: dict[str, dict[str, np.ndarray]], test: Rows, costs: tuple[float, float]) -> dict[str, Any]:
    """Every rule's dense curve, knob sweep, and accuracy at the target share."""
    ps, pl = test.y.T
    large_only = float(pl.mean())
    rules: dict[str, dict[str, Any]] = {}

    def add(name: str, score: np.ndarray | None, sweep: list[dict] | None, kind: str) -> None:
        def point(share: float) -> CurvePoint:
            if score is None:  # random routing
                return random_curve(ps, pl, [share])[0]
            return accuracy_at_share(score, ps, pl, share)

        at = point(TARGET_SHARE)
        rules[name] = {
            "kind": kind,
            "curve": [[round(p.share, 4), round(p.accuracy, 5)] for p in map(point, DENSE_SHARES)],
            "acc_at_27": round(at.accuracy, 5),
            "share_at_27": round(at.share, 4),
            "loss_at_27_points": round(100 * (large_only - at.accuracy), 2),
            "acc_at_paper_shares": {f"{s:.3f}": round(point(s).accuracy, 5) for s in PAPER_SHARES},
        }
        if sweep is not None:
            rules[name]["sweep"] = sweep

    add("random", None, None, "baseline")
    add("oracle_small", ps, None, "oracle: threshold on the true p_small")
    add("oracle_gain", ps - pl, None, "oracle: true gain")
    dc = costs[1] - costs[0]
    taus = np.round(np.linspace(0.0, 1.0, 41), 3)
    lams = np.round(np.linspace(0.0, 1.0, 41) / dc, 5)  # gain thresholds from 0 to one pass per cost unit
    for name, p in preds.items():
        rates = np.stack([p["small"], p["large"]], axis=1)
        add(f"{name}_threshold", p["small"], sweep_router(rates, costs, "threshold", taus, test), "paper threshold rule")
        add(f"{name}_gain", p["small"] - p["large"], sweep_router(rates, costs, "gain", lams, test), "gain-aware rule")
    return rules


def knobs_for_share(p_small: np.ndarray, p_large: np.ndarray, share: float, cost_gap: float) -> dict[str, float]:
    """The tau (threshold rule) and lambda (gain rule) that send `share` of these rows to the
    small model: quantiles of p_small and of the predicted gain p_large - p_small."""
    tau = float(np.quantile(p_small, 1.0 - share))
    lam = float(np.quantile(p_large - p_small, share)) / cost_gap
    return {"tau": tau, "lambda": lam}


def operating_points(cfg: RouteBenchConfig, train: Rows, test: Rows, log) -> dict[str, dict[str, Any]]:
    """Per validated predictor and rule, routing of the test rows at a knob chosen without them.

    The predictor is fitted on the training rows minus a validation part (a seeded hash,
    VALIDATION_FRACTION of them); tau and lambda are set so that TARGET_SHARE of the validation
    rows go to the small model; that same fitted predictor, with those knobs, then routes the
    test rows, as a deployed router would (a knob set for one fit does not transfer to a refit:
    its predictions spread differently). The test share lands near, not at, the target.
    """
    held = holdout_mask(train.ids, VALIDATION_FRACTION, cfg.seed + 1)
    fit, val = train.subset(~held), train.subset(held)
    log(f"operating points: fitted on {len(fit.ids)} training rows, knobs chosen on {len(val.ids)} validation rows")
    both = val.concat(test)
    fitted = {"tfidf": fit_tfidf(fit, both)}
    if cfg.estimator:
        fitted["bayes"] = fit_bayes(cfg, fit, both)
    n_val, costs = len(val.ids), (cfg.cost_small, cfg.cost_large)
    large_only = float(test.y[:, 1].mean())
    out = {}
    for name, p in fitted.items():
        knobs = knobs_for_share(p["small"][:n_val], p["large"][:n_val], TARGET_SHARE, costs[1] - costs[0])
        rates = np.stack([p["small"][n_val:], p["large"][n_val:]], axis=1)
        for rule, knob in (("threshold", knobs["tau"]), ("gain", knobs["lambda"])):
            (point,) = sweep_router(rates, costs, rule, [knob], test)
            out[f"{name}_{rule}"] = {**point, "loss_points": round(100 * (large_only - point["accuracy"]), 2)}
    return out


def threshold_table(preds: dict[str, dict[str, np.ndarray]], test: Rows) -> list[dict[str, Any]]:
    """Table 3 of the paper: share to small and accuracy of the threshold rule at each tau."""
    rows = []
    for tau in TABLE_TAUS:
        row: dict[str, Any] = {"tau": tau}
        for name, p in preds.items():
            to_small = p["small"] >= tau
            row[f"{name}_share"] = float(to_small.mean())
            row[f"{name}_acc"] = routed_accuracy(to_small, *test.y.T)
        rows.append(row)
    return rows


def render_tables(results: dict[str, Any], preds: Sequence[str]) -> str:
    """Markdown: the paper's threshold table, every rule at equal shares, the operating points, the target."""
    b = results["baselines"]
    shares = [f"{s:.3f}" for s in PAPER_SHARES]
    at_shares = [{"rule": name, **{s: 100 * r["acc_at_paper_shares"][s] for s in shares}, "acc_at_27": 100 * r["acc_at_27"],
                  "loss_at_27_points": r["loss_at_27_points"]} for name, r in results["rules"].items()]
    operating = [{"rule": name, "knob": f"{'tau' if name.endswith('_threshold') else 'lambda'} = {r['knob']:.4g}",
                  "share": r["share"], "accuracy": 100 * r["accuracy"], "loss_points": r["loss_points"]}
                 for name, r in results["operating_points"].items()]
    t = results["target"]
    return "\n\n".join([
        f"Test rows: {results['n_test']} (train {results['n_train']}). Large only: {100 * b['large_only']:.1f}; "
        f"small only: {100 * b['small_only']:.1f}; accuracy = mean true success rate of the chosen model (%).",
        "Paper rule (small iff predicted p_small >= tau):",
        markdown_table(
            [{**row, **{f"{p}_acc": 100 * row[f"{p}_acc"] for p in preds}} for row in results["threshold_table"]],
            [Col(f"{p}_{k}", f"{p} {k}", fmt) for p in preds for k, fmt in (("share", ".1%"), ("acc", ".1f"))],
            name_key="tau"),
        "Every rule at equal shares to the small model (the paper's shares, and the 27% target):",
        markdown_table(at_shares, [*(Col(s, f"{100 * float(s):.1f}%", ".1f") for s in shares), Col("acc_at_27", "27%", ".1f"),
                                   Col("loss_at_27_points", "loss at 27% (pts)", ".2f")], name_key="rule"),
        f"At the operating point chosen on validation rows for a {100 * TARGET_SHARE:.0f}% share (test rows):",
        markdown_table(operating, [Col("knob", "knob"), Col("share", "share to small", ".1%"), Col("accuracy", "accuracy", ".1f"),
                                   Col("loss_points", "loss (pts)", ".2f")], name_key="rule"),
        f"Target ({t['rule']} at its validation-chosen operating point, share {100 * t['test_share']:.1f}% on the test "
        f"rows, loss <= {TARGET_MAX_LOSS} points at a share >= {100 * (TARGET_SHARE - SHARE_SLACK):.0f}%): "
        f"{'MET' if t['met'] else 'MISSED'}, measured loss {t['loss_points']:.2f} points.",
    ])


def plot(results: dict[str, Any], out: Path, figures_dir: str | Path | None) -> Path:
    fig, (ax,) = new_figure(width=6.0, height=4.2)
    styles = {"random": ("grey", ":"), "oracle_small": ("black", "--"), "oracle_gain": ("black", "-")}
    colors = {"tfidf": "tab:orange", "bayes": "tab:purple", "estimator": "tab:blue", "ensemble": "tab:green"}
    for name, r in results["rules"].items():
        pts = np.array(r["curve"])
        if name in styles:
            color, ls = styles[name]
        else:
            color, ls = colors.get(name.rsplit("_", 1)[0], "tab:red"), ("-" if name.endswith("_gain") else "--")
        ax.plot(100 * pts[:, 0], 100 * pts[:, 1], color=color, ls=ls, lw=1.3, label=name)
    b = results["baselines"]
    ax.axhline(100 * b["large_only"] - TARGET_MAX_LOSS, color="tab:red", lw=0.8, alpha=0.6, label=f"large only - {TARGET_MAX_LOSS:g} pts")
    ax.axvline(100 * TARGET_SHARE, color="tab:red", lw=0.8, alpha=0.4)
    ax.set(xlabel="queries sent to the small model (%)", ylabel="expected accuracy (%)")
    ax.set_title("Routing: accuracy vs share to small (test rows)", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, out, f"bench_route_{results['data_name']}.png", figures_dir=figures_dir)


def quick_config(cfg: RouteBenchConfig) -> RouteBenchConfig:
    """The <= 1 minute test mode: few rows, short texts, few epochs; the same code path otherwise."""
    return cfg.model_copy(update={"quick": True, "train_rows": min(cfg.train_rows or 120, 120),
                                  "test_rows": min(cfg.test_rows or 60, 60), "epochs": min(cfg.epochs, 2),
                                  "patience": 2})


def run_bench(cfg: RouteBenchConfig, log=print) -> dict[str, Any]:
    """Fit the predictors, evaluate every rule on the test rows, write results.json, table and plot."""
    if cfg.quick:
        cfg = quick_config(cfg)
    set_threads(cfg.threads, cfg.quick)
    start = time.perf_counter()
    if cfg.small == cfg.large:
        raise DepoError("--small and --large must name different columns")
    train, test = load_rows(cfg, [cfg.small, cfg.large])
    log(f"route bench: {len(train.ids)} train rows, {len(test.ids)} test rows; small={cfg.small} large={cfg.large}")
    timings: dict[str, float] = {}
    preds: dict[str, dict[str, np.ndarray]] = {}
    preds["tfidf"] = timed(timings, "tfidf_s", lambda: fit_tfidf(train, test))
    est_info: dict[str, Any] = {}
    if cfg.estimator:
        preds["bayes"] = timed(timings, "bayes_s", lambda: fit_bayes(cfg, train, test, save=True))
    if cfg.estimator and cfg.trunk:
        preds["estimator"], est_info = timed(
            timings, "estimator_s", lambda: fit_estimators(cfg, train, test, log))
        preds["ensemble"] = {w: (preds["tfidf"][w] + preds["estimator"][w]) / 2 for w in MODELS}
    costs = (cfg.cost_small, cfg.cost_large)
    quality = {
        name: {w: spearman(p[w], test.y[:, j]) for j, w in enumerate(MODELS)}
        for name, p in preds.items()
    }
    rules = evaluate_rules(preds, test, costs)
    operating = timed(timings, "operating_points_s", lambda: operating_points(cfg, train, test, log))
    primary = next(r for r in (PRIMARY_RULE, "tfidf_gain") if r in operating)
    loss = operating[primary]["loss_points"]
    results: dict[str, Any] = {
        "data_name": Path(cfg.train).stem,
        "n_train": len(train.ids),
        "n_test": len(test.ids),
        "baselines": {"large_only": float(test.y[:, 1].mean()), "small_only": float(test.y[:, 0].mean())},
        "rules": rules,
        "operating_points": operating,
        "threshold_table": threshold_table(preds, test),
        "spearman": quality,
        "estimator": est_info,
        "target": {
            "rule": primary,
            "share": TARGET_SHARE,
            "test_share": operating[primary]["share"],
            "knob_chosen_on": f"{VALIDATION_FRACTION:.0%} of the training rows (validation)",
            "max_loss_points": TARGET_MAX_LOSS,
            "loss_points": loss,
            "met": bool(loss <= TARGET_MAX_LOSS and operating[primary]["share"] >= TARGET_SHARE - SHARE_SLACK),
        },
    }
    table = render_tables(results, list(preds))
    timings["total_s"] = time.perf_counter() - start
    meta = {
        "command": "depo bench route",
        "train": str(cfg.train),
        "test": str(cfg.test) if cfg.test else None,
        "holdout_fraction": None if cfg.test else cfg.holdout_fraction,
        "small": cfg.small,
        "large": cfg.large,
        "costs": list(costs),
        "seed": cfg.seed,
        "quick": cfg.quick,
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    write_results(cfg.out, results, table=table, meta=meta)
    plot(results, Path(cfg.out), cfg.figures_dir)
    log(table)
    log(f"wrote {Path(cfg.out) / 'results.json'} ({timings['total_s']:.0f} s)")
    return results
