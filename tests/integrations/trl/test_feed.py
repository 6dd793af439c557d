"""DEPO's TRL sampler and selection feed, without running a trainer: layout, attribution, lag, resume."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from depo.errors import DepoError
from depo.integrations.trl.feed import SelectionFeed, SyncedSelector, state_fingerprint
from depo.integrations.trl.sampler import DEPORepeatSampler
from depo.selection import Uniform
from depo.types import Candidate, Decisions, GroupOutcome


class KeepNotMultipleOf3:
    """Deterministic: rejects prompts whose id is a multiple of 3; remembers what it observed."""

    def __init__(self) -> None:
        self.observed: list[GroupOutcome] = []

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        keep = [int(c.prompt_id) % 3 != 0 for c in batch]
        return Decisions(keep=keep, explored=[False] * len(batch), priority=np.zeros(len(batch)))

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        self.observed.extend(outcomes)
        return {"estimator/seen": float(len(self.observed))}

    def state_dict(self) -> dict:
        return {"seen": [o.prompt_id for o in self.observed]}

    def load_state_dict(self, state: dict) -> None:
        self.observed = [GroupOutcome(p, "", (0.0,)) for p in state["seen"]]


def make_feed(selector, n: int = 30, batch: int = 3, group: int = 2, **kw) -> SelectionFeed:
    texts = [f"question {i}" for i in range(n)]
    return SelectionFeed(selector, texts, [str(i) for i in range(n)], batch_size=batch, group_size=group, seed=0, max_scan=4 * batch, **kw)


def test_sampler_matches_trl_repeat_sampler_layout() -> None:
    trl_utils = pytest.importorskip("trl.trainer.utils")
    n, batch, mini, repeat = 12, 3, 2, 3
    reference = list(trl_utils.RepeatSampler(range(n), mini_repeat_count=mini, batch_size=batch, repeat_count=repeat, shuffle=False))
    chunks = iter([list(range(i, i + batch)) for i in range(0, n, batch)])
    ours = DEPORepeatSampler(lambda: next(chunks), chunks_per_epoch=n // batch, batch_size=batch, mini_repeat_count=mini, repeat_count=repeat)
    assert list(ours) == reference
    assert len(ours) == len(reference)


def test_sampler_draws_lazily_one_chunk_at_a_time() -> None:
    calls: list[int] = []

    def next_chunk() -> list[int]:
        calls.append(len(calls))
        return [len(calls)] * 2

    it = iter(DEPORepeatSampler(next_chunk, chunks_per_epoch=3, batch_size=2, mini_repeat_count=2))
    assert calls == []
    first = [next(it) for _ in range(4)]
    assert first == [1, 1, 1, 1] and len(calls) == 1
    next(it)
    assert len(calls) == 2


def test_feed_skips_rejected_prompts_and_attributes_outcomes_by_index() -> None:
    sel = KeepNotMultipleOf3()
    feed = make_feed(sel)
    chunk = feed.next_chunk()
    assert len(chunk) == 3 and all(i % 3 for i in chunk)
    # TRL order: group_size consecutive completions per prompt, rewards mixed for the first prompt only
    indices = [i for i in chunk for _ in range(2)]
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    metrics = feed.complete(indices, rewards, mean_logprobs=[-0.5] * 6)
    assert [o.prompt_id for o in sel.observed] == [str(i) for i in chunk]
    assert [o.rewards for o in sel.observed] == [(1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]
    assert all(o.mean_logprobs == (-0.5, -0.5) for o in sel.observed)
    assert sel.observed[0].text == f"question {chunk[0]}"
    assert metrics["select/effective_rate"] == pytest.approx(1 / 3)
    assert metrics["select/rollouts_total"] == 6
    assert metrics["select/scanned"] >= 3 and metrics["select/kept"] == 3
    assert metrics["estimator/seen"] == 3


def test_the_history_of_drawn_chunks_is_bounded(monkeypatch) -> None:
    import depo.integrations.trl.feed as feed_module

    monkeypatch.setattr(feed_module, "HISTORY", 3)
    feed = make_feed(KeepNotMultipleOf3())
    drawn = [feed.next_chunk(in_flight=False) for _ in range(5)]
    assert feed.history == drawn[-3:]


def test_feed_rejects_groups_mixing_prompts() -> None:
    feed = make_feed(Uniform())
    chunk = feed.next_chunk()
    with pytest.raises(DepoError, match="different prompts"):
        feed.complete([chunk[0], chunk[1], chunk[1], chunk[1], chunk[2], chunk[2]], [0.0] * 6)


def test_feed_handles_the_one_batch_lag_and_checkpoints_before_the_prefetched_chunk() -> None:
    sel = KeepNotMultipleOf3()
    feed = make_feed(sel)
    c1 = feed.next_chunk()
    c2 = feed.next_chunk()  # prefetched by the dataloader before c1 is rolled out
    metrics = feed.complete([i for i in c1 for _ in range(2)], [1.0, 0.0] * 3)
    assert metrics["select/in_flight"] == 1
    state = feed.state_dict()
    c3 = feed.next_chunk()

    resumed_sel = KeepNotMultipleOf3()
    resumed = make_feed(resumed_sel)
    resumed.load_state_dict(state)
    assert [o.prompt_id for o in resumed_sel.observed] == [str(i) for i in c1]
    # the prefetched, never rolled-out chunk is drawn again, then the stream continues as before
    assert resumed.next_chunk() == c2
    assert resumed.next_chunk() == c3


def test_synced_selector_takes_the_main_process_decisions() -> None:
    main = Decisions(keep=[True, False, True], explored=[False, False, True], priority=np.array([0.1, 0.2, 0.3]),
                     mean_priority=np.array([0.1, 0.3, 0.2]))
    synced = SyncedSelector(Uniform(), broadcast=lambda payload: (main.keep, main.explored, main.priority.tolist(),
                                                                  main.mean_priority.tolist()))
    batch = [Candidate(str(i), "t") for i in range(3)]
    got = synced.select(batch)
    assert got.keep == main.keep and got.explored == main.explored
    assert got.mean_priority.tolist() == [0.1, 0.3, 0.2]  # what the rank stream counts exploration by
    assert synced.rank_disagreements == 1  # Uniform alone would keep all three
    assert SyncedSelector(Uniform()).select(batch).keep == [True, True, True]


def test_state_fingerprint_sees_tensor_and_counter_changes() -> None:
    a = {"w": torch.ones(3), "opt": {"step": 2, "m": np.zeros(2)}, "ids": ["1", "2"]}
    b = {"ids": ["1", "2"], "opt": {"m": np.zeros(2), "step": 2}, "w": torch.ones(3)}
    assert state_fingerprint(a) == state_fingerprint(b)
    b["w"][1] = 1.0 + 1e-6
    assert state_fingerprint(a) != state_fingerprint(b)
    b["w"][1] = 1.0
    b["opt"]["step"] = 3
    assert state_fingerprint(a) != state_fingerprint(b)


def test_import_depo_does_not_import_trl() -> None:
    code = "import sys, depo, depo.selection, depo.integrations; assert 'trl' not in sys.modules, 'trl imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_trl_gives_one_clear_error() -> None:
    code = (
        "import sys; sys.modules['trl'] = None\n"
        "try:\n    import depo.integrations.trl\nexcept ImportError as e:\n"
        "    from depo.errors import DepoError; assert isinstance(e, DepoError); print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "pip install 'depo-rl[trl]'" in out
