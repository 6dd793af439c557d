"""depo.bench.table: the rows the offline benchmarks read, split by prompt id, capped, per target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from depo.bench.table import TableBenchConfig, load_rows
from depo.errors import DepoError


def _table(path, n=50, levels=True):
    frame = pd.DataFrame({"idx": range(n), "problem": [f"q{i}" for i in range(n)],
                          "a": np.linspace(0, 1, n), "b": np.linspace(1, 0, n)})
    if levels:
        frame["level"] = [f"L{i % 3}" for i in range(n)]
    frame.to_parquet(path)
    return path


def test_the_holdout_split_follows_the_prompt_ids_not_the_row_order(tmp_path):
    data = _table(tmp_path / "t.parquet")
    train, test = load_rows(TableBenchConfig(train=data), ["a"], "level")
    assert set(train.ids).isdisjoint(test.ids) and len(train.ids) + len(test.ids) == 50
    pd.read_parquet(data).iloc[::-1].to_parquet(tmp_path / "reversed.parquet")
    _, test_reversed = load_rows(TableBenchConfig(train=tmp_path / "reversed.parquet"), ["a"], "level")
    assert sorted(test_reversed.ids) == sorted(test.ids)
    assert test.levels is not None and test.y.shape == (len(test.ids),)


def test_two_targets_give_one_column_each_and_target_selects_one(tmp_path):
    data = _table(tmp_path / "t.parquet")
    train, _ = load_rows(TableBenchConfig(train=data, train_rows=5), ["a", "b"])
    assert train.y.shape == (5, 2) and train.levels is None
    np.testing.assert_array_equal(train.target(1).y, train.y[:, 1])
    both = train.concat(train.head(2))
    assert len(both.ids) == 7 and both.y.shape == (7, 2)


def test_a_test_table_replaces_the_holdout_and_levels_need_both_sides(tmp_path):
    train_file, test_file = _table(tmp_path / "train.parquet"), _table(tmp_path / "test.parquet", n=10, levels=False)
    train, test = load_rows(TableBenchConfig(train=train_file, test=test_file), ["a"], "level")
    assert len(train.ids) == 50 and len(test.ids) == 10
    assert train.levels is None and test.levels is None
    with pytest.raises(DepoError, match="give test or holdout_fraction, not both"):
        TableBenchConfig.build({"train": train_file, "test": test_file, "holdout_fraction": 0.3})
