"""DataOrder and RefillStream: accounting identities, forced fill, epochs, exact resume."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depo.errors import DepoError
from depo.selection import DataOrder, RefillStream, Uniform, make_selector
from depo.types import Candidate, Decisions, GroupOutcome

QUICK = settings(max_examples=50, deadline=None)


class Coin:
    """Test selector: keeps each prompt with probability keep_rate, explores rejected ones with
    probability explore; priority = a seeded random score (so forced fill order is checkable)."""

    def __init__(self, keep_rate: float, explore: float = 0.0, seed: int = 0) -> None:
        self.keep_rate, self.explore = keep_rate, explore
        self.rng = np.random.default_rng(seed)

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        u = self.rng.random(len(batch))
        e = self.rng.random(len(batch))
        base = u < self.keep_rate
        explored = ~base & (e < self.explore)
        prio = np.array([int(c.prompt_id) % 97 for c in batch], dtype=float)
        return Decisions(keep=list(base | explored), explored=list(explored), priority=prio)


    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def cand(i: int) -> Candidate:
    return Candidate(prompt_id=str(i), text=f"prompt {i}")


def test_data_order_is_a_seeded_permutation_per_epoch() -> None:
    a, b = DataOrder(7, seed=3), DataOrder(7, seed=3)
    first = [a.next() for _ in range(7)]
    assert sorted(first) == list(range(7)) and a.epoch == 0
    second = [a.next() for _ in range(7)]
    assert sorted(second) == list(range(7)) and a.epoch == 1
    assert [b.next() for _ in range(14)] == first + second
    c = DataOrder(50, seed=1)
    epochs = [[c.next() for _ in range(50)] for _ in range(2)]
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def test_data_order_resume() -> None:
    a = DataOrder(10, seed=5)
    for _ in range(13):
        a.next()
    b = DataOrder(10, seed=0)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [a.next() for _ in range(25)] == [b.next() for _ in range(25)]
    with pytest.raises(DepoError):
        DataOrder(11).load_state_dict(a.state_dict())


@pytest.mark.parametrize("n", [0, -1])
def test_empty_dataset_is_a_clear_error(n: int) -> None:
    with pytest.raises(DepoError, match="empty"):
        DataOrder(n)


def test_too_small_dataset_or_bound_is_a_clear_error() -> None:
    with pytest.raises(DepoError, match="fewer than one batch"):
        RefillStream(DataOrder(3), Uniform(), cand, batch_size=4, max_scan=8)
    with pytest.raises(DepoError, match="max_scan"):
        RefillStream(DataOrder(30), Uniform(), cand, batch_size=4, max_scan=3)


@QUICK
@given(
    n=st.integers(1, 60),
    batch=st.integers(1, 12),
    extra=st.integers(0, 30),
    keep_rate=st.floats(0.0, 1.0),
    explore=st.floats(0.0, 0.5),
    steps=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_accounting_identities(n, batch, extra, keep_rate, explore, steps, seed) -> None:
    if n < batch:
        n = batch
    order = DataOrder(n, seed)
    stream = RefillStream(order, Coin(keep_rate, explore, seed), cand, batch_size=batch, max_scan=batch + extra)
    drawn = 0
    for _ in range(steps):
        idx, s = stream.next_batch()
        assert len(idx) == batch and all(0 <= i < n for i in idx)
        assert s["select/kept"] + s["select/skipped"] == s["select/scanned"] <= batch + extra
        assert s["select/explored"] <= s["select/kept"]
        assert s["select/kept"] + s["select/forced"] == batch
        assert s["select/forced"] == 0 or s["select/scanned"] == batch + extra
        assert s["select/survival_rate"] == pytest.approx(s["select/kept"] / s["select/scanned"])
        assert sum(stream.last_forced) == s["select/forced"] and sum(stream.last_explored) == s["select/explored"]
        assert not any(e and f for e, f in zip(stream.last_explored, stream.last_forced))
        drawn += int(s["select/scanned"])
    # Per-epoch counts add up to the totals, and every drawn index is either consumed or pending.
    for field in ("scanned", "kept", "skipped", "explored", "forced"):
        assert sum(getattr(c, field) for c in stream.epochs.values()) == getattr(stream.total, field)
    assert stream.total.scanned == drawn
    assert order.epoch * n + order.position == drawn + len(stream._pending)
    for c in stream.epochs.values():
        assert c.kept + c.skipped == c.scanned <= n and c.explored <= c.kept


def test_rejecting_everything_never_stalls_and_forces_best_ranked() -> None:
    selector = Coin(keep_rate=0.0)
    stream = RefillStream(DataOrder(100, seed=2), selector, cand, batch_size=5, max_scan=20)
    for _ in range(12):  # several epochs
        idx, s = stream.next_batch()
        assert len(idx) == 5 and s["select/forced"] == 5 and s["select/scanned"] == 20
        assert s["select/survival_rate"] == 0.0
        assert all(stream.last_forced)
    # The forced ones are the best-ranked (priority = id % 97) of the 20 scanned in the last step.
    order = DataOrder(100, seed=2)
    scanned = [order.next() for _ in range(20 * 12)][-20:]
    best = sorted(scanned, key=lambda i: -(i % 97))[:5]
    assert idx == best


def test_a_selector_must_answer_with_decisions_for_the_whole_batch() -> None:
    class ListAnswer:  # the pre-Decisions interface: a list of booleans
        def select(self, batch):
            return [int(c.prompt_id) % 2 == 1 for c in batch]

    class Short:
        def select(self, batch):
            return Decisions.keep_all(len(batch) - 1)

    with pytest.raises(TypeError, match="ListAnswer.select must return depo.types.Decisions, got list"):
        RefillStream(DataOrder(40, seed=0), ListAnswer(), cand, batch_size=6, max_scan=40).next_batch()
    with pytest.raises(ValueError, match="Short.select returned 5 decisions for 6 candidates"):
        RefillStream(DataOrder(40, seed=0), Short(), cand, batch_size=6, max_scan=6).next_batch()


def test_epoch_accounting_across_boundaries() -> None:
    stream = RefillStream(DataOrder(10, seed=4), Uniform(), cand, batch_size=4, max_scan=4)
    seen = []
    for _ in range(5):  # 20 prompts = exactly two epochs, the 3rd step straddles the boundary
        idx, s = stream.next_batch()
        seen += idx
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert {e: c.scanned for e, c in stream.epochs.items()} == {0: 10, 1: 10}
    assert s["select/epoch"] == 1 and s["select/epoch_scanned"] == 10 and s["select/epoch_survival_rate"] == 1.0


@QUICK
@given(
    keep_rate=st.floats(0.0, 1.0),
    explore=st.floats(0.0, 0.3),
    before=st.integers(0, 6),
    seed=st.integers(0, 100),
)
def test_resume_reproduces_the_same_sequence(keep_rate, explore, before, seed) -> None:
    def run(stream):
        idx, stats = stream.next_batch()
        return idx, {k: v for k, v in stats.items() if not k.startswith("time/")}, list(stream.last_explored)

    def build():
        return RefillStream(DataOrder(23, seed), Coin(keep_rate, explore, seed), cand, batch_size=5, max_scan=13)

    a = build()
    for _ in range(before):
        a.next_batch()
    saved = json.loads(json.dumps({"stream": a.state_dict(), "selector": a.selector.state_dict()}))
    expected = [run(a) for _ in range(5)]
    b = build()
    b.load_state_dict(saved["stream"])
    b.selector.load_state_dict(saved["selector"])
    got = [run(b) for _ in range(5)]
    assert got == expected


def test_make_selector_uniform_and_errors() -> None:
    sel = make_selector("uniform", group_size=8, seed=0)
    assert sel.select([cand(1), cand(2)]).keep == [True, True]
    with pytest.raises(DepoError, match="unknown selector"):
        make_selector("nope", group_size=8, seed=0)
    with pytest.raises(DepoError, match="selector 'uniform' options: unknown key 'x'"):
        make_selector("uniform", group_size=8, seed=0, options={"x": 1})
    with pytest.raises(DepoError, match="group size"):
        make_selector("uniform", group_size=1, seed=0)


class Ranked:
    """Test selector: priority = the prompt's number (higher is better), no warm-up."""

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        prio = np.array([float(c.prompt_id) for c in batch])
        return Decisions(keep=[True] * len(batch), explored=[False] * len(batch), priority=prio, mean_priority=-prio * 0 + prio)

    def observe(self, outcomes):
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.mark.parametrize("oversample", [1.0, 1.5, 3.0])
def test_rank_stream_keeps_the_best_of_its_pool(oversample: float) -> None:
    from depo.selection import make_stream

    stream = make_stream("rank", DataOrder(40, seed=0), Ranked(), cand, 4, oversample=oversample)
    batch, stats = stream.next_batch()
    pool = [i for i, _, _ in stream.last_scanned]
    assert len(pool) == int(np.ceil(oversample * 4)) and len(batch) == 4
    assert sorted(batch) == sorted(pool)[-4:]  # the highest priorities
    assert stats["select/scanned"] == len(pool) and stats["select/kept"] == 4
    assert stats["select/skipped"] == len(pool) - 4 and stats["select/survival_rate"] == pytest.approx(1 / oversample, abs=0.1)


def test_rank_stream_counts_draws_that_beat_the_mean_as_explored_and_resumes() -> None:
    from depo.selection import make_stream

    class Thompson(Ranked):
        def select(self, batch):
            d = super().select(batch)
            return Decisions(keep=d.keep, explored=d.explored, priority=-d.priority, mean_priority=d.priority)

    stream = make_stream("rank", DataOrder(30, seed=1), Thompson(), cand, 3, oversample=2.0)
    batch, stats = stream.next_batch()
    assert all(stream.last_explored) and stats["select/explored"] == 3  # kept by the draw, not by the mean
    saved = json.loads(json.dumps(stream.state_dict()))
    ahead = [stream.next_batch()[0] for _ in range(4)]
    again = make_stream("rank", DataOrder(30, seed=1), Thompson(), cand, 3, oversample=2.0)
    again.load_state_dict(saved)
    assert [again.next_batch()[0] for _ in range(4)] == ahead
    with pytest.raises(DepoError, match="oversample must be >= 1"):
        make_stream("rank", DataOrder(30, seed=1), Thompson(), cand, 3, oversample=0.5)
    with pytest.raises(DepoError, match="'rank' or 'refill'"):
        make_stream("ranked", DataOrder(30, seed=1), Thompson(), cand, 3)
