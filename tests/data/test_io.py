"""depo.data.io: formats, dotted columns, the errors a user sees, and the stable split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from depo.data.io import (
    chat_text,
    column,
    holdout_mask,
    pass_rate_column,
    prompt_ids,
    read_table,
    split_fraction,
    text_column,
)
from depo.errors import DepoError


def _verl_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt": [[{"role": "user", "content": f"What is {i}+1?"}] for i in range(4)],
            "reward_model": [{"ground_truth": str(i + 1), "style": "rule"} for i in range(4)],
            "extra_info": [{"index": 10 + i, "split": "train"} for i in range(4)],
        }
    )


def test_parquet_roundtrip_with_dotted_columns(tmp_path):
    path = tmp_path / "verl.parquet"
    _verl_frame().to_parquet(path)
    frame = read_table(path)
    assert list(column(frame, "reward_model.ground_truth")) == ["1", "2", "3", "4"]
    assert prompt_ids(frame) == ["10", "11", "12", "13"]  # extra_info.index found without being named
    assert text_column(frame, "prompt")[2] == "What is 2+1?"


def test_jsonl_and_json_array(tmp_path):
    rows = [{"problem": "a", "answer": "1", "idx": 5}, {"problem": "b", "answer": "2", "idx": 6}]
    (tmp_path / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "x.json").write_text(json.dumps(rows))
    (tmp_path / "by_id.json").write_text(json.dumps({"5": rows[0], "6": rows[1]}))
    for name in ("x.jsonl", "x.json", "by_id.json"):
        frame = read_table(tmp_path / name)
        assert list(frame["problem"]) == ["a", "b"]
        assert prompt_ids(frame) == ["5", "6"]
    many = pd.DataFrame({"problem": [f"p{i}" for i in range(12)], "idx": range(12)})
    many.to_json(tmp_path / "columns.json")  # pandas' default orient: column -> {row number: value}
    frame = read_table(tmp_path / "columns.json")
    assert list(frame["problem"]) == list(many["problem"]) and prompt_ids(frame) == [str(i) for i in range(12)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', "line 2 is not valid JSON"),
        ("bad.jsonl", b'{"a": "caf\xe9"}\n', "not valid UTF-8"),
        ("empty.jsonl", b"\n", "has no rows"),
        ("bad.parquet", b"not parquet at all", "cannot read parquet"),
        ("data.csv", b"a,b\n", "unsupported data file type"),
    ],
)
def test_unreadable_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DepoError, match=message):
        read_table(path)


def test_missing_file_and_missing_column_name_what_exists(tmp_path):
    with pytest.raises(DepoError, match="not found"):
        read_table(tmp_path / "nope.parquet")
    frame = _verl_frame()
    with pytest.raises(DepoError, match=r"columns found: prompt, reward_model\.\{ground_truth, style\}"):
        column(frame, "reward_model.answer")
    with pytest.raises(DepoError, match="'problem' not found"):
        column(frame, "problem")


def test_duplicate_ids_are_rejected():
    frame = pd.DataFrame({"idx": [1, 2, 1], "problem": ["a", "b", "c"]})
    with pytest.raises(DepoError, match="duplicate prompt id '1'.*rows 0 and 2"):
        prompt_ids(frame)
    assert prompt_ids(pd.DataFrame({"problem": ["a", "b"]})) == ["0", "1"]  # no id column: row numbers


def test_holdout_split_is_stable_seeded_and_near_the_fraction():
    ids = [f"p{i}" for i in range(4000)]
    mask = holdout_mask(ids, 0.2, seed=0)
    assert abs(mask.mean() - 0.2) < 0.03
    # order-independent: the same id lands on the same side when rows are shuffled
    shuffled = list(np.random.default_rng(1).permutation(ids))
    remask = dict(zip(shuffled, holdout_mask(shuffled, 0.2, seed=0)))
    assert all(remask[i] == m for i, m in zip(ids, mask))
    assert (holdout_mask(ids, 0.2, seed=1) != mask).any()
    assert split_fraction("p1", 0) == split_fraction("p1", 0)
    with pytest.raises(DepoError):
        holdout_mask(ids, 1.5)


def test_chat_text_reads_user_messages():
    chat = np.array([{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}], dtype=object)
    assert chat_text(chat) == "2+2?"
    assert chat_text("plain") == "plain"
    with pytest.raises(DepoError):
        chat_text(3)


def test_chat_text_joins_user_turns_and_keeps_only_the_text_parts_of_multimodal_content():
    chat = [
        {"role": "user", "content": [{"type": "image", "url": "x.png"}, {"type": "text", "text": "What is shown?"}]},
        {"role": "assistant", "content": "A cat."},
        {"content": "How many legs?"},  # no role: a user turn (TRL's conversational format allows it)
    ]
    assert chat_text(chat) == "What is shown?\n\nHow many legs?"


def test_chat_text_without_user_text_reads_every_message_and_refuses_a_chat_with_no_text():
    assert chat_text([{"role": "system", "content": "Solve 1+1."}, {"role": "user", "content": ""}]) == "Solve 1+1."
    for empty in ([], [{"role": "user", "content": ""}], ["not a message"]):
        with pytest.raises(DepoError, match="cannot read a prompt text"):
            chat_text(empty)


def test_pass_rate_column_accepts_rates_and_refuses_anything_else():
    frame = pd.DataFrame({"ok": [0.0, 0.5, 1.0], "high": [0.2, 1.5, 0.1], "text": ["a", "b", "c"], "nan": [0.1, None, 0.2]})
    assert list(pass_rate_column(frame, "ok")) == [0.0, 0.5, 1.0]
    for name in ("high", "text", "nan"):
        with pytest.raises(DepoError, match=f"column '{name}' of data must hold pass rates in \\[0, 1\\]"):
            pass_rate_column(frame, name)
