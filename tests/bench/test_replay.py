"""`depo bench replay`: accounting against hand-worked numbers, the quick mode end to end, errors."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from depo.bench.replay import (
    MethodLog,
    ReplayConfig,
    ReplayData,
    _estimator,
    load_replay_data,
    make_method,
    quick_config,
    replay_method,
    replay_speed,
    summarize,
)
from depo.cli import main
from depo.errors import DepoError
from depo.paths import shared_data_dir


def _log(kept, informative, score=None) -> MethodLog:
    n = len(kept)
    return MethodLog(
        epoch=[0] * n, prompt=list(range(n)), kept=list(kept), score=list(score or [0.0] * n), informative=list(informative)
    )


def test_summary_counts_rollouts_recall_and_dynamic_sampling():
    rec = _log([True, True, False, True], [True, False, True, True])
    s = summarize("depo", rec, g=8)
    assert s["rollouts"] == 24 and s["informative"] == 2
    assert s["effective_rate"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["rollouts_per_informative"] == pytest.approx(12.0)
    ds = summarize("dynamic-sampling", rec, g=8)  # rolls out everything, keeps the informative ones
    assert ds["rollouts"] == 32 and ds["informative"] == 3 and ds["recall"] == 1.0


def test_speed_pays_its_screens_in_rollouts_and_effective_rate():
    rec = _log([True, False, True, False], [True, True, True, False])  # kept = the screen was mixed
    s = summarize("speed", rec, g=8, screen=4)
    assert s["rollouts"] == 4 * 4 + 2 * 4  # every candidate screened, two completed
    assert s["effective_rate"] == pytest.approx(2 * 8 / 24)  # informative groups per 8 rollouts spent
    assert s["recall"] == pytest.approx(2 / 3) and s["rollouts_per_informative"] == pytest.approx(12.0)


def test_speed_screens_are_drawn_from_the_recorded_answers():
    epochs = 4000
    data = ReplayData(ids=["none", "one", "half"], texts=["", "", ""],
                      outcomes=[np.zeros(epochs, int), np.ones(epochs, int), np.full(epochs, 4)])
    cfg = ReplayConfig(trajectories="t.json", prompts="p.parquet", screen=4)
    a = replay_speed(data, cfg).arrays()
    completed = {p: a["kept"][a["prompt"] == p].mean() for p in range(3)}
    assert completed[0] == 0.0  # all-wrong: the screen is never mixed
    # one correct answer of 8: the 4-answer screen holds it with probability 1 - C(7,4)/C(8,4) = 0.5
    assert completed[1] == pytest.approx(0.5, abs=0.03)
    assert completed[2] == pytest.approx(1 - 2 / 70, abs=0.01)  # 4 of 8: unanimous screens are rare


def _write_data(tmp_path, n=40, epochs=5, seed=0):
    rng = np.random.default_rng(seed)
    easy = rng.random(n) < 0.5
    traj, rows = {}, []
    for i in range(n):
        p = 0.9 if easy[i] else 0.15
        traj[str(i)] = [float(rng.binomial(8, p) / 8) for _ in range(epochs - (i % 2))]
        word = "add two small numbers" if easy[i] else "prove the olympiad inequality"
        rows.append({"prompt": [{"role": "user", "content": f"Problem {i}: {word}."}],
                     "reward_model": {"ground_truth": "1"}, "extra_info": {"index": i}})
    (tmp_path / "traj.json").write_text(json.dumps(traj))
    pd.DataFrame(rows).to_parquet(tmp_path / "prompts.parquet")
    return traj


def test_quick_replay_end_to_end(tmp_path, capsys):
    traj = _write_data(tmp_path)
    out = tmp_path / "out"
    code = main(["bench", "replay", "--trajectories", str(tmp_path / "traj.json"), "--prompts",
                 str(tmp_path / "prompts.parquet"), "--out", str(out), "--quick", "--batch-size", "8"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    groups = [round(v * 8) for values in traj.values() for v in values]
    informative = sum(0 < k < 8 for k in groups)
    assert results["uniform"]["groups"] == len(groups)
    assert results["uniform"]["effective_rate"] == pytest.approx(informative / len(groups))
    assert results["oracle"]["effective_rate"] == 1.0 and results["oracle"]["recall"] == 1.0
    assert results["dynamic-sampling"]["cost_vs_dynamic_sampling"] == pytest.approx(1.0)
    for name in ("history", "depo-paper", "depo"):
        assert len(results[name]["per_epoch"]["effective_rate"]) == 5
    for figure in ("curves.png", "pr.png"):  # drawn, not blank
        assert plt.imread(out / figure).std() > 0.01
    assert "| depo |" in capsys.readouterr().out


def test_a_replay_repeats_whatever_ran_before_it_in_the_process(tmp_path):
    """The trunk's dropout draws from torch's global generator: replay_method seeds it, so a
    method's scores do not depend on what consumed random numbers earlier."""
    _write_data(tmp_path)
    cfg = quick_config(ReplayConfig(trajectories=tmp_path / "traj.json", prompts=tmp_path / "prompts.parquet",
                                    batch_size=8, quick=True))
    data = load_replay_data(cfg)
    base = _estimator(cfg, data.texts)
    first = replay_method(make_method("depo", cfg, {}, base), data, cfg, {})
    torch.rand(1000)  # anything else that draws from the global generator
    second = replay_method(make_method("depo", cfg, {}, base), data, cfg, {})
    assert first.score == second.score and first.kept == second.kept


