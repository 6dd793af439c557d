"""`depo bench train --decompose`: the pool decomposition by hand, and a probe that changes no decision."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depo.bench.decomposition import decompose
from depo.cli import main


def _step(score, kept, rate, informative, fresh=None, p_zv_hat=None):
    n = len(score)
    return {"score": np.array(score, float), "kept": np.array(kept), "rate": np.array(rate, float),
            "informative": np.array(informative),
            "fresh": np.array(fresh if fresh is not None else [np.nan] * n, float),
            "p_zv_hat": np.array(p_zv_hat if p_zv_hat is not None else [np.nan] * n, float),
            "seen": np.array([True, False] * (n // 2))}


def test_decomposition_hand_worked():
    # the independent groups: prompts 0 and 1 came out mixed, 2 and 3 zero-variance
    step = _step(score=[0.9, 0.8, 0.1, 0.2], kept=[False, False, True, True], rate=[0.5, 0.4, 0.0, 1.0],
                 informative=[True, True, False, False], fresh=[0.9, 0.1, 0.8, 0.2], p_zv_hat=[0.0, 0.0, 1.0, 1.0])
    d = decompose([step], group_size=2)
    assert d["probe/survival"] == 0.5 and d["probe/eff_random"] == pytest.approx(0.5)
    assert d["probe/eff_kept"] == 0.0  # it kept the two zero-variance prompts
    assert d["probe/eff_rank"] == pytest.approx(1.0)  # its own ranking had them right
    assert d["probe/eff_p_oracle"] == pytest.approx(1.0)  # rates 0.5, 0.4 rank first under 1 - P_zv
    assert d["probe/loss_ranking"] == pytest.approx(0.0) and d["probe/loss_cut"] == pytest.approx(1.0)
    assert d["probe/eff_fresh"] == pytest.approx(0.5) and d["probe/gain_freshness"] == pytest.approx(-0.5)
    assert d["probe/ece_zero_var"] == pytest.approx(0.0)  # stated P_zv (0, 0, 1, 1) matches the groups
    assert d["probe/seen_share"] == 0.5


def test_a_ranking_that_is_wrong_loses_against_the_p_oracle():
    step = _step(score=[0.1, 0.2, 0.9, 0.8], kept=[False, False, True, True], rate=[0.5, 0.4, 0.0, 1.0],
                 informative=[True, True, False, False])
    d = decompose([step], group_size=2)
    assert d["probe/eff_rank"] == 0.0 and d["probe/loss_ranking"] == pytest.approx(1.0) and d["probe/loss_cut"] == 0.0
    assert d["probe/spearman_pool"] < 0


def test_nothing_kept_or_no_fresh_scores_leave_those_figures_out():
    assert decompose([], group_size=8) == {}
    assert decompose([_step([0.1, 0.2], [False, False], [0.5, 0.5], [True, True])], group_size=8) == {}
    d = decompose([_step([0.1, 0.2], [True, False], [0.5, 0.5], [True, False])], group_size=8)
    assert "probe/eff_fresh" not in d and "probe/ece_zero_var" not in d


@pytest.mark.slow
def test_probing_changes_no_decision(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path / "cache"))
    runs = {}
    for name, extra in (("plain", []), ("probed", ["--decompose"])):
        out = tmp_path / name
        assert main(["bench", "train", "--quick", "--methods", "depo", "--out", str(out), *extra]) == 0
        runs[name] = json.loads((out / "records.json").read_text())["depo"][0]
    keys = ("select/kept", "select/scanned", "select/effective_rate", "rollout/total_responses")
    steps = {n: [{k: r.get(k) for k in keys} for r in recs if "select/scanned" in r] for n, recs in runs.items()}
    assert steps["plain"] == steps["probed"]  # same selections, same groups: the probe only measures
    probed = [r for r in runs["probed"] if "probe/measured" in r]
    assert probed and probed[-1]["probe/measured"] > 0 and not any("probe/measured" in r for r in runs["plain"])
    warmup = json.loads((tmp_path / "probed" / "results.json").read_text())["meta"]["warmup"]
    measured = {r["step"]: r["probe/measured"] for r in probed}  # nothing probed while the warm-up keeps all
    assert all(measured[s] == 0 for s in measured if s <= warmup) and max(measured.values()) > 0
