"""metrics.jsonl: one JSON object per step, appended and flushed as the run goes.

Step 0 is the evaluation before training. A crash can tear the last line; readers skip it. On
resume, records past the restored checkpoint are dropped (they will be logged again), so the
log of a resumed run reads as if it had never stopped.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl records, skipping a torn last line (a crash mid-write)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def metric_mean(records: Sequence[dict[str, Any]], key: str) -> float:
    """The mean of `key` over the records that hold a finite number for it (NaN when none do)."""
    values = [r[key] for r in records if isinstance(r.get(key), numbers.Real) and math.isfinite(r[key])]
    return float(np.mean(values)) if values else float("nan")


class MetricsLog:
    """Append-only JSONL of a run's per-step metrics."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)

    def truncate(self, step: int) -> None:
        """Keep the records of steps <= `step` (none at all for step 0: the run starts afresh)."""
        kept = [r for r in self.read() if step > 0 and r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        tmp.replace(self.path)
