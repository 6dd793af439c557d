"""Reward-function faults, injected per response: exceptions, NaN, +-inf and non-numbers are
counted as the group's error (the trainer drops and counts such groups), never raised."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from depo.tasks.base import Task, score_responses


class _Boom(Exception):
    pass


OUTCOMES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([math.nan, math.inf, -math.inf, "0.5", "abc", None, [1.0], True]),
    st.sampled_from([ValueError("bad"), KeyError("k"), ZeroDivisionError(), _Boom("custom"), RecursionError()]),
)


def _is_fault(value) -> bool:
    if isinstance(value, BaseException):
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


@settings(max_examples=100, deadline=None)
@given(outcomes=st.lists(OUTCOMES, min_size=1, max_size=8))
def test_any_reward_fault_is_counted_not_raised(outcomes: list) -> None:
    replies = iter(outcomes)

    def verifier(response: str, answer: str) -> float:
        value = next(replies)
        if isinstance(value, BaseException):
            raise value
        return value  # type: ignore[return-value]

    task = Task(prompt_id="p", prompt="q", answer="a", verifier=verifier)
    rewards, error = score_responses(task, ["r"] * len(outcomes))
    assert len(rewards) == len(outcomes) and all(0.0 <= r <= 1.0 for r in rewards)
    faults = [_is_fault(v) for v in outcomes]
    assert (error is not None) == any(faults)
    for value, fault, reward in zip(outcomes, faults, rewards):
        if not fault:
            assert reward == min(1.0, max(0.0, float(value)))
