"""reasoning-gym presets: the embedded default tasks (`mixed`, `easy`, `hard`).

Each preset is a weighted mixture of reasoning-gym procedural datasets, easy and hard ones for
the tiny policy, so that all-right, all-wrong and mixed groups all occur (docs/method.md
section 1 says why they matter). reasoning-gym supplies the items, the natural question
(`Task.text`, what the difficulty estimator and real chat models read) and the gold answer;
this module adds

- a compact rendering (`Task.prompt`, e.g. ``gcd 86, 98``): a task tag plus the payload,
  ~10 characters, because a tiny policy learns these in minutes while the 25-token natural
  questions it does not;
- a binary exact verifier: `score_answer` gives partial credit to wrong answers
  ('20' scores 0.5 against '2'), which would blur the zero-variance accounting;
- a train / held-out split that is disjoint by construction: a prompt belongs to the
  held-out split iff a hash of its compact rendering falls in a fixed bucket
  (1 in `HELDOUT_BUCKETS`). reasoning-gym builds item i with `Random(seed + i)`, so nearby
  seeds repeat items; hashing the content rather than the seed makes any train pool, of any
  size, disjoint from any held-out set. Held-out prompts are also unique among themselves,
  except when a narrow component (1-digit products) has none left.
- streams whose seeds are spaced `SEED_STRIDE` apart, so no two streams share items by
  index, and value ranges wide enough that the train pool (>= 20k prompts) needs rules rather
  than lookup: RL on a small fixed pool memorises it (pool accuracy rises while held-out
  accuracy falls).

`preset_tasks(p, s, m)[:n] == preset_tasks(p, s, n)`: generation is sequential, so a larger
pool extends a smaller one.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import reasoning_gym

from depo.errors import DepoError
from depo.tasks.base import Task

PRESETS = ("mixed", "easy", "hard")
SPLITS = ("train", "heldout")
HELDOUT_BUCKETS = 10
"""One prompt in this many (by content hash) is reserved for the held-out split."""
SEED_STRIDE = 10**8
"""Distance between the base seeds of two item streams (reasoning-gym item i uses seed + i)."""
MAX_DRAWS_PER_ITEM = 400
"""Draws tried for a held-out prompt not yet in the held-out set; after that a narrow
component (e.g. 1-digit products, 100 distinct prompts) repeats one."""

_INT = re.compile(r"[+-]?\d+")


def normalize_answer(text: str) -> str:
    """Canonical form for exact comparison: whitespace trimmed and collapsed; integers
    written without sign '+', leading zeros or thousands commas ('+01,000' -> '1000')."""
    s = " ".join(text.split())
    compact = s.replace(",", "")
    return str(int(compact)) if _INT.fullmatch(compact) else s


def exact_match(response: str, answer: str) -> float:
    """Binary reward: 1.0 iff the normalised response equals the normalised gold answer."""
    return 1.0 if normalize_answer(response) == normalize_answer(answer) else 0.0


RENDERERS: dict[str, Callable[[dict], str]] = {
    "chain_sum": lambda meta: f"sum {meta['expression']}",
    "products": lambda meta: f"mul {meta['expression']}",
    "gcd": lambda meta: "gcd " + ", ".join(str(x) for x in meta["numbers"]),
    "lcm": lambda meta: "lcm " + ", ".join(str(x) for x in meta["numbers"]),
    "count_bits": lambda meta: f"bits {meta['number']}",
    "spell_backward": lambda meta: f"rev {meta['word']}",
}
"""reasoning-gym dataset name -> compact rendering of one item from its metadata."""


@dataclass(frozen=True)
class Component:
    """One reasoning-gym dataset with a config, drawn with probability proportional to weight."""

    name: str
    dataset: str
    config: dict = field(default_factory=dict)
    weight: float = 1.0


def _c(name: str, dataset: str, weight: float = 1.0, **config) -> Component:
    return Component(name=name, dataset=dataset, config=config, weight=weight)


PRESET_COMPONENTS: dict[str, tuple[Component, ...]] = {
    # Spans far too easy (1-digit sums and products) to far too hard (2x2-digit products,
    # reversals, lcm) for the warm-started tiny policy; the middle is where GRPO can learn.
    "mixed": (
        _c("sum1a", "chain_sum", min_terms=2, max_terms=2, min_digits=1, max_digits=1),
        _c("sum1", "chain_sum", min_terms=3, max_terms=3, min_digits=1, max_digits=1),
        _c("mul1a", "products", min_digits=1, max_digits=1, min_terms=2, max_terms=2),
        _c("sum2", "chain_sum", min_terms=2, max_terms=2, min_digits=2, max_digits=2),
        _c("mul2", "products", min_digits=2, max_digits=2),
        _c("gcd", "gcd", min_value=1, max_value=100),
        _c("lcm", "lcm", min_value=1, max_value=30),
        _c("bits", "count_bits", min_n=1, max_n=1023),
        _c("rev", "spell_backward", min_word_len=3, max_word_len=6),
    ),
    # Mostly within the mixed-trained tiny policy's reach (the paper's OR1 study: easier data).
    "easy": (
        _c("sum1a", "chain_sum", weight=2.0, min_terms=2, max_terms=2, min_digits=1, max_digits=1),
        _c("mul1a", "products", weight=2.0, min_digits=1, max_digits=1, min_terms=2, max_terms=2),
        _c("sum1", "chain_sum", min_terms=3, max_terms=3, min_digits=1, max_digits=1),
    ),
    # Mostly beyond it (the paper's NT study: harder data).
    "hard": (
        _c("sum3", "chain_sum", weight=2.0, min_terms=3, max_terms=4, min_digits=2, max_digits=3),
        _c("mul2", "products", weight=2.0, min_digits=2, max_digits=3),
        _c("lcm", "lcm", min_value=10, max_value=100),
        _c("rev", "spell_backward", min_word_len=7, max_word_len=10),
        _c("sum1", "chain_sum", weight=0.5, min_terms=3, max_terms=3, min_digits=1, max_digits=1),
    ),
}


def in_heldout_bucket(prompt: str) -> bool:
    """True iff this compact prompt is reserved for the held-out split (content hash)."""
    digest = hashlib.sha1(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_BUCKETS == 0


@cache
def _dataset(name: str, config: tuple, base_seed: int):
    # A virtual size large enough that indexing never runs off its end.
    return reasoning_gym.create_dataset(name, seed=base_seed, size=10**7, **dict(config))


def preset_components(preset: str) -> tuple[Component, ...]:
    """The mixture behind a preset (raises DepoError for an unknown name)."""
    if preset not in PRESET_COMPONENTS:
        raise DepoError(f"unknown task preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESET_COMPONENTS[preset]


def preset_tasks(preset: str, split: str, n: int, seed: int = 0) -> list[Task]:
    """`n` tasks of a preset's split, deterministic in (preset, split, n, seed).

    split "train": a procedurally generated pool (duplicates possible in small ranges);
    "heldout": prompts none of which can occur in any train pool, unique except where a
    narrow component has run out of fresh ones.
    """
    components = preset_components(preset)
    if split not in SPLITS:
        raise DepoError(f"unknown split {split!r}; choose 'train' or 'heldout'")
    if n < 0:
        raise DepoError(f"number of tasks must be >= 0, got {n}")
    if seed < 0:
        raise DepoError(f"seed must be >= 0, got {seed}")
    heldout = split == "heldout"
    mixer = random.Random(f"depo-gym:{preset}:{split}:{seed}")
    weights = [c.weight for c in components]
    cursors = [0] * len(components)
    seen: set[str] = set()
    tasks: list[Task] = []
    for i in range(n):
        k = mixer.choices(range(len(components)), weights=weights)[0]
        comp = components[k]
        # Stream of component k for (split, seed): its own base seed, SEED_STRIDE apart.
        base_seed = ((seed * 2 + heldout) * 64 + k) * SEED_STRIDE
        ds = _dataset(comp.dataset, tuple(sorted(comp.config.items())), base_seed)
        chosen = None
        for _ in range(MAX_DRAWS_PER_ITEM):
            item = ds[cursors[k]]
            cursors[k] += 1
            prompt = RENDERERS[comp.dataset](item["metadata"])
            if in_heldout_bucket(prompt) != heldout:
                continue
            if chosen is None:
                chosen = (item, prompt)  # fallback when a narrow component has no fresh prompt left
            if not (heldout and prompt in seen):
                chosen = (item, prompt)
                break
        if chosen is None:
            raise DepoError(f"preset {preset!r} component {comp.name!r} produced no {split} prompt")
        item, prompt = chosen
        seen.add(prompt)
        meta = {"task": comp.dataset, "component": comp.name, "preset": preset}
        tasks.append(Task(prompt_id=f"{preset}/{split}/{seed}/{i}", prompt=prompt, answer=str(item["answer"]),
                          verifier=exact_match, text=item["question"], meta=meta))
    return tasks
