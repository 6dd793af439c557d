"""Shared builders for the verl integration tests (imported only after verl is importable)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from depo.types import Candidate, Decisions, GroupOutcome

CONFIG_DIR = Path(__file__).resolve().parents[3] / "src" / "depo" / "integrations" / "verl" / "config"


def write_parquet(path: Path, n: int, *, with_index: bool = True) -> Path:
    """A verl-layout RL parquet: chat prompt, reward_model.ground_truth, extra_info.index."""
    rows = []
    for i in range(n):
        extra = {"split": "train", "index": i} if with_index else {"split": "train"}
        rows.append(
            {
                "data_source": "synthetic",
                "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(2 * i)},
                "extra_info": extra,
            }
        )
    pd.DataFrame(rows).to_parquet(path)
    return path


class Scripted:
    """A selector that rejects prompts whose id is in `reject`, and records what it observed."""

    def __init__(self, reject: set[str] = frozenset()) -> None:
        self.reject = set(reject)
        self.observed: list[list[GroupOutcome]] = []
        self.decided = 0

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        keep = [c.prompt_id not in self.reject for c in batch]
        self.decided += len(batch)
        return Decisions(keep=keep, explored=[False] * len(batch), priority=np.zeros(len(batch)))


    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        self.observed.append(list(outcomes))
        return {"scripted_groups": float(len(outcomes))}

    def state_dict(self) -> dict:
        return {"reject": sorted(self.reject), "decided": self.decided, "observed": len(self.observed)}

    def load_state_dict(self, state: dict) -> None:
        self.reject = set(state["reject"])
        self.decided = state["decided"]


def fake_step(batch_dict: dict, n: int, reward_of, logp_of, *, seed: int = 0, acc_of=None, resp_len: int = 6):
    """What verl's fit() has built when it calls _update_actor: repeated rows with uid, scores,
    old log-probs and response mask, shuffled the way balance_batch reorders them.

    reward_of(pid, j) / logp_of(pid, j): reward and per-token log-prob of response j of prompt pid.
    Response j has j % resp_len + 1 valid tokens; the score sits on the last valid token.
    """
    import uuid

    from verl import DataProto

    from depo.integrations.verl.prompts import ID_KEY

    batch = DataProto.from_single_dict(batch_dict)
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    batch = batch.repeat(repeat_times=n, interleave=True)
    rows = len(batch)
    mask = torch.zeros(rows, resp_len)
    scores = torch.zeros(rows, resp_len)
    logp = torch.zeros(rows, resp_len)
    acc = []
    for r in range(rows):
        pid = batch.non_tensor_batch["extra_info"][r][ID_KEY]
        j = r % n
        length = j % resp_len + 1
        mask[r, :length] = 1
        scores[r, length - 1] = reward_of(pid, j)
        logp[r, :length] = logp_of(pid, j)
        logp[r, length:] = 99.0  # padding garbage the mask must hide
        if acc_of is not None:
            acc.append(acc_of(pid, j))
    batch.batch["response_mask"] = mask
    batch.batch["token_level_scores"] = scores
    batch.batch["token_level_rewards"] = scores
    batch.batch["old_log_probs"] = logp
    if acc_of is not None:
        batch.non_tensor_batch["acc"] = np.array(acc)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(rows))
    batch.reorder(perm)
    return batch


def _flat(state, prefix=""):
    out = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out.update(_flat(v, f"{prefix}/{k}"))
    elif isinstance(state, list | tuple):
        for i, v in enumerate(state):
            out.update(_flat(v, f"{prefix}/{i}"))
    else:
        out[prefix] = state
    return out


def assert_same_state(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], torch.Tensor):
            assert torch.equal(fa[k], fb[k]), k
        elif isinstance(fa[k], np.ndarray):
            assert np.array_equal(fa[k], fb[k]), k
        else:
            assert fa[k] == fb[k], k
