"""make_selector for every name, resumption of every selector, and option validation."""

from __future__ import annotations

import numpy as np
import pytest

import depo.bench.p_oracle  # noqa: F401  (registers the bench-only p-oracle)
import depo.estimator
from depo.errors import DepoError
from depo.estimator import BayesEstimator, OnlineEstimator
from depo.selection import SELECTORS, Selector, make_selector, trainable_selector
from depo.selection.depo import DEPO
from depo.selection.history import History
from depo.state_io import load_state, save_state
from depo.types import Candidate, GroupOutcome
from tests.selection.selection_fakes import FakeEstimator


def test_every_name_builds_a_selector() -> None:
    rates = {"a": 0.5}
    for name in SELECTORS:
        opts = {"pass_rates": rates} if name == "oracle" else None
        sel = make_selector(name, group_size=8, seed=1, options=opts, estimator=FakeEstimator())
        assert isinstance(sel, Selector)
        if SELECTORS[name].bench_only:  # the p-oracle (registered by depo.bench) needs a trainer's policy to measure
            continue
        assert sel.select([Candidate("a", "a")]).keep == [True]
    paper = make_selector("depo-paper", group_size=4, seed=0, estimator=FakeEstimator())
    assert isinstance(paper, DEPO) and paper.config.mode == "paper" and paper.config.group_size == 4
    depo = make_selector("depo", group_size=16, seed=0, options={"threshold": 0.3, "explore": 0.1}, estimator=FakeEstimator())
    assert depo.config.threshold == 0.3 and depo.config.explore == 0.1 and depo.config.group_size == 16
    hist = make_selector("history", group_size=8, seed=0, options={"p_easy": 0.7})
    assert isinstance(hist, History) and hist.p_easy == 0.7


def test_trainers_refuse_a_bench_only_selector_naming_the_command_that_runs_it() -> None:
    assert trainable_selector("depo").name == "depo"
    assert [name for name, spec in SELECTORS.items() if spec.bench_only] == ["p-oracle"]
    with pytest.raises(DepoError, match=r"^depo.selector: selector 'p-oracle' runs only in a benchmark: `depo bench train --methods p-oracle`"):
        trainable_selector("p-oracle", key="depo.selector")


@pytest.mark.parametrize("name", sorted(n for n, spec in SELECTORS.items() if not spec.bench_only))
def test_every_selector_resumed_from_its_saved_state_decides_as_the_original(name: str, tmp_path) -> None:
    """The engine, TRL and verl checkpoint a selector as state_dict() in depo's state files."""
    texts = [f"q{i}" for i in range(40)]
    batch = [Candidate(t, t) for t in texts]
    opts = {"pass_rates": {t: (i % 9) / 8 for i, t in enumerate(texts)}} if name == "oracle" else None
    a = make_selector(name, group_size=8, seed=3, options=opts, estimator=FakeEstimator())
    for step in range(3):  # streaks, posteriors, warm-up counts and random draws move on
        kept = [c for c, keep in zip(batch, a.select(batch).keep) if keep]
        a.observe([GroupOutcome(c.prompt_id, c.text, (1.0,) * ((i + step) % 9) + (0.0,) * (8 - (i + step) % 9))
                   for i, c in enumerate(kept)])
    save_state(a.state_dict(), tmp_path)
    b = make_selector(name, group_size=8, seed=99, options=opts, estimator=FakeEstimator())
    b.load_state_dict(load_state(tmp_path))
    for _ in range(3):
        da, db = a.select(batch), b.select(batch)
        assert da.keep == db.keep and da.explored == db.explored, name
        np.testing.assert_array_equal(da.priority, db.priority)


def test_estimator_is_built_from_options_only_for_estimator_selectors(monkeypatch: pytest.MonkeyPatch) -> None:
    import depo.selection.registry as registry

    built = []
    real = registry.build_estimator

    def counting(spec=None, **kw):
        built.append(spec)
        return real(spec, **kw)

    monkeypatch.setattr(registry, "build_estimator", counting)
    make_selector("uniform", group_size=8, seed=0)
    make_selector("history", group_size=8, seed=0)
    assert built == []
    tiny = {"freeze_encoder": True, "width": 8, "feature_width": 8, "max_length": 16}
    sel = make_selector("depo", group_size=8, seed=5, estimator=tiny)  # the paper's trunk by default
    assert built == [tiny] and isinstance(sel.estimator, OnlineEstimator) and not sel.bayesian
    assert sel.estimator.config.width == 8 and sel.estimator.config.seed == 5  # the selector's seed by default
    sel = make_selector("depo", group_size=8, seed=5, estimator={"kind": "bayes", "max_length": 16, "hash_bits": 8})
    assert isinstance(sel.estimator, BayesEstimator) and sel.bayesian and sel.estimator.config.hash_bits == 8
    loaded = []
    monkeypatch.setattr(depo.estimator, "load_estimator", lambda path, **kw: loaded.append(path) or FakeEstimator())
    sel = make_selector("depo-paper", group_size=8, seed=0, estimator="/some/dir")
    assert loaded == ["/some/dir"] and isinstance(sel.estimator, FakeEstimator)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("depo", {"nope": 1}, "selector 'depo' options: unknown key 'nope'"),
        ("depo", {"mode": "paper"}, "mode is set by the selector name"),
        ("depo", {"treshold": 0.5}, "did you mean 'threshold'"),
        ("history", {"threshold": 0.5}, "selector 'history' options: unknown key 'threshold'"),
        ("oracle", {}, "pass_rates: Field required"),
        ("nosuch", {}, "unknown selector 'nosuch'; choose one of: depo, depo-paper"),
        ("oracle", {"pass_rates": {}, "threshold": 2.0}, "threshold"),
        ("depo", {"threshold": -1.0}, "threshold"),
        ("history", {"p_easy": 1.5}, "p_easy"),
    ],
)
def test_bad_options_are_clear_errors(name: str, options: dict, match: str) -> None:
    with pytest.raises(DepoError, match=match):
        make_selector(name, group_size=8, seed=0, options=options, estimator=FakeEstimator())