def test_bad_inputs_are_depo_errors(tmp_path):
    _write_data(tmp_path)
    traj = json.loads((tmp_path / "traj.json").read_text())
    traj["999"] = [0.5]
    (tmp_path / "extra.json").write_text(json.dumps(traj))
    args = ["bench", "replay", "--prompts", str(tmp_path / "prompts.parquet"), "--methods", "uniform"]
    assert main([*args, "--trajectories", str(tmp_path / "extra.json")]) == 2  # id 999 has no prompt
    assert main([*args, "--trajectories", str(tmp_path / "traj.json"), "--group-size", "3"]) == 2
    assert main([*args, "--trajectories", str(tmp_path / "nope.json")]) == 2
    with pytest.raises(DepoError, match="unknown replay method"):
        ReplayConfig.build({"trajectories": tmp_path / "traj.json", "prompts": tmp_path / "prompts.parquet", "methods": "uniform,magic"})
    assert main([*args, "--trajectories", str(tmp_path / "traj.json"), "--part", "middle"]) == 2
    with pytest.raises(DepoError, match=r"options.histroy: .*did you mean 'history'"):  # a typo is not ignored
        ReplayConfig.build({"trajectories": tmp_path / "traj.json", "prompts": tmp_path / "prompts.parquet",
                            "options": {"histroy": {"p_min": 0.5}}})


@pytest.mark.parametrize(("content", "fragment"), [
    (b"\xff\xfe", "not valid UTF-8"),
    (b'{"0": [0.5]', "not valid JSON (line 1)"),
    (b"[]", "must be a non-empty JSON object"),
    (b'{"0": []}', "prompt '0' must be a non-empty list"),
    (b'{"0": [0.5, 1.5]}', "prompt '0' has values outside [0, 1]"),
    (b'{"0": [0.3]}', "not a multiple of 1/8"),
])
def test_a_bad_trajectories_file_is_one_line_naming_what_is_wrong(tmp_path, content, fragment):
    _write_data(tmp_path)
    (tmp_path / "bad.json").write_bytes(content)
    cfg = ReplayConfig(trajectories=tmp_path / "bad.json", prompts=tmp_path / "prompts.parquet")
    with pytest.raises(DepoError, match=re.escape(fragment)):
        load_replay_data(cfg)


def test_the_tune_and_eval_parts_split_the_prompts_in_two(tmp_path):
    _write_data(tmp_path, n=200)
    halves = {part: load_replay_data(ReplayConfig(trajectories=tmp_path / "traj.json", prompts=tmp_path / "prompts.parquet",
                                                  part=part)) for part in ("tune", "eval")}
    tune, evaluate = set(halves["tune"].ids), set(halves["eval"].ids)
    assert not tune & evaluate and len(tune | evaluate) == 200 and 70 < len(tune) < 130
    again = load_replay_data(ReplayConfig(trajectories=tmp_path / "traj.json", prompts=tmp_path / "prompts.parquet",
                                          part="tune"))
    assert again.ids == halves["tune"].ids  # the same half in every run
    text = dict(zip(halves["eval"].ids, halves["eval"].texts))
    assert all(text[i].startswith(f"Problem {i}:") for i in evaluate)  # texts follow their ids


SHARED = shared_data_dir()


@pytest.mark.shared
@pytest.mark.skipif(SHARED is None, reason="../shared/data not present (real trajectories are not in the repo)")
def test_quick_replay_on_the_real_trajectories(tmp_path):
    code = main(["bench", "replay", "--trajectories", str(SHARED / "rl_trajectories_qwen25math1.5b_dsr1209.json"),
                 "--prompts", str(SHARED / "rl_trajectories_prompts_dsr1209.parquet"), "--quick",
                 "--out", str(tmp_path), "--methods", "uniform,history,depo,oracle"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["meta"]["prompts"] == 96 and results["meta"]["epochs"] == 6
    assert results["oracle"]["effective_rate"] == 1.0


def test_p_oracle_keeps_what_a_known_pass_rate_ranks_first_at_the_methods_survival():
    from depo.bench.replay import MethodLog, ReplayData, p_oracle_rates, p_oracle_reference

    g = 2  # k of 2 per epoch; informative iff k == 1
    outcomes = [np.array(k) for k in ([1, 1, 1], [0, 0, 0], [2, 2, 2], [1, 0, 1])]  # prompts A, B, C, D
    data = ReplayData(["A", "B", "C", "D"], ["a", "b", "c", "d"], outcomes)
    rates = p_oracle_rates(data, g, window=2)
    # the rate is the neighbouring epochs' mean: epoch 1 never sees its own outcome (D's k = 0 there)
    assert [r[1] for r in rates] == [0.5, 0.0, 1.0, 0.5]

    def kept(which: str) -> MethodLog:  # a method that rolled out two prompts in epoch 1 only
        rec = MethodLog()
        for i, name in enumerate("ABCD"):
            rec.epoch.append(1)
            rec.prompt.append(i)
            rec.kept.append(name in which)
            rec.score.append(0.0)
            rec.informative.append(0 < outcomes[i][1] < g)
        return rec

    # the p-oracle keeps A and D (rate 0.5: most likely mixed); only A turns out informative
    ref = p_oracle_reference(kept("AB"), data, rates, g)
    assert ref["p_oracle_eff"] == 0.5 and ref["random_eff_same_survival"] == 0.25
    assert ref["share_of_p_oracle_gain"] == pytest.approx(1.0)  # A + B: as good as the p-oracle here
    assert p_oracle_reference(kept("BC"), data, rates, g)["share_of_p_oracle_gain"] == pytest.approx(-1.0)
