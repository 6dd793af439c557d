"""Stable prompt ids and estimator texts for the rows of a verl RL dataset.

verl's parquet layout (`verl.utils.dataset.RLHFDataset`) stores the prompt as a list of chat
messages under `data.prompt_key` and a free-form `extra_info` dict per row. The estimator reads
the text of the user turns; the selector keys its memory by a stable id: `extra_info.index`
when every row has a distinct one, else a 128-bit hash of the text (stable across
runs and workers). Both are computed once per dataset from its columns, so scanning a
rejected candidate never tokenizes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from depo.data.io import chat_text
from depo.types import Candidate

ID_KEY = "depo_prompt_id"
"""Key added to each selected row's `extra_info`: verl keeps `extra_info` in the batch through
generation and reward, so the trainer can map every response (via its `uid`) back to the prompt."""


def text_hash(text: str) -> str:
    """128-bit blake2b of the text: stable across processes and runs (unlike Python's hash())."""
    return "h:" + hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def prompt_ids(extra_infos: Sequence[Any], texts: Sequence[str]) -> list[str]:
    """Per-row ids: `extra_info["index"]` if every row has one and they are distinct, else text hashes.

    Indices are only trusted when unique: verl defaults a missing index to 0, and two parquet
    files concatenated may both count from 0.
    """
    indices = [e.get("index") if isinstance(e, dict) else None for e in extra_infos]
    if indices and all(i is not None for i in indices):
        ids = [f"i:{i}" for i in indices]
        if len(set(ids)) == len(ids):
            return ids
    return [text_hash(t) for t in texts]


class PromptTable:
    """Ids and texts of every row of a dataset, computed once; `candidate(i)` for the refill stream."""

    def __init__(self, texts: Sequence[str], ids: Sequence[str]) -> None:
        if len(texts) != len(ids):
            raise ValueError("PromptTable: texts and ids must have the same length")
        self.texts = list(texts)
        self.ids = list(ids)
        self.text_of = dict(zip(self.ids, self.texts))

    def __len__(self) -> int:
        return len(self.ids)

    def candidate(self, index: int) -> Candidate:
        return Candidate(prompt_id=self.ids[index], text=self.texts[index])

    @classmethod
    def from_dataset(cls, dataset: Any, prompt_key: str = "prompt") -> PromptTable:
        """From a verl `RLHFDataset` (columns of its `dataframe`), else row by row via `dataset[i]`."""
        frame = getattr(dataset, "dataframe", None)
        if frame is not None and prompt_key in getattr(frame, "column_names", ()):
            prompts = frame[prompt_key]
            extra = frame["extra_info"] if "extra_info" in frame.column_names else [None] * len(prompts)
        else:
            rows = [dataset[i] for i in range(len(dataset))]
            prompts = [r.get("raw_prompt", r.get(prompt_key)) for r in rows]
            extra = [r.get("extra_info") for r in rows]
        texts = [chat_text(p) for p in prompts]
        return cls(texts, prompt_ids(extra, texts))
