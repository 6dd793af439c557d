"""Prompt texts with measured pass rates: the rows the offline benchmarks train and test on.

`depo bench estimator` and `depo bench route` read one table (or a train and a test table),
hold out a share of it by a seeded hash of the prompt id (depo.data.io.holdout_mask: the split
stays put when rows are reordered or added), and may cap either side's rows. Their configs
extend `TableBenchConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, model_validator

from depo.config import Config
from depo.data.io import (
    column,
    has_column,
    holdout_mask,
    pass_rate_column,
    prompt_ids,
    read_table,
    text_column,
)


class TableBenchConfig(Config):
    """Settings of a benchmark over a table of pass rates (each is a flag of the same name, or `--set name=value`)."""

    train: Path
    """Parquet, JSONL or JSON table of prompt texts and measured pass rates."""
    test: Path | None = None
    """Separate test table with the same columns (instead of holding out a share of `train`)."""
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Held-out share of `train`, chosen by a seeded hash of the prompt id."""
    text_column: str = "problem"
    """Prompt text column (verl files: prompt)."""
    id_column: str | None = None
    """Prompt id column (default: the first of prompt_id, extra_info.index, idx, id)."""
    seed: int = 0
    figures_dir: str | None = None
    """Also copy the plots here (e.g. docs/figures; '' = nowhere)."""
    quick: bool = False
    """A <= 1 minute smoke run on a few rows (tests, CI)."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads (default 1 in quick mode, else 2): oversubscribed OpenMP threads spin and crawl."""
    train_rows: int | None = Field(None, ge=1)
    """Use at most this many training rows (the first ones)."""
    test_rows: int | None = Field(None, ge=1)
    """Use at most this many test rows (the first ones)."""

    @model_validator(mode="after")
    def _one_split(self) -> TableBenchConfig:
        if self.test is not None and "holdout_fraction" in self.model_fields_set:
            raise ValueError("give test or holdout_fraction, not both")
        return self


def set_threads(threads: int | None, quick: bool) -> None:
    """torch's CPU threads for a benchmark: `threads`, else 1 in quick mode, else at most 2
    (more OpenMP threads than free cores spin and crawl on a shared machine)."""
    torch.set_num_threads(threads or (1 if quick else min(2, torch.get_num_threads())))


@dataclass
class Rows:
    """Prompts with their measured pass rates: `y` has one column per target, or is 1-D for one."""

    ids: list[str]
    texts: list[str]
    y: np.ndarray
    levels: list[str] | None = None

    def subset(self, mask: np.ndarray) -> Rows:
        idx = np.flatnonzero(mask)
        levels = [self.levels[i] for i in idx] if self.levels is not None else None
        return Rows([self.ids[i] for i in idx], [self.texts[i] for i in idx], self.y[idx], levels)

    def head(self, n: int | None) -> Rows:
        """The first `n` rows (all of them for None)."""
        return self if n is None or n >= len(self.ids) else self.subset(np.arange(len(self.ids)) < n)

    def target(self, j: int) -> Rows:
        """The same rows with the pass rates of target `j` only."""
        return Rows(self.ids, self.texts, self.y[:, j], self.levels)

    def concat(self, other: Rows) -> Rows:
        levels = self.levels + other.levels if self.levels is not None and other.levels is not None else None
        return Rows(self.ids + other.ids, self.texts + other.texts, np.concatenate([self.y, other.y]), levels)


def read_rows(path: Path, cfg: TableBenchConfig, targets: Sequence[str], level_column: str | None = None) -> Rows:
    """One table's ids, texts, pass-rate columns `targets` and, when the table has it, `level_column`."""
    frame = read_table(path)
    source = path.name
    rates = [pass_rate_column(frame, name, source=source) for name in targets]
    levels = None
    if level_column is not None and has_column(frame, level_column):
        levels = [str(v) for v in column(frame, level_column)]
    return Rows(prompt_ids(frame, cfg.id_column, source=source), text_column(frame, cfg.text_column, source=source),
                rates[0] if len(rates) == 1 else np.stack(rates, axis=1), levels)


def load_rows(cfg: TableBenchConfig, targets: Sequence[str], level_column: str | None = None) -> tuple[Rows, Rows]:
    """Train and test rows: the `test` table, or a seeded hash split of `train` by prompt id.

    Levels are kept only when both sides have them (the per-level baseline needs both)."""
    everything = read_rows(cfg.train, cfg, targets, level_column)
    if cfg.test is not None:
        train, test = everything, read_rows(cfg.test, cfg, targets, level_column)
        if (train.levels is None) != (test.levels is None):
            train.levels = test.levels = None
    else:
        held = holdout_mask(everything.ids, cfg.holdout_fraction, cfg.seed)
        train, test = everything.subset(~held), everything.subset(held)
    return train.head(cfg.train_rows), test.head(cfg.test_rows)
