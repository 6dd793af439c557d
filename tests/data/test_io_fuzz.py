"""Fuzzing the dataset readers: any file content gives a table or one `DepoError`, never a traceback.

Covers depo.data.io (read_table, column lookups, prompt ids, chat text) and the user-facing
loader built on it (depo.tasks.math.load_math_tasks) over random bytes, invalid UTF-8, random
JSON / JSONL / parquet tables with wrong columns, empty files and duplicate ids.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depo.data import io
from depo.errors import DepoError
from depo.tasks.math import load_math_tasks

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = (".jsonl", ".json", ".parquet")
NAMES = ["prompt", "problem", "question", "answer", "id", "prompt_id", "reward_model.ground_truth",
         "extra_info.index", "reward_model", "extra_info", "x.y.z", "", "."]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(NAMES[:10]) | st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
records = st.lists(st.dictionaries(st.sampled_from(NAMES[:10]) | st.text(max_size=6), json_values, max_size=4), max_size=6)


def _write(directory: Path, suffix: str, data: bytes) -> Path:
    path = directory / f"data{suffix}"
    path.write_bytes(data)
    return path


def _exercise(path: Path) -> None:
    """Everything a loader does with a file: each step returns or raises DepoError (one line)."""
    try:
        frame = io.read_table(path)
    except DepoError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    assert len(frame) > 0
    io.describe_columns(frame)
    for name in NAMES:
        io.has_column(frame, name)
        for call in (io.column, io.text_column):
            try:
                call(frame, name, source=path.name)
            except DepoError as exc:
                assert "\n" not in str(exc)
    for id_column in (None, "id", "extra_info.index"):
        try:
            ids = io.prompt_ids(frame, id_column, source=path.name)
        except DepoError as exc:
            assert "\n" not in str(exc)
        else:
            assert len(ids) == len(set(ids)) == len(frame)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_math_tasks(path)
    except DepoError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _exercise(_write(Path(tmp), suffix, data))


@FUZZ
@given(rows=records, suffix=st.sampled_from((".jsonl", ".json")), junk=st.sampled_from([b"", b"\xff\xfe", b"\n\n", b"{"]))
def test_random_json_tables(rows: list[dict], suffix: str, junk: bytes) -> None:
    if suffix == ".jsonl":
        body = "\n".join(json.dumps(r) for r in rows).encode()
    else:
        body = json.dumps(rows).encode()
    with tempfile.TemporaryDirectory() as tmp:
        _exercise(_write(Path(tmp), suffix, body + junk))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.dictionaries(
        st.sampled_from(NAMES[:10]) | st.text(min_size=1, max_size=6),
        st.sampled_from(["int", "float", "str", "none", "dict", "chat"]),
        min_size=1,
        max_size=4,
    ),
    n=st.integers(0, 4),
    dup=st.booleans(),
)
def test_random_parquet_tables(columns: dict[str, str], n: int, dup: bool) -> None:
    makers = {
        "int": lambda i: i % 2 if dup else i,
        "float": lambda i: float(i) / 3,
        "str": lambda i: f"s{i % 2 if dup else i}",
        "none": lambda i: None,
        "dict": lambda i: {"ground_truth": str(i), "index": i % 2 if dup else i},
        "chat": lambda i: [{"role": "user", "content": f"what is {i}?"}],
    }
    frame = pd.DataFrame({name: [makers[kind](i) for i in range(n)] for name, kind in columns.items()})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        try:
            frame.to_parquet(path)
        except Exception:  # pyarrow cannot store this frame at all: nothing to read back
            return
        _exercise(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", "has no rows"),
        ("blank.jsonl", b"\n \n\t\n", "has no rows"),
        ("empty.json", b"[]", "has no rows"),
        ("empty_obj.json", b"{}", "has no rows"),
        ("empty.parquet", b"", "cannot read parquet"),
        ("latin1.jsonl", '{"problem": "café"}'.encode("latin-1"), "not valid UTF-8"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "not valid JSON for a table: nested too deeply"),
        ("deep.jsonl", b'{"a": 1}\n' + b"[" * 100_000 + b"]" * 100_000, "line 2 is not valid JSON for a table: nested too deeply"),
        ("scalar.json", b"3", "JSON array of objects"),
        ("strings.jsonl", b'"a"\n"b"\n', "line 1 is not a JSON object"),
        ("nul.jsonl", b'{"a": 1}\n\x00\n', "line 2 is not valid JSON"),
    ],
)
def test_explicit_bad_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DepoError, match=message):
        io.read_table(path)


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").mkdir()
    with pytest.raises(DepoError, match="data path is not a file: "):
        io.read_table(tmp_path / "rows.jsonl")


def test_valid_jsonl_with_unicode_line_separators_and_bom(tmp_path: Path) -> None:
    """U+2028 / U+0085 are legal inside JSON strings and must not split a JSONL record; a UTF-8
    byte-order mark (Windows editors write one) is not part of the data."""
    rows = [{"problem": "a\u2028b\x85c\x0cd", "answer": "1", "id": 0}, {"problem": "e", "answer": "2", "id": 1}]
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    path = tmp_path / "sep.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    frame = io.read_table(path)
    assert frame["problem"].tolist() == ["a\u2028b\x85c\x0cd", "e"]
    path2 = tmp_path / "bom.json"
    path2.write_bytes(b"\xef\xbb\xbf" + json.dumps(rows).encode())
    assert len(io.read_table(path2)) == 2


def test_duplicate_ids_in_each_format(tmp_path: Path) -> None:
    rows = [{"problem": "p", "answer": "1", "id": 7}, {"problem": "q", "answer": "2", "id": 7}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for suffix in SUFFIXES:
        with pytest.raises(DepoError, match="duplicate prompt id '7'"):
            load_math_tasks(tmp_path / f"d{suffix}")


def test_wrong_columns_name_what_was_found(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"text": "p", "gold": "1"}\n')
    with pytest.raises(DepoError, match="columns found: text, gold"):
        load_math_tasks(path)
