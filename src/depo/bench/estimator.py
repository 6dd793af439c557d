"""`depo bench estimator`: how well does each predictor read a real LLM's pass rate from prompt text?

Train offline on measured success rates (e.g. Qwen2.5-1.5B-Instruct on MATH,
50 samples per problem), evaluate on held-out rows (a seeded hash of the prompt id, so the split
is stable), and compare in one run, on one split:
- `constant_mean`: the training mean for everyone (no ranking at all);
- `level_mean`: the training mean of the row's `level` (when that column exists);
- `tfidf_ridge`: TF-IDF word n-grams + ridge regression (scikit-learn);
- `estimator_frozen`: the DEPO estimator with a frozen encoder (vectors cached) + trained trunk;
- `estimator_top`: the same with its top encoder layers fine-tuned on cached lower-layer states;
- `estimator_full`: the DEPO estimator fully fine-tuned (the paper's setting);
- `tfidf_embed_ridge` (with the frozen variant): one ridge on TF-IDF and the frozen encoder's vectors;
- `estimator_bayes`: the Bayesian estimator (closed-form heads on frozen features);
- `estimator_calibrated`: the same, its P(zero-variance) calibrated on a validation part
  (`train_calibrated`); ranks as the bayes variant does, states a calibrated probability.
The trunk variants (frozen, top, full) train with the paper's losses (BCE + ranking; no distill
term: offline rows have no log-probs). Epochs of the frozen variant are chosen on a validation part of the
*training* rows (never on the test rows).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import RidgeCV

from depo.bench.metrics import KEEP_SHARES, prediction_metrics, reference_rows
from depo.bench.report import Col, markdown_table, new_figure, save_figure, timed, write_results
from depo.bench.table import Rows, TableBenchConfig, load_rows, set_threads
from depo.config import names_from
from depo.data.io import holdout_mask
from depo.estimator import EstimatorConfig, OnlineEstimator, build_estimator
from depo.metrics import reliability_bins
from depo.zero_variance import logit_normal_extremes, zero_var_probability

VARIANTS = ("frozen", "top", "full", "bayes", "calibrated")
VariantNames = names_from(VARIANTS, "estimator variant(s)")
FIGURE_PREFIX = "bench_estimator_"

COLUMNS = [
    Col("spearman", "Spearman"),
    Col("pearson", "Pearson"),
    Col("mae", "MAE"),
    Col("ece", "ECE"),
    Col("auc_zero_var", "AUC zv (sampled)"),
    Col("auc_zero_var_expected", "AUC zv (expected)"),
    Col("ece_zero_var", "ECE zv"),
    *(Col(f"eff_top{int(s * 100)}", f"eff top {int(s * 100)}%") for s in KEEP_SHARES),
    Col("window_keep", "window keep"),
    Col("window_eff", "window eff"),
    Col("train_s", "train s", ".0f"),
]


class EstimatorBenchConfig(TableBenchConfig):
    """Settings of `depo bench estimator` (each is a flag of the same name, or `--set name=value`)."""

    target: str
    """Pass-rate column, e.g. sr_qwen2.5-1.5b-instruct_k50_t1.0."""
    level_column: str = "level"
    """Column for the per-level baseline, when present."""
    group_size: int = Field(8, ge=2)
    """G for the zero-variance metrics."""
    out: Path | None = None
    """Directory for results.json, results.md and plots."""
    save: Path | None = None
    """Save the trained estimator here (depo.estimator.load_estimator reads it)."""
    save_variant: Literal["frozen", "top", "full", "bayes"] = "frozen"
    """Which variant `save` stores."""
    variants: VariantNames = ("frozen", "bayes", "calibrated")
    """Estimator variants to run: frozen, top, full, bayes, calibrated (a comma list). `top` (the
    top encoder layers fine-tuned on cached lower-layer states) and `full` (the paper's full
    fine-tuning: about 0.7 s per row per epoch on a 2-core CPU, a GPU job) are opt-in."""
    pooling: Literal["cls", "mean"] = "mean"
    """Encoder pooling."""
    max_length: int = Field(512, ge=1)
    """Encoder tokens per prompt (frozen variant)."""
    lr: float = Field(2e-4, gt=0.0)
    """Trunk/head learning rate (the encoder's, when fine-tuned: 0.2x)."""
    epochs: int = Field(60, ge=1)
    """Most epochs of the frozen variant (the best epoch on the validation part is kept)."""
    patience: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    full_epochs: int = Field(2, ge=1)
    """Epochs of full fine-tuning."""
    full_max_length: int = Field(256, ge=1)
    """Encoder tokens per prompt when fine-tuning."""
    full_max_rows: int | None = Field(None, ge=1)
    """Train the full fine-tuning variant on at most this many training rows (CPU budget)."""
    top_layers: int = Field(2, ge=1)
    """top variant: encoder layers trained on cached lower-layer states (MiniLM has 6)."""
    top_epochs: int = Field(6, ge=1)
    """Most epochs of the top variant (the best validation epoch is kept)."""
    top_max_length: int = Field(256, ge=1)
    """Encoder tokens per prompt of the top variant (its cached states live in memory)."""
    normalize_latex: bool = False
    """Rewrite LaTeX commands as words before encoding."""
    rate_samples: int = Field(50, ge=1)
    """Samples behind each measured pass rate (the shared MATH table's k50 columns: 50); the
    bayes variant's targets are smoothed by it."""

    @model_validator(mode="after")
    def _consistent(self) -> EstimatorBenchConfig:
        if self.save is not None and self.save_variant not in self.variants:
            raise ValueError(f"save needs the {self.save_variant!r} variant to run (variants)")
        return self


_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+)")


