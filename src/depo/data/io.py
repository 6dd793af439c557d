"""Read prompt tables (parquet, JSONL, JSON arrays) with errors a user can act on.

Every dataset the project reads (MATH success rates, verl-layout training sets, evaluation
benchmarks) goes through `read_table`, so a missing file, broken UTF-8 or a wrong column name
is one clear `DepoError`, never a pandas traceback. Nested verl fields are reached with dotted
names (`reward_model.ground_truth`, `extra_info.index`), and held-out splits hash the prompt id
with a seed so the same prompt lands on the same side on every machine and every run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from depo.errors import DepoError

SUPPORTED_SUFFIXES = (".parquet", ".jsonl", ".json")


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a parquet, JSONL (one object per line) or JSON (array of objects) file.

    Raises DepoError for a missing or unreadable file, invalid UTF-8, malformed JSON (with the
    line number), an unsupported suffix, or a file with no rows.
    """
    path = Path(path)
    if not path.exists():
        raise DepoError(f"data file not found: {path}")
    if not path.is_file():
        raise DepoError(f"data path is not a file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DepoError(f"unsupported data file type {suffix!r} for {path} (use .parquet, .jsonl or .json)")
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for corrupt files
            raise DepoError(f"cannot read parquet file {path}: {type(exc).__name__}: {exc}") from None
    else:
        frame = pd.DataFrame(_read_json_records(path, lines=suffix == ".jsonl"))
    if len(frame) == 0:
        raise DepoError(f"data file {path} has no rows")
    return frame


def _read_json_records(path: Path, *, lines: bool) -> list[dict]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DepoError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark (Windows editors) is not data
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DepoError(f"{path} is not valid UTF-8 (line {line}, byte {exc.start})") from None
    if not lines:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DepoError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
        except RecursionError:
            raise DepoError(f"{path} is not valid JSON for a table: nested too deeply") from None
        if isinstance(data, dict) and _by_column(data):  # pandas' DataFrame.to_json(): column -> {row: value}
            rows = sorted({row for values in data.values() for row in values}, key=int)
            data = [{name: values.get(row) for name, values in data.items()} for row in rows]
        elif isinstance(data, dict):  # {"id": {...}, ...} or {"rows": [...]}
            data = next((v for v in data.values() if isinstance(v, list)), None) or list(data.values())
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DepoError(f"{path} must hold a JSON array of objects")
        return data
    records = []
    # Records end at "\n" only: str.splitlines would also split at U+2028, U+0085 or form
    # feeds, which JSON allows raw inside strings (a trailing "\r" is JSON whitespace).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DepoError(f"{path} line {number} is not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise DepoError(f"{path} line {number} is not valid JSON for a table: nested too deeply") from None
        if not isinstance(record, dict):
            raise DepoError(f"{path} line {number} is not a JSON object")
        records.append(record)
    return records


def _by_column(data: dict[str, Any]) -> bool:
    """A JSON object of columns (pandas' default orient): named keys, each a {row number: value} object."""
    return bool(data) and not all(k.isdigit() for k in data) and all(
        isinstance(v, dict) and v and all(k.isdigit() for k in v) for v in data.values())


def _lookup(value: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return _MISSING
    return value


_MISSING = object()


def has_column(frame: pd.DataFrame, name: str) -> bool:
    """True when `name` is a column, or a dotted path into a column of dicts present in the first row."""
    if name in frame.columns:
        return True
    head, _, rest = name.partition(".")
    if not rest or head not in frame.columns:
        return False
    return _lookup(frame[head].iloc[0], rest.split(".")) is not _MISSING


def column(frame: pd.DataFrame, name: str, *, source: str | Path = "data") -> pd.Series:
    """The column `name`; a dotted name reaches into nested dicts (verl: `extra_info.index`).

    Raises DepoError naming the columns found when `name` is absent or missing in some row.
    """
    if name in frame.columns:
        return frame[name]
    head, _, rest = name.partition(".")
    if rest and head in frame.columns:
        keys = rest.split(".")
        values = [_lookup(v, keys) for v in frame[head]]
        missing = [i for i, v in enumerate(values) if v is _MISSING]
        if not missing:
            return pd.Series(values, index=frame.index, name=name)
        if len(missing) < len(values):
            raise DepoError(f"column {name!r} is missing in row {missing[0]} of {source}")
    raise DepoError(f"column {name!r} not found in {source}; columns found: {describe_columns(frame)}")


def pass_rate_column(frame: pd.DataFrame, name: str, *, source: str | Path = "data") -> np.ndarray:
    """The column `name` as float pass rates; a DepoError unless every value is a number in [0, 1]."""
    try:
        y = np.asarray(column(frame, name, source=source), dtype=np.float64)
    except (TypeError, ValueError):
        y = np.array([np.nan])
    if y.size == 0 or not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 1:
        raise DepoError(f"column {name!r} of {source} must hold pass rates in [0, 1]")
    return y


def describe_columns(frame: pd.DataFrame) -> str:
    """Column names, with one level of nested keys for dict columns (`reward_model.{ground_truth, style}`)."""
    parts = []
    for name in frame.columns:
        first = frame[name].iloc[0] if len(frame) else None
        keys = f".{{{', '.join(map(_printable, first))}}}" if isinstance(first, dict) else ""
        parts.append(_printable(name) + keys)
    return ", ".join(parts)


def _printable(name: object) -> str:
    """A column name as it reads in a one-line error: repr() when it holds control characters."""
    text = str(name)
    return text if text.isprintable() else repr(text)


def first_present(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    """The first of `names` that `has_column` finds, else None (for layouts with alternative names)."""
    return next((n for n in names if has_column(frame, n)), None)


ID_COLUMNS = ("prompt_id", "extra_info.index", "idx", "id", "unique_id", "index")
"""Where a prompt id is looked for when none is named, in this order."""


def prompt_ids(frame: pd.DataFrame, id_column: str | None = None, *, source: str | Path = "data") -> list[str]:
    """Stable string prompt ids: from `id_column`, the first of ID_COLUMNS present, else the row number.

    Raises DepoError on duplicate ids (a duplicate would leak between train and test splits).
    """
    name = id_column or first_present(frame, ID_COLUMNS)
    ids = [str(i) for i in range(len(frame))] if name is None else [str(v) for v in column(frame, name, source=source)]
    seen: dict[str, int] = {}
    for row, value in enumerate(ids):
        if value in seen:
            raise DepoError(f"duplicate prompt id {value!r} in {source} "
                            f"(rows {seen[value]} and {row} of column {name!r})")
        seen[value] = row
    return ids


def split_fraction(prompt_id: str, seed: int) -> float:
    """A number in [0, 1) from a seeded BLAKE2 hash of the id: same id and seed, same number, everywhere."""
    digest = hashlib.blake2b(f"{seed}:{prompt_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def holdout_mask(ids: Sequence[str], fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out rows: id's hash fraction < `fraction`. Stable under row order and file edits."""
    if not 0.0 < fraction < 1.0:
        raise DepoError(f"holdout fraction must be in (0, 1), got {fraction}")
    mask = np.array([split_fraction(i, seed) < fraction for i in ids], dtype=bool)
    if mask.all() or not mask.any():
        raise DepoError(f"holdout fraction {fraction} leaves an empty train or test split of {len(ids)} rows")
    return mask


def chat_text(value: Any) -> str:
    """The text the estimator reads for a prompt: a string as it is, or the user turns of a chat.

    A chat is a list (or numpy array, as parquet returns it) of {"role", "content"} messages, the
    content a string or a list of parts of which the {"type": "text"} ones count. The user turns
    (a message without a role counts as one) are joined by blank lines; a chat without user text
    gives the text of every message.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        messages = [m for m in value if isinstance(m, dict)]
        user = [_message_text(m) for m in messages if m.get("role", "user") == "user"]
        texts = [t for t in user if t] or [t for t in map(_message_text, messages) if t]
        if texts:
            return "\n\n".join(texts)
    raise DepoError(f"cannot read a prompt text from a value of type {type(value).__name__}")


def _message_text(message: dict) -> str:
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple, np.ndarray)):  # multimodal: the text parts
        return "\n\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict) and c.get("type") == "text")
    return str(content)


def text_column(frame: pd.DataFrame, name: str, *, source: str | Path = "data") -> list[str]:
    """A column of prompt texts; chat lists (verl `prompt`) become their user message."""
    return [chat_text(v) for v in column(frame, name, source=source)]
