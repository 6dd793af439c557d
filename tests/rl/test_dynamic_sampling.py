"""DAPO dynamic sampling: counting, trimming, and the never-crash fallback."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from depo.rl.dynamic_sampling import collect_informative


@dataclass
class FakeGroup:
    informative: bool
    tag: int = 0


def generator(batches: list[list[bool]]):
    calls = {"n": 0}

    def generate() -> list[FakeGroup]:
        flags = batches[calls["n"] % len(batches)]
        calls["n"] += 1
        return [FakeGroup(f, calls["n"] * 100 + i) for i, f in enumerate(flags)]

    return generate, calls


def test_keeps_generating_until_full():
    generate, calls = generator([[True, False, False, False]])
    kept, generated, stats = collect_informative(generate, batch_size=3, max_num_gen_batches=10)
    assert calls["n"] == 3
    assert len(kept) == 3 and all(g.informative for g in kept)
    assert len(generated) == 12
    assert stats["dynamic/gen_batches"] == 3 and stats["dynamic/generated"] == 12
    assert stats["dynamic/informative"] == 3 and stats["dynamic/short"] == 0.0


def test_trims_an_overfull_batch_in_generation_order():
    generate, _ = generator([[True, True, False, True, True]])
    kept, generated, stats = collect_informative(generate, batch_size=3, max_num_gen_batches=4)
    assert [g.tag for g in kept] == [100, 101, 103]
    assert stats == {
        "dynamic/gen_batches": 1.0,
        "dynamic/generated": 5.0,
        "dynamic/informative": 4.0,
        "dynamic/kept": 3.0,
        "dynamic/short": 0.0,
    }


def test_fallback_at_max_num_gen_batches_warns_and_returns(caplog):
    generate, calls = generator([[False, False], [False, True]])
    with caplog.at_level(logging.WARNING):
        kept, generated, stats = collect_informative(generate, batch_size=4, max_num_gen_batches=3)
    assert calls["n"] == 3
    assert len(kept) == 1 and len(generated) == 6
    assert stats["dynamic/short"] == 1.0 and stats["dynamic/kept"] == 1.0
    assert "max_num_gen_batches=3" in caplog.text


def test_all_zero_variance_never_crashes():
    generate, _ = generator([[False] * 4])
    kept, generated, stats = collect_informative(generate, batch_size=2, max_num_gen_batches=2)
    assert kept == [] and len(generated) == 8 and stats["dynamic/short"] == 1.0


def test_rejects_bad_bounds():
    with pytest.raises(ValueError):
        collect_informative(lambda: [], batch_size=0, max_num_gen_batches=1)