def normalize_latex(text: str) -> str:
    """Make LaTeX read more like words for a text encoder: `\\frac{a}{b}` -> 'frac a b', no `$`."""
    text = text.replace("$", " ").replace("\\left", "").replace("\\right", "")
    text = _LATEX_COMMAND.sub(lambda m: f" {m.group(1)} ", text)
    text = re.sub(r"[{}\\]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def load_splits(cfg: EstimatorBenchConfig) -> tuple[Rows, Rows]:
    """Train and test rows (depo.bench.table.load_rows), LaTeX rewritten as words when asked."""
    train, test = load_rows(cfg, [cfg.target], cfg.level_column)
    if cfg.normalize_latex:
        for rows in (train, test):
            rows.texts = [normalize_latex(t) for t in rows.texts]
    return train, test


def constant_mean(train: Rows, test: Rows) -> np.ndarray:
    return np.full(len(test.y), train.y.mean())


def level_mean(train: Rows, test: Rows) -> np.ndarray:
    """Mean training pass rate of the row's level (the overall mean for an unseen level)."""
    assert train.levels is not None and test.levels is not None
    means = {level: float(np.mean([y for y, lv in zip(train.y, train.levels) if lv == level]))
             for level in set(train.levels)}
    return np.array([means.get(lv, train.y.mean()) for lv in test.levels])


def _tfidf():
    """Words, LaTeX commands, numbers and single symbols as tokens; 1-2 grams; sublinear tf."""
    return TfidfVectorizer(
        token_pattern=r"\\?[A-Za-z]+|\d+|[^\sA-Za-z\d]", ngram_range=(1, 2), min_df=2, sublinear_tf=True
    )


def tfidf_ridge(train: Rows, test: Rows) -> np.ndarray:
    """TF-IDF of words, LaTeX commands and numbers (1-2 grams) + ridge; alpha by 5-fold CV on train."""
    vectorizer = _tfidf()
    x_train = vectorizer.fit_transform(train.texts)
    model = RidgeCV(alphas=(0.3, 1.0, 3.0, 10.0), cv=5).fit(x_train, train.y)
    return np.clip(model.predict(vectorizer.transform(test.texts)), 0.0, 1.0)


def tfidf_embed_ridge(train: Rows, test: Rows, estimator) -> np.ndarray:
    """TF-IDF (as `tfidf_ridge`) next to the frozen encoder's pooled vectors, one ridge on both.

    Not a selector: an offline reference for how much the frozen encoder's vectors add to words.
    """
    vectorizer = _tfidf()
    x_train = hstack([vectorizer.fit_transform(train.texts), csr_matrix(estimator.features.cached(train.texts).numpy())])
    x_test = hstack([vectorizer.transform(test.texts), csr_matrix(estimator.features.cached(test.texts).numpy())])
    model = RidgeCV(alphas=(1.0, 3.0, 10.0), cv=5).fit(x_train.tocsr(), train.y)
    return np.clip(model.predict(x_test.tocsr()), 0.0, 1.0)


# ---------------------------------------------------------------------------------------- estimator
def _val_mask(ids: Sequence[str], seed: int) -> np.ndarray:
    """A 10% validation part of the training rows (its own seed, so never the test rows)."""
    return holdout_mask(ids, 0.1, seed + 7919)


def train_frozen(cfg: EstimatorBenchConfig, train: Rows, test: Rows, log,
                 top_layers: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Frozen encoder + trunk: encode once (disk cache), train trunk/heads, keep the best validation epoch.

    `top_layers` = n: the top n encoder layers train too (at the trunk's lr times
    `encoder_lr_scale`), on the frozen lower layers' hidden states computed once and kept in
    memory (`train_top_layers`, depo.estimator.features); at most `top_epochs` epochs."""
    what = "frozen" if top_layers is None else f"top-{top_layers}"
    est = OnlineEstimator(EstimatorConfig(
        freeze_encoder=top_layers is None, train_top_layers=top_layers, pooling=cfg.pooling,
        max_length=cfg.max_length if top_layers is None else min(cfg.max_length, cfg.top_max_length), lr=cfg.lr,
        seed=cfg.seed))
    start = time.perf_counter()
    counts = est.features.warm_cache(train.texts + test.texts, use_disk=not cfg.quick, progress=not cfg.quick)
    encode_s = time.perf_counter() - start
    if top_layers is None:  # the top variant caches lower-layer states as it trains, not vectors up front
        log(f"  {what} encoder: {int(counts['encoded'])} texts encoded, {int(counts['loaded'])} from cache ({encode_s:.0f} s)")
    val = _val_mask(train.ids, cfg.seed)
    fit_part, val_part = train.subset(~val), train.subset(val)
    best, best_state, best_epoch, history = -np.inf, None, 0, []
    epochs = cfg.epochs if top_layers is None else min(cfg.epochs, cfg.top_epochs)
    fit_s = 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        est.fit(fit_part.texts, fit_part.y, epochs=1, batch_size=cfg.batch_size, progress=False, seed=cfg.seed + epoch)
        fit_s += time.perf_counter() - t0
        metrics = est.evaluate(val_part.texts, val_part.y, prefix="val_")
        score = metrics.get("val_spearman", -np.inf)
        history.append({"epoch": epoch, **metrics})
        if score > best:
            best, best_epoch, best_state = score, epoch, copy.deepcopy(est.state_dict())
        elif epoch - best_epoch >= cfg.patience:
            break
    if best_state is not None:
        est.load_state_dict(best_state)
    info = {"best_epoch": best_epoch, "val_spearman": float(best), "encode_s": encode_s, "epochs_run": len(history),
            "fit_s_per_row_epoch": fit_s / max(1, len(history) * len(fit_part.y))}
    log(f"  {what} trunk: best epoch {best_epoch} of {len(history)} (val Spearman {best:.3f}, "
        f"{1000 * info['fit_s_per_row_epoch']:.1f} ms per row per epoch)")
    return est, info


def train_full(cfg: EstimatorBenchConfig, train: Rows, log) -> tuple[Any, dict[str, Any]]:
    """Full fine-tuning (paper): encoder at 0.2x the trunk's learning rate, `full_epochs` epochs."""
    part = train.head(cfg.full_max_rows)
    est = OnlineEstimator(
        EstimatorConfig(pooling=cfg.pooling, max_length=cfg.full_max_length, lr=cfg.lr, seed=cfg.seed)
    )
    est.fit(part.texts, part.y, epochs=cfg.full_epochs, batch_size=min(cfg.batch_size, 32), progress=not cfg.quick)
    log(f"  full fine-tuning: {len(part.texts)} rows x {cfg.full_epochs} epochs, max_length {cfg.full_max_length}")
    return est, {"rows": len(part.texts), "epochs": cfg.full_epochs, "max_length": cfg.full_max_length}


def train_bayes(cfg: EstimatorBenchConfig, train: Rows):
    """The Bayesian estimator (docs/method.md section 4.10) at its defaults, encoder tokens capped
    at 256 (its default), a head per column of `train.y`, fitted in closed form on the training rows."""
    est = build_estimator({"kind": "bayes", "max_length": min(cfg.max_length, 256), "seed": cfg.seed,
                           "max_observations": max(2048, len(train.y)),
                           "num_targets": train.y.shape[1] if train.y.ndim == 2 else 1})
    est.warm_cache(train.texts, progress=not cfg.quick)
    est.fit(train.texts, train.y, samples=cfg.rate_samples)
    return est


def train_calibrated(cfg: EstimatorBenchConfig, train: Rows) -> tuple[Any, Any]:
    """The bayes variant fitted without a 10% validation part of the training rows, and an
    isotonic map from its P(zero-variance) to the validation rows' own P_zv (scikit-learn)."""
    val = _val_mask(train.ids, cfg.seed)
    est = train_bayes(cfg, train.subset(~val))
    part = train.subset(val)
    stated = predictive_zero_var(est, part.texts, cfg.group_size)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    return est, iso.fit(stated, zero_var_probability(part.y, cfg.group_size))


def predictive_zero_var(est: Any, texts: Sequence[str], group_size: int) -> np.ndarray | None:
    """An estimator's own P(zero-variance group) from its predictive distribution, as DEPO's
    selection computes it (logit-normal: epistemic variance + tau^2), or None without one."""
    if not callable(getattr(est, "predict_distribution", None)):
        return None
    d = est.predict_distribution(texts)
    none, every = logit_normal_extremes(d["mean"][:, 0], d["var"][:, 0] + d["tau"][0] ** 2, group_size)
    return none + every


# ---------------------------------------------------------------------------------------- run
def quick_config(cfg: EstimatorBenchConfig) -> EstimatorBenchConfig:
    """The <= 1 minute CI mode: few rows, short texts, few epochs; the same code path otherwise."""
    return cfg.model_copy(update={
        "quick": True, "train_rows": min(cfg.train_rows or 160, 160),
        "test_rows": min(cfg.test_rows or 60, 60), "max_length": min(cfg.max_length, 48),
        "epochs": min(cfg.epochs, 3), "patience": 3, "full_epochs": 1, "full_max_rows": 32,
        "full_max_length": 32})


def run_bench(cfg: EstimatorBenchConfig, log=print) -> dict[str, Any]:
    """Run every baseline and estimator variant on one split; write results, table and figures."""
    if cfg.quick:
        cfg = quick_config(cfg)
    set_threads(cfg.threads, cfg.quick)
    wall = time.perf_counter()
    train, test = load_splits(cfg)
    log(f"train {len(train.y)} rows, test {len(test.y)} rows, target {cfg.target} (test mean {test.y.mean():.3f})")
    preds: dict[str, np.ndarray] = {}
    info: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    preds["constant_mean"] = timed(timings, "constant_mean", lambda: constant_mean(train, test))
    if train.levels is not None:
        preds["level_mean"] = timed(timings, "level_mean", lambda: level_mean(train, test))
    preds["tfidf_ridge"] = timed(timings, "tfidf_ridge", lambda: tfidf_ridge(train, test))
    fits = {
        "frozen": lambda: train_frozen(cfg, train, test, log),
        "top": lambda: train_frozen(cfg, train, test, log, cfg.top_layers),
        "full": lambda: train_full(cfg, train, log),
        "bayes": lambda: (train_bayes(cfg, train), {}),
    }
    estimators = {}
    for variant in (v for v in fits if v in cfg.variants):
        name = f"estimator_{variant}"
        estimators[variant], info[name] = timed(timings, name, fits[variant])
        preds[name] = estimators[variant].predict(test.texts)
        if variant == "frozen":
            preds["tfidf_embed_ridge"] = timed(
                timings, "tfidf_embed_ridge", lambda: tfidf_embed_ridge(train, test, estimators["frozen"]))
    zero_var = {f"estimator_{k}": predictive_zero_var(e, test.texts, cfg.group_size) for k, e in estimators.items()}
    if "calibrated" in cfg.variants:
        est, iso = timed(timings, "estimator_calibrated", lambda: train_calibrated(cfg, train))
        preds["estimator_calibrated"] = est.predict(test.texts)
        zero_var["estimator_calibrated"] = iso.predict(predictive_zero_var(est, test.texts, cfg.group_size))
    results: dict[str, Any] = {}
    for name, pred in preds.items():
        results[name] = prediction_metrics(pred, test.y, group_size=cfg.group_size, seed=cfg.seed, zero_var=zero_var.get(name))
        results[name]["train_s"] = timings[name]
        results[name].update(info.get(name, {}))
    results.update(reference_rows(test.y, group_size=cfg.group_size))
    if cfg.save is not None:
        estimators[cfg.save_variant].save(cfg.save)
        log(f"saved the {cfg.save_variant} estimator to {cfg.save} (load with depo.estimator.load_estimator)")
    wall_s = time.perf_counter() - wall
    table = markdown_table([{"method": name, **metrics} for name, metrics in results.items()], COLUMNS)
    meta = {
        "command": "depo bench estimator",
        "config": cfg.to_dict(),
        "train_rows": len(train.y),
        "test_rows": len(test.y),
        "test_mean": float(test.y.mean()),
        "test_zero_var_share": float(np.mean(zero_var_probability(test.y, cfg.group_size))),
        "wall_s": wall_s,
    }
    if cfg.out is not None:
        write_results(cfg.out, results, table=table, meta=meta)
        _figures(cfg, preds, test.y)
    log(table)
    log(f"wall time {wall_s:.0f} s")
    return {"meta": meta, **results}


def _figures(cfg: EstimatorBenchConfig, preds: dict[str, np.ndarray], true: np.ndarray) -> None:
    shown = [n for n in ("tfidf_ridge", "estimator_frozen", "estimator_bayes", "estimator_full") if n in preds]
    fig, axes = new_figure(len(shown), width=3.4, height=3.3)
    for ax, name in zip(axes, shown):
        ax.scatter(true, preds[name], s=3, alpha=0.3)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(title=name, xlabel="true pass rate", ylabel="predicted", xlim=(0, 1), ylim=(0, 1))
    save_figure(fig, cfg.out, "scatter.png", figures_dir=cfg.figures_dir, prefix=FIGURE_PREFIX)
    fig, (ax,) = new_figure(1, width=4.2, height=3.6)
    for name in shown:
        means, rates, counts = reliability_bins(np.clip(preds[name], 0, 1), true)
        ok = counts > 0
        ax.plot(means[ok], rates[ok], "o-", ms=3, label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect")
    ax.set(title="reliability (10 bins)", xlabel="mean predicted", ylabel="mean true", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    save_figure(fig, cfg.out, "reliability.png", figures_dir=cfg.figures_dir, prefix=FIGURE_PREFIX)
