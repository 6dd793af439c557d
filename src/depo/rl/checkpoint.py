"""Atomic checkpoints: a checkpoint directory is complete or absent, never half-written.

Layout: `RUN/checkpoints/step_000040/{policy/, trainer_state.json, trainer_state.safetensors}`. Everything is written into
`RUN/checkpoints/.tmp-step_000040-<pid>/` first and then renamed in one `os.rename`, which is
atomic on POSIX within a file system; a crash mid-write leaves only a `.tmp-*` directory that
the next save or resume deletes. `policy/` is a Hugging Face directory (`depo eval --model`
reads it); `trainer_state.*` holds the optimizer, every RNG state, the data position, the
selector's state (with its estimator) and the run's counters, stored without pickle
(`depo.state_io`), so resuming from someone else's checkpoint can run no code.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from depo.errors import DepoError
from depo.state_io import load_state as read_state
from depo.state_io import save_state

_STEP_DIR = re.compile(r"^step_(\d+)$")
STATE_NAME = "trainer_state"
STATE_FILE = f"{STATE_NAME}.json"
POLICY_DIR = "policy"


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def list_checkpoints(ckpt_root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a state file), oldest first."""
    found = []
    for child in ckpt_root.glob("step_*"):
        m = _STEP_DIR.match(child.name)
        if m and (child / STATE_FILE).is_file() and (child / POLICY_DIR).is_dir():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(ckpt_root: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint; a pickled one (older depo) is refused, never unpickled."""
    restore_replaced(ckpt_root)
    pickled = sorted(ckpt_root.glob(f"step_*/{STATE_NAME}.pt"))
    if pickled:
        raise DepoError(
            f"{pickled[-1].parent} holds a pickled {pickled[-1].name}, which depo does not load "
            "(unpickling can run arbitrary code); resume from a checkpoint written by this version"
        )
    found = list_checkpoints(ckpt_root)
    return found[-1] if found else None


def restore_replaced(ckpt_root: Path) -> None:
    """Undo a re-save of the same step killed between its two renames (`step_X` moved to
    `.old-step_X-<pid>`, the new copy not yet in place): the old copy is complete, so it goes
    back to `step_X` instead of being deleted with the partial leftovers."""
    for child in sorted(ckpt_root.glob(".old-*")):
        m = re.fullmatch(r"\.old-(step_\d+)-\d+", child.name)
        final = ckpt_root / m.group(1) if m else None
        if final is not None and not final.exists() and (child / STATE_FILE).is_file():
            os.rename(child, final)


def clean_partial(ckpt_root: Path) -> None:
    """Delete leftovers of interrupted saves (after restoring a replaced checkpoint)."""
    restore_replaced(ckpt_root)
    for child in [*ckpt_root.glob(".tmp-*"), *ckpt_root.glob(".old-*")]:
        shutil.rmtree(child, ignore_errors=True)


def save_checkpoint(ckpt_root: Path, step: int, model, tokenizer, state: dict[str, Any], keep: int = 0) -> Path:
    """Write checkpoint `step` atomically; keep only the newest `keep` (0 = all). Returns its path."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    clean_partial(ckpt_root)
    final = ckpt_root / checkpoint_name(step)
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    tmp.mkdir()
    model.save_pretrained(tmp / POLICY_DIR)
    tokenizer.save_pretrained(tmp / POLICY_DIR)
    _fsync_tree(tmp / POLICY_DIR)  # save_pretrained does not: after a power cut the rename could outlive the weights
    save_state(state, tmp, STATE_NAME)  # written and fsynced by depo.state_io
    if final.exists():  # the same step saved again (e.g. interrupted right after a save)
        old = ckpt_root / f".old-{final.name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(ckpt_root)
    if keep > 0:
        for _, path in list_checkpoints(ckpt_root)[:-keep]:
            shutil.rmtree(path, ignore_errors=True)
    return final


def load_state(path: Path) -> dict[str, Any]:
    """The trainer state of checkpoint directory `path` (data only: nothing in it is executed)."""
    return read_state(path, STATE_NAME)


def _fsync_tree(root: Path) -> None:
    """Flush every file below `root` to disk, then `root` itself."""
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # best effort: not every file system can sync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
