"""reasoning-gym presets: determinism, disjoint splits, compact prompts, binary exact reward."""

from __future__ import annotations

from collections import Counter

import pytest

from depo.errors import DepoError
from depo.tasks.gym import (
    PRESETS,
    RENDERERS,
    exact_match,
    in_heldout_bucket,
    normalize_answer,
    preset_components,
    preset_tasks,
)


@pytest.mark.parametrize("preset", PRESETS)
def test_deterministic_and_prefix_stable(preset):
    a = preset_tasks(preset, "train", 300, seed=3)
    b = preset_tasks(preset, "train", 300, seed=3)
    assert [(t.prompt_id, t.prompt, t.answer, t.text) for t in a] == [
        (t.prompt_id, t.prompt, t.answer, t.text) for t in b
    ]
    longer = preset_tasks(preset, "train", 400, seed=3)
    assert [t.prompt for t in longer[:300]] == [t.prompt for t in a]
    other = preset_tasks(preset, "train", 300, seed=4)
    assert [t.prompt for t in other] != [t.prompt for t in a]


@pytest.mark.parametrize("preset", PRESETS)
def test_heldout_disjoint_from_train_and_unique(preset):
    train = preset_tasks(preset, "train", 3000, seed=0)
    train_other_seed = preset_tasks(preset, "train", 1000, seed=1)
    held = preset_tasks(preset, "heldout", 300, seed=0)
    held_prompts = [t.prompt for t in held]
    # Unique except where a narrow component (200 1-digit sums, 100 1-digit products) has run
    # out of fresh held-out prompts.
    counts = Counter(held_prompts)
    repeated = {t.meta["component"] for t in held if counts[t.prompt] > 1}
    assert repeated <= {"sum1a", "mul1a"}
    assert not set(held_prompts) & {t.prompt for t in train + train_other_seed}
    assert all(in_heldout_bucket(p) for p in held_prompts)
    assert not any(in_heldout_bucket(t.prompt) for t in train)


@pytest.mark.parametrize("preset", PRESETS)
def test_tasks_are_compact_and_solvable_by_their_gold(preset):
    tasks = preset_tasks(preset, "train", 500, seed=0)
    ids = [t.prompt_id for t in tasks]
    assert len(set(ids)) == len(ids)
    components = {c.name for c in preset_components(preset)}
    assert {t.meta["component"] for t in tasks} == components  # every component is drawn
    for t in tasks:
        assert t.meta["task"] in RENDERERS
        assert len(t.prompt) <= 32  # compact: a tag and the payload
        assert t.text != t.prompt and len(t.text) > len(t.prompt)  # natural question kept
        assert t.reward(t.answer) == 1.0
        assert t.reward(f"  {t.answer}\n") == 1.0
        assert t.reward(t.answer + "1") == 0.0


def test_train_pool_is_large_and_mostly_distinct():
    tasks = preset_tasks("mixed", "train", 20000, seed=0)
    assert len({t.prompt for t in tasks}) > 10000


def test_compact_rendering_matches_reasoning_gym_payload():
    for t in preset_tasks("mixed", "train", 200, seed=0):
        tag, payload = t.prompt.split(" ", 1)
        # The payload's numbers / word appear verbatim in reasoning-gym's natural question.
        assert payload in t.text or payload.replace(", ", ",") in t.text or payload.split(", ")[0] in t.text
        assert tag in {"sum", "mul", "gcd", "lcm", "bits", "rev"}


def test_reward_is_binary_and_exact():
    assert exact_match("20", "2") == 0.0  # reasoning-gym's score_answer gives 0.5 here
    assert exact_match("-50", "-5") == 0.0
    assert exact_match(" 2 \n", "2") == 1.0
    assert exact_match("+2", "2") == 1.0
    assert exact_match("1,000", "1000") == 1.0
    assert exact_match("olleh", "olleh") == 1.0
    assert exact_match("olleH", "olleh") == 0.0
    assert exact_match("", "0") == 0.0
    assert normalize_answer("  a   b ") == "a b"


def test_bad_arguments():
    with pytest.raises(DepoError, match="unknown task preset"):
        preset_tasks("medium", "train", 3)
    with pytest.raises(DepoError, match="unknown split"):
        preset_tasks("mixed", "test", 3)
    with pytest.raises(DepoError, match="must be >= 0"):
        preset_tasks("easy", "heldout", -1)
