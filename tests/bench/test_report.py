"""The benchmarks' shared output: markdown tables, results.json with its meta, figures and their copies."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from depo.bench.report import Col, markdown_row, markdown_table, new_figure, save_figure, write_results


def test_a_table_row_per_method_with_missing_and_nan_cells_as_dashes():
    rows = [{"method": "depo", "eff": 0.7771, "rollouts": 1234.0, "met": True},
            {"method": "grpo", "eff": float("nan"), "met": False}]
    table = markdown_table(rows, [Col("eff", "effective rate"), Col("rollouts", "rollouts", ".0f"), Col("met", "met")])
    assert table.splitlines() == [
        "| method | effective rate | rollouts | met |",
        "|---|---|---|---|",
        "| depo | 0.777 | 1234 | yes |",
        "| grpo | – | – | no |",
    ]
    columns = [Col("eff", "effective rate"), Col("rollouts", "rollouts", ".0f"), Col("met", "met")]
    streamed = [markdown_table([], columns), *(markdown_row(row, columns) for row in rows)]  # a row as it is measured
    assert "\n".join(streamed) == table


def test_results_are_json_without_nan_and_carry_where_and_when_they_were_measured(tmp_path):
    results = {"depo": {"eff": np.float32(0.5), "curve": (1.0, float("inf")), "out": Path("runs/x")}}
    path = write_results(tmp_path / "out", results, table="| t |", meta={"command": "depo bench x"})
    saved = json.loads(path.read_text())  # strict JSON: NaN and inf would not parse in other readers
    assert saved["depo"] == {"eff": 0.5, "curve": [1.0, None], "out": "runs/x"}
    assert saved["meta"]["command"] == "depo bench x" and "CPU cores" in saved["meta"]["machine"]
    assert (tmp_path / "out" / "results.md").read_text() == "| t |\n"


def test_a_figure_is_saved_in_out_and_copied_under_a_prefix_only_when_asked(tmp_path):
    fig, (ax,) = new_figure(1)
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, tmp_path / "out", "curves.png", figures_dir=tmp_path / "figures", prefix="bench_x_")
    assert plt.imread(path).std() > 0.01  # drawn, not blank
    assert (tmp_path / "figures" / "bench_x_curves.png").read_bytes() == path.read_bytes()
    save_figure(fig, tmp_path / "out2", "curves.png", figures_dir="")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "out", "out2"]
