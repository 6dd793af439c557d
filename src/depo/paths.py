"""Where depo keeps caches (tiny policies, embeddings) and the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

from depo.errors import DepoError


def cache_dir() -> Path:
    """`$DEPO_CACHE`, else `~/.cache/depo`. Created on first use."""
    path = Path(os.environ.get("DEPO_CACHE", Path.home() / ".cache" / "depo"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path | None:
    """`$DEPO_SHARED_DATA`, else `../shared/data` beside the project, when it exists."""
    env = os.environ.get("DEPO_SHARED_DATA")
    roots = (Path(__file__).resolve().parents[3], Path.cwd().parent)
    candidates = ([Path(env)] if env else []) + [root / "shared" / "data" for root in roots]
    return next((path for path in candidates if path.is_dir()), None)


def find_config(given: str | Path | None, default: str) -> Path:
    """`given` when set, else configs/`default` of the working directory or of this repository."""
    if given:
        return Path(given)
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        path = root / "configs" / default
        if path.is_file():
            return path
    raise DepoError(f"configs/{default} not found; run from the repository root or pass --config")
