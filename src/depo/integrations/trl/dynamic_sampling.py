"""Dynamic sampling for TRL's `GRPOTrainer`, fed by DEPO's selection (docs/method.md section 5).

TRL has no dynamic sampling (trl issues 3708, 3973, 4764; the maintainers point at buffering
completions). Here a generation batch whose groups are not all informative is topped up by
more generation rounds *inside* one `_generate_and_score_completions` call: each round draws
one more generation batch from the selection feed (DEPO-selected prompts), TRL generates and
scores it as usual, and of all rounds' groups each process keeps its first informative ones
(reward std > 0) until it has as many groups as TRL gave it. TRL's step accounting does not
change: every process returns exactly the rows it was given, so `steps_per_generation`,
`gradient_accumulation_steps` and the optimizer steps are TRL's own.

Every rank takes the same decisions: whether another round is needed is computed from the
rewards TRL already gathered across processes (each rank knows every rank's groups), so all
ranks run the same number of rounds, and the collectives inside generation stay matched.
After `max_rounds` rounds a process that is still short fills up with its first zero-variance
groups (no error, unlike DAPO's "Generated too many"). Every round's groups reach the selector.

This module holds the row bookkeeping: which groups of a round are informative on which
process, and merging the kept rows of several rounds' outputs into one output with a common
width (prompts left-padded, completions right-padded, as TRL pads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from depo.errors import DepoError
from depo.zero_variance import is_zero_variance

LEFT_PADDED = ("prompt_ids", "prompt_mask")
RIGHT_PADDED = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                "sampling_per_token_logps", "importance_sampling_ratio", "tool_mask")
PER_ROW = ("advantages",)
RECOMPUTED = ("num_items_in_batch",)


def informative_groups(rewards: Sequence[float], group_size: int, processes: int) -> list[list[bool]]:
    """Per process, per local group: does the group carry a gradient (not zero-variance among its
    scorable completions, as TRL's nan-aware advantage sees it)?

    `rewards` are one round's completions gathered across processes, in TRL's order (process p's
    rows are the p-th contiguous slice; `group_size` consecutive rows per prompt)."""
    r = np.asarray(rewards, dtype=float)
    if len(r) % (group_size * processes):
        raise DepoError(f"{len(r)} completions do not split into whole groups of {group_size} on {processes} process(es)")
    mixed = np.array([not is_zero_variance(g[~np.isnan(g)]) for g in r.reshape(-1, group_size)])
    return [row.tolist() for row in mixed.reshape(processes, -1)]


def choose_groups(rounds: Sequence[list[bool]], need: int) -> list[tuple[int, int]]:
    """(round, local group) pairs this process trains on: its first `need` informative groups over
    the rounds, then its first zero-variance ones when the rounds did not find enough."""
    chosen = [(r, g) for r, flags in enumerate(rounds) for g, ok in enumerate(flags) if ok][:need]
    if len(chosen) < need:
        rest = [(r, g) for r, flags in enumerate(rounds) for g, ok in enumerate(flags) if not ok]
        chosen += rest[: need - len(chosen)]
    return chosen


def merge_rows(outputs: Sequence[dict[str, Any]], rows: Sequence[tuple[int, int]], pad_token_id: int) -> dict[str, Any]:
    """One output of the chosen (round, row) pairs, in that order, padded to a common width."""
    keys = set(outputs[0])
    unknown = sorted(keys - set(LEFT_PADDED + RIGHT_PADDED + PER_ROW + RECOMPUTED))
    if unknown:
        raise DepoError(f"dynamic sampling handles text-only GRPO batches; cannot merge {', '.join(unknown)}")
    merged: dict[str, Any] = {}
    for key in keys - set(RECOMPUTED):
        parts = [outputs[r][key][i] for r, i in rows]
        if key in PER_ROW or parts[0].dim() == 0:
            merged[key] = torch.stack(parts)
            continue
        width = max(p.shape[0] for p in parts)
        pad = pad_token_id if key.endswith("_ids") else 0
        padded = []
        for p in parts:
            filler = p.new_full((width - p.shape[0], *p.shape[1:]), pad)
            padded.append(torch.cat([filler, p] if key in LEFT_PADDED else [p, filler]))
        merged[key] = torch.stack(padded)
    return merged
