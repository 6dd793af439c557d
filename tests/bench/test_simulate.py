"""The selector simulation: a knowing selector beats uniform there, and runs are reproducible."""

from __future__ import annotations

from depo.bench.simulate import main, make_prompts, pass_rate, simulate, summarize
from tests.selection.selection_fakes import FakeEstimator


def test_simulated_policy_improves_and_text_shows_difficulty() -> None:
    prompts = make_prompts(200, seed=0)
    assert len({p.text for p in prompts}) > 190
    assert all(pass_rate(p, 100) > pass_rate(p, 0) for p in prompts)


def test_oracle_beats_uniform_and_runs_repeat() -> None:
    kw = dict(n_prompts=200, steps=12, batch_size=8, seed=3)
    uniform = summarize(simulate("uniform", **kw))
    oracle = summarize(simulate("oracle", **kw))
    assert oracle["eff_last_half"] > uniform["eff_last_half"]
    assert uniform["survival_last_half"] == 1.0 and oracle["survival_last_half"] < 1.0
    a = simulate("depo", estimator=FakeEstimator(), **kw)
    b = simulate("depo", estimator=FakeEstimator(), **kw)
    strip = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in a]
    assert strip == [{k: v for k, v in r.items() if not k.startswith("time/")} for r in b]


def test_the_command_runs_depo_with_its_estimator(capsys) -> None:
    """`python -m depo.bench.simulate` (BENCHMARKS.md section 3) builds DEPO's estimator from its flags."""
    assert main(["--selectors", "uniform,depo", "--steps", "3", "--prompts", "64", "--batch-size", "8",
                 "--freeze-encoder"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| uniform", "| depo"))]
    assert [row.split(" | ")[0] for row in rows] == ["| uniform", "| depo"]
    uniform, depo = (row.strip("| ").split(" | ") for row in rows)
    assert uniform[3] == "1.000" and uniform[6] == "–"  # keeps every prompt; no estimator, so no calibration
    assert 0.0 < float(depo[6]) < 1.0 and "nan" not in rows[1]  # depo's estimator is calibrated from step 1
