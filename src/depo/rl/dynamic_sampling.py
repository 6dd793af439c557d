"""DAPO dynamic sampling: keep generating until the batch is full of informative groups.

DAPO (Yu et al. 2025, arXiv 2503.14476, section 3.2) over-samples and drops groups whose
rewards are all equal (their GRPO advantages are all zero), generating batch after batch until
`batch_size` informative groups are collected. The reference recipe raises "Generated too
many" when `max_num_gen_batches` is reached (github.com/BytedTsinghua-SIA/DAPO/issues/22); here the loop instead trains on
the informative groups it has and logs a warning, so a too-easy or too-hard data set slows a
run down but never kills it. Zero variance means std <= 1e-6, so graded rewards work too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)


class _HasInformative(Protocol):
    @property
    def informative(self) -> bool: ...


G = TypeVar("G", bound=_HasInformative)


def collect_informative(
    generate: Callable[[], list[G]], batch_size: int, max_num_gen_batches: int
) -> tuple[list[G], list[G], dict[str, float]]:
    """Call `generate()` (one select -> rollout -> reward pass) until `batch_size` informative
    groups are in hand or `max_num_gen_batches` passes were made.

    Returns (informative groups, at most batch_size, in generation order; every generated group,
    for counting and for the selector's observe; stats). Stats: `dynamic/gen_batches`,
    `dynamic/generated` (groups), `dynamic/informative`, `dynamic/kept` (trained on),
    `dynamic/short` (1.0 when the batch could not be filled).
    """
    if batch_size < 1 or max_num_gen_batches < 1:
        raise ValueError("batch_size and max_num_gen_batches must be >= 1")
    kept: list[G] = []
    generated: list[G] = []
    batches = 0
    while len(kept) < batch_size and batches < max_num_gen_batches:
        groups = generate()
        batches += 1
        generated.extend(groups)
        kept.extend(g for g in groups if g.informative)
    informative = len(kept)
    kept = kept[:batch_size]
    short = len(kept) < batch_size
    if short:
        log.warning("dynamic sampling: %d of %d informative groups after max_num_gen_batches=%d; "
                    "training on what there is", len(kept), batch_size, max_num_gen_batches)
    stats = {
        "dynamic/gen_batches": float(batches),
        "dynamic/generated": float(len(generated)),
        "dynamic/informative": float(informative),
        "dynamic/kept": float(len(kept)),
        "dynamic/short": float(short),
    }
    return kept, generated, stats
