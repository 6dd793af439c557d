"""The Bayesian difficulty estimator: closed-form posterior on frozen features, good from few labels.

Bayesian linear regression of the logit pass rate on the lexical vector (`depo.estimator.lexical`)
and the encoder vector (mean-pooled hidden states of a few layers), computed in its dual
(Gaussian-process) form over the kept observations, with the kernel

    k(x, x') = bias_prior + phi_lex(x) . phi_lex(x') + encoder_weight * k_enc(x, x')

(k_enc linear, or an RBF on the encoder vectors). The posterior, the targets, forgetting and the
calibration spread tau are docs/method.md section 4.10. Observations below `min_weight`, or beyond
`max_observations` (oldest first), are dropped; online, tau is refitted on the predictions of the
last `calibration_window` groups, made before their counts were seen. Several targets (one per
model or sampling setting) share the features and one factorisation.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
import torch
from pydantic import Field

from depo.config import Config
from depo.errors import DepoError
from depo.estimator.config import resolve_device
from depo.estimator.encoder import TextEncoder
from depo.estimator.features import FeatureCache, FrozenVectors, _encoder_tag
from depo.estimator.lexical import hashed_ngrams
from depo.estimator.losses import check_labels
from depo.state_io import load_state, save_state
from depo.types import GroupOutcome
from depo.zero_variance import group_counts, logit_normal_log_likelihood, logit_normal_mean

FORMAT = "depo-bayes-estimator/1"
TAU_GRID = np.exp(np.linspace(np.log(0.05), np.log(4.0), 48))


class BayesEstimatorConfig(Config):
    """Settings of the Bayesian estimator (module doc)."""

    kind: Literal["bayes"] = "bayes"
    """Which estimator: "bayes" (this one) or "trunk" (the paper's encoder + trunk + dual heads)."""
    encoder_path: str | None = None
    """Local Hugging Face encoder directory; None = the embedded all-MiniLM-L6-v2."""
    max_length: int = Field(256, ge=2)
    """Encoder tokens read per prompt."""
    encoder_layers: list[int] = Field(default_factory=lambda: [4, 5, 6])
    """Hidden states mean-pooled into the encoder vector (0 = the embeddings)."""
    encoder_weight: float = Field(1.0, ge=0.0)
    """Weight of the encoder kernel against the lexical one (0 = lexical only, no encoder at all)."""
    encoder_kernel: Literal["linear", "rbf"] = "linear"
    """Kernel on the encoder vectors: linear (Bayesian linear regression) or RBF."""
    rbf_gamma: float = Field(1.0, gt=0.0)
    """RBF kernel exp(-gamma * |a - b|^2 / L) on encoder vectors of L unit-norm layers."""
    lexical: bool = True
    """Include the hashed word / character n-grams."""
    hash_bits: int = Field(18, ge=4, le=24)
    """2^hash_bits hash buckets per lexical block."""
    alpha: float = Field(1.0, gt=0.0)
    """Noise-to-prior variance ratio (the ridge strength)."""
    bias_prior: float = Field(1.0, ge=0.0)
    """beta: prior variance of the intercept, relative to the weights'."""
    half_life: float = Field(0.0, ge=0.0)
    """Updates after which an observation's weight halves (0 = never forget)."""
    min_weight: float = Field(1e-3, gt=0.0, lt=1.0)
    """Observations whose weight fell below this are dropped."""
    max_observations: int = Field(2048, ge=1)
    """Most observations kept (oldest dropped first): bounds the O(n^3) update."""
    calibration_window: int = Field(2048, ge=16)
    """Online: tau is fitted on the last this-many observed groups."""
    tau: float | None = Field(None, gt=0.0)
    """Fix the calibration spread instead of fitting it (None = fit)."""
    num_targets: int = Field(1, ge=1)
    """Targets predicted per prompt (one per model or sampling setting); online updates train target 0."""
    predict_batch_size: int = Field(64, ge=1)
    """Texts per encoder forward."""
    cache_max_mb: float | None = Field(2048.0, gt=0.0)
    """Memory budget of the encoder-vector cache (None = no limit)."""
    device: str = "cpu"
    """Torch device of the encoder: "cpu", "cuda", "cuda:1", or "auto" (cuda when available)."""
    seed: int = 0
    """Thompson draws."""


def smoothed_logit(rate: np.ndarray, samples: np.ndarray | float) -> np.ndarray:
    """logit((n p + 1/2) / (n + 1)): the target of a pass rate p measured on n samples."""
    q = (np.asarray(samples, float) * np.asarray(rate, float) + 0.5) / (np.asarray(samples, float) + 1.0)
    return np.log(q / (1.0 - q))


FEATURE_FIELDS = ("lexical", "hash_bits", "encoder_layers", "num_targets")
"""Settings that fix the shapes of the stored observations (features and targets): a saved estimator keeps them."""


class BayesEstimator:
    """Estimator protocol (predict / update / fit / state_dict / save / load) on a closed-form posterior."""

    def __init__(self, config: BayesEstimatorConfig | None = None) -> None:
        self.config = cfg = config or BayesEstimatorConfig()
        self.rng = np.random.default_rng(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.encoder: TextEncoder | None = None
        self.vectors: FrozenVectors | None = None
        if cfg.encoder_weight > 0:
            self.encoder = TextEncoder(cfg.encoder_path, pooling="mean", max_length=cfg.max_length).eval().to(self.device)
            self.encoder.set_trainable(freeze=True, top_layers=None)
            for layer in cfg.encoder_layers:
                if not 0 <= layer <= self.encoder.num_layers:
                    raise DepoError(f"encoder_layers: layer {layer} is not in 0..{self.encoder.num_layers}")
            tag = _encoder_tag(self.encoder, "layers" + "-".join(map(str, cfg.encoder_layers)))
            self.vectors = FrozenVectors(FeatureCache(cfg.cache_max_mb), tag, self._encode)
        if not cfg.lexical and self.encoder is None:
            raise DepoError("the Bayesian estimator needs features: lexical: true or encoder_weight > 0")
        self.steps = 0
        self._lex = sp.csr_matrix((0, 2 * 2**cfg.hash_bits)) if cfg.lexical else None
        enc_dim = 0 if self.encoder is None else self.encoder.hidden_size * len(cfg.encoder_layers)
        self._enc = np.zeros((0, enc_dim))
        self._z = np.zeros((0, cfg.num_targets))
        self._born = np.zeros(0)  # update count at which each observation was made
        self._K = np.zeros((0, 0))
        self._fit: dict[str, np.ndarray] | None = None  # factorisation and dual coefficients, recomputed lazily
        self.tau = np.full(cfg.num_targets, cfg.tau if cfg.tau else 1.0)
        self._calib: deque[tuple[float, float, float, float]] = deque(maxlen=cfg.calibration_window)  # (m, s2, k, n)

    # ------------------------------------------------------------------ features
    def _encode(self, texts: list[str]) -> list[torch.Tensor]:
        bs = self.config.predict_batch_size
        chunks = [texts[i : i + bs] for i in range(0, len(texts), bs)]
        layers = self.config.encoder_layers
        return [v for chunk in chunks for v in self.encoder.layer_means(chunk, layers, device=self.device).cpu()]  # to the CPU cache

    def warm_cache(self, texts: Sequence[str], *, use_disk: bool = True, progress: bool = False) -> dict[str, float]:
        """Encode `texts` once (disk-cached), so later predictions pay only for the posterior."""
        if self.vectors is None:
            return {"loaded": 0.0, "encoded": 0.0}
        counts = self.vectors.warm(texts, use_disk=use_disk, progress=progress)
        self.vectors.cache.reset_counts()
        return counts

    def _features(self, texts: Sequence[str]) -> tuple[sp.csr_matrix | None, np.ndarray]:
        texts = list(texts)
        lex = hashed_ngrams(texts, self.config.hash_bits) if self.config.lexical else None
        enc = self.vectors.get(texts).numpy().astype(np.float64) if self.vectors is not None else np.zeros((len(texts), 0))
        return lex, enc

    def _kernel(self, lex_a, enc_a, lex_b, enc_b) -> np.ndarray:
        cfg = self.config
        k = np.full((enc_a.shape[0], enc_b.shape[0]), cfg.bias_prior)
        if lex_a is not None:
            k += (lex_a @ lex_b.T).toarray()
        if enc_a.shape[1]:
            dot = enc_a @ enc_b.T
            if cfg.encoder_kernel == "linear":
                k += cfg.encoder_weight * dot / len(cfg.encoder_layers)
            else:
                layers = len(cfg.encoder_layers)
                sq = (enc_a**2).sum(1)[:, None] + (enc_b**2).sum(1)[None, :] - 2 * dot
                k += cfg.encoder_weight * np.exp(-cfg.rbf_gamma * np.maximum(sq, 0.0) / layers)
        return k

    def _self_kernel(self, lex, enc) -> np.ndarray:
        """k(x, x) per row."""
        cfg = self.config
        k = np.full(enc.shape[0], cfg.bias_prior)
        if lex is not None:
            k += np.asarray(lex.multiply(lex).sum(1)).ravel()
        if enc.shape[1]:
            k += cfg.encoder_weight * ((enc**2).sum(1) / len(cfg.encoder_layers) if cfg.encoder_kernel == "linear" else 1.0)
        return k

    # ------------------------------------------------------------------ observations and the posterior
    def __len__(self) -> int:
        return len(self._born)

    def weights(self) -> np.ndarray:
        """Each kept observation's weight 0.5 ** (age / half_life) (all 1 without forgetting)."""
        hl = self.config.half_life
        return np.ones(len(self._born)) if hl <= 0 else 0.5 ** ((self.steps - self._born) / hl)

    def _add(self, lex, enc, z: np.ndarray) -> None:
        cross = self._kernel(lex, enc, self._lex, self._enc) if len(self) else np.zeros((len(z), 0))
        own = self._kernel(lex, enc, lex, enc)
        self._K = np.block([[self._K, cross.T], [cross, own]]) if len(self) else own
        self._lex = sp.vstack([self._lex, lex]).tocsr() if lex is not None else None
        self._enc = np.vstack([self._enc, enc])
        self._z = np.vstack([self._z, z])
        self._born = np.concatenate([self._born, np.full(len(z), float(self.steps))])
        self._prune()
        self._fit = None

    def _prune(self) -> None:
        keep = self.weights() >= self.config.min_weight
        over = int(keep.sum()) - self.config.max_observations
        if over > 0:
            keep[np.flatnonzero(keep)[:over]] = False  # oldest first (observations are in arrival order)
        if keep.all():
            return
        idx = np.flatnonzero(keep)
        self._K = self._K[np.ix_(idx, idx)]
        self._lex = self._lex[idx] if self._lex is not None else None
        self._enc, self._z, self._born = self._enc[idx], self._z[idx], self._born[idx]

    def _posterior(self) -> dict[str, np.ndarray]:
        """Cholesky factor of C, dual coefficients C^-1 (z - zbar), zbar and the noise variance."""
        if self._fit is not None:
            return self._fit
        v = self.weights()
        zbar = (v[:, None] * self._z).sum(0) / v.sum()
        chol = sl.cho_factor(self._K + np.diag(self.config.alpha / v), lower=True)
        coef = sl.cho_solve(chol, self._z - zbar)
        resid = self.config.alpha * coef / v[:, None]  # z - m(X) = alpha V^-1 C^-1 (z - zbar)
        sigma2 = np.maximum((v[:, None] * resid**2).sum(0) / v.sum(), 1e-4)
        self._fit = {"chol": chol[0], "coef": coef, "zbar": zbar, "sigma2": sigma2}
        return self._fit

    # ------------------------------------------------------------------ predictions
    def predict_distribution(self, texts: Sequence[str], *, sample: bool = False) -> dict[str, np.ndarray]:
        """Logit-space predictive of each text's pass rate per target: `mean` (n, M), epistemic
        variance `var` (n, M), calibration spread `tau` (M,), and with `sample` one Thompson
        draw of the mean (n, M)."""
        texts = list(texts)
        m = len(texts)
        M = self.config.num_targets
        if not m:
            return {"mean": np.zeros((0, M)), "var": np.zeros((0, M)), "tau": self.tau.copy()}
        lex, enc = self._features(texts)
        if not len(self):  # the prior: no evidence, the spread of the prior
            mean, var = np.zeros((m, M)), np.full((m, M), 1.0)
        else:
            post = self._posterior()
            cross = self._kernel(lex, enc, self._lex, self._enc)
            mean = post["zbar"] + cross @ post["coef"]
            half = sl.solve_triangular(post["chol"], cross.T, lower=True)
            latent = np.maximum(self._self_kernel(lex, enc) - (half**2).sum(0), 0.0)
            var = latent[:, None] * post["sigma2"][None, :] / self.config.alpha
        out = {"mean": mean, "var": var, "tau": self.tau.copy()}
        if sample:
            out["sample"] = mean + np.sqrt(var) * self.rng.standard_normal(mean.shape)
        return out

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted pass rates: E[sigmoid(z)], shape (n,) for one target, (n, M) for several."""
        d = self.predict_distribution(texts)
        p = logit_normal_mean(d["mean"], d["var"] + d["tau"][None, :] ** 2)
        return p[:, 0] if self.config.num_targets == 1 else p

    # ------------------------------------------------------------------ learning
    def update(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        """One online step: the groups' pass rates become observations of target 0 (weight 1, the
        older ones forget), and tau is refitted on the predictions made before they were seen."""
        outcomes = list(outcomes)
        if not outcomes:
            return {}
        if self.config.num_targets != 1:
            raise DepoError("online updates train one target: use num_targets: 1 for selection")
        start = time.perf_counter()
        check_labels(np.array([o.mean_reward if o.rewards else np.nan for o in outcomes]), "labels (mean group rewards)")
        texts = [o.text for o in outcomes]
        k, n = np.array([group_counts(o.rewards) for o in outcomes]).T
        before = self.predict_distribution(texts)
        self._calib.extend(zip(before["mean"][:, 0], before["var"][:, 0], k, n))
        self.steps += 1
        lex, enc = self._features(texts)
        self._add(lex, enc, smoothed_logit(k / n, n)[:, None])
        if self.config.tau is None and len(self._calib) >= 32:
            arr = np.array(self._calib)
            self.tau[0] = fit_tau(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
        return {
            "estimator/observations": float(len(self)),
            "estimator/tau": float(self.tau[0]),
            "estimator/noise_sigma": float(np.sqrt(self._posterior()["sigma2"][0])),
            "time/estimator_update_s": time.perf_counter() - start,
        }

    def fit(self, texts: Sequence[str], targets: Sequence[float] | np.ndarray, *, samples: float = 50.0,
            val: tuple[Sequence[str], Sequence[float] | np.ndarray] | None = None, **_: Any) -> dict[str, float]:
        """Offline fit on (text, pass rate) pairs, targets (n,) or (n, M) measured on `samples`
        samples each; with `val`, tau is fitted on the validation rows' held-out predictions."""
        y = np.asarray(targets, float).reshape(len(texts), -1)
        if y.shape[1] != self.config.num_targets:
            raise DepoError(f"fit: {y.shape[1]} target columns but num_targets={self.config.num_targets}")
        check_labels(y, "fit targets")
        lex, enc = self._features(list(texts))
        self._add(lex, enc, smoothed_logit(y, samples))
        if val is not None:
            self.calibrate(val[0], val[1], samples=samples)
        return {"observations": float(len(self))}

    def calibrate(self, texts: Sequence[str], targets: Sequence[float] | np.ndarray, *, samples: float) -> np.ndarray:
        """Fit tau per target on held-out rows: counts k = round(samples * rate) of `samples`."""
        y = np.asarray(targets, float).reshape(len(texts), -1)
        d = self.predict_distribution(texts)
        for j in range(self.config.num_targets):
            self.tau[j] = fit_tau(d["mean"][:, j], d["var"][:, j], np.round(samples * y[:, j]), np.full(len(y), samples))
        return self.tau.copy()

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        lex = self._lex
        return {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "steps": self.steps,
            "lex": None if lex is None else {"data": lex.data, "indices": lex.indices, "indptr": lex.indptr, "shape": list(lex.shape)},
            "enc": self._enc,
            "z": self._z,
            "born": self._born,
            "tau": self.tau,
            "calib": np.array(self._calib).reshape(-1, 4),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise DepoError(f"not a Bayesian estimator state (format {state.get('format')!r}, expected {FORMAT})")
        lex = state["lex"]
        self._lex = None if lex is None else sp.csr_matrix((lex["data"], lex["indices"], lex["indptr"]), shape=tuple(lex["shape"]))
        self._enc, self._z, self._born = (np.asarray(state[k], float) for k in ("enc", "z", "born"))
        self._K = self._kernel(self._lex, self._enc, self._lex, self._enc) if len(self._born) else np.zeros((0, 0))
        self.steps = int(state["steps"])
        self.tau = np.asarray(state["tau"], float)
        self._calib = deque((tuple(r) for r in np.asarray(state["calib"], float)), maxlen=self.config.calibration_window)
        self.rng.bit_generator.state = state["rng"]
        self._fit = None

    def save(self, path: str | Path) -> Path:
        """A directory holding the state as JSON + safetensors (depo.state_io; no pickle)."""
        save_state(self.state_dict(), path, "bayes_estimator")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> BayesEstimator:
        """The estimator `save` wrote; `overrides` replace its settings except the FEATURE_FIELDS
        its stored observations were computed with (a fixed `tau` given here replaces the saved one)."""
        if fixed := sorted(set(overrides) & set(FEATURE_FIELDS)):
            raise DepoError(f"cannot override {', '.join(fixed)} when loading a saved estimator (its observations depend on it)")
        state = load_state(Path(path), "bayes_estimator")
        estimator = cls(BayesEstimatorConfig.build({**state["config"], **overrides}, what=f"estimator config in {path}"))
        estimator.load_state_dict(state)
        if overrides.get("tau") is not None:
            estimator.tau[:] = overrides["tau"]
        return estimator


# ---------------------------------------------------------------------------------------- helpers
def fit_tau(mean: np.ndarray, var: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    """argmax over TAU_GRID of sum_i log P(k_i | n_i) with z ~ N(mean_i, var_i + tau^2), k ~ Binomial(n_i, sigmoid(z))."""
    ll = [logit_normal_log_likelihood(mean, var + tau**2, k, n).sum() for tau in TAU_GRID]
    return float(TAU_GRID[int(np.argmax(ll))])


__all__ = ["BayesEstimator", "BayesEstimatorConfig", "fit_tau", "smoothed_logit"]
