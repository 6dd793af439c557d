"""Dynamic sampling for TRL's `GRPOTrainer`, fed by DEPO's selection (docs/trl.md, "Dynamic sampling").

The rounds run in `DEPOMixin._generate_and_score_completions`; this module holds their row
bookkeeping: which groups of a round are informative on which process, and merging the kept
rows of several rounds' outputs into one output with a common width (prompts left-padded,
completions right-padded, as TRL pads them).
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
    pairs = sorted((not ok, r, g) for r, flags in enumerate(rounds) for g, ok in enumerate(flags))
    return [(r, g) for _, r, g in pairs[:need]]


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
        fillers = [p.new_full((width - p.shape[0], *p.shape[1:]), pad) for p in parts]
        pairs = zip(fillers, parts) if key in LEFT_PADDED else zip(parts, fillers)
        merged[key] = torch.stack([torch.cat(pair) for pair in pairs])
    return merged
