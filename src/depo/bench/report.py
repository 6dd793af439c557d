"""Shared output of the benchmarks: markdown tables, results.json, and small PNG figures.

Every benchmark writes, in its `--out` directory, `results.json` (one object per method, keys
named as in the table), `results.md` (the table that is also printed) and its figures; figures
can also be copied to a committed folder (`docs/figures/`) under a benchmark-specific prefix.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


@dataclass(frozen=True)
class Col:
    """One table column: the metric key, its header, and a format spec (e.g. '.3f')."""

    key: str
    header: str
    fmt: str = ".3f"


def format_value(value: Any, fmt: str = ".3f") -> str:
    """A table cell: '–' for missing or NaN values, `fmt` for numbers, str otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format(value, fmt)
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[Col], *, name_key: str = "method") -> str:
    """A GitHub markdown table: one row per dict, the first column is `name_key` (no rows: the
    header alone, for a command that prints each `markdown_row` as it is measured)."""
    header = "| " + " | ".join([name_key, *(c.header for c in columns)]) + " |"
    rule = "|" + "---|" * (len(columns) + 1)
    return "\n".join([header, rule, *(markdown_row(row, columns, name_key=name_key) for row in rows)])


def markdown_row(row: dict[str, Any], columns: Sequence[Col], *, name_key: str = "method") -> str:
    """One row of `markdown_table`."""
    cells = [str(row.get(name_key, ""))] + [format_value(row.get(c.key), c.fmt) for c in columns]
    return "| " + " | ".join(cells) + " |"


def timed(timings: dict[str, float], key: str, fn: Callable[[], Any]) -> Any:
    """`fn()`, its wall seconds stored as `timings[key]`."""
    start = time.perf_counter()
    result = fn()
    timings[key] = time.perf_counter() - start
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def machine_line() -> str:
    """Where a number was measured: OS, CPU, core count, Python."""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def write_results(out: str | Path, results: dict[str, Any], *, table: str, meta: dict[str, Any]) -> Path:
    """Write results.json ({"meta": ..., "<method>": {...}}) and results.md (the table) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_line(), **meta}
    (out / "results.json").write_text(json.dumps(_jsonable({"meta": meta, **results}), indent=2) + "\n")
    (out / "results.md").write_text(table + "\n")
    return out / "results.json"


def save_figure(fig: Figure, out: str | Path, name: str, *, figures_dir: str | Path | None = None, prefix: str = "") -> Path:
    """Save a matplotlib figure as a small PNG in `out` (and a copy as figures_dir/prefix+name)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=90, bbox_inches="tight")
    if figures_dir:  # None or "" = keep the figure in `out` only
        figures = Path(figures_dir)
        figures.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, figures / f"{prefix}{name}")
    return path


def new_figure(ncols: int = 1, *, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list]:
    """A figure with `ncols` axes side by side (matplotlib's object API: no pyplot state, no display)."""
    fig = Figure(figsize=(width * ncols, height))
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])
