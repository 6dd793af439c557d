"""A policy path that is not a causal LM is one DepoError line (never a transformers traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depo.errors import DepoError
from depo.policy import load_policy

QWEN = {"model_type": "qwen2", "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
NOT_MODELS = {  # name -> files; each directory looks a bit more like a model than the last
    "missing": None,
    "empty": {},
    "config_not_json": {"config.json": b"\xff\x00 not json"},
    "config_a_list": {"config.json": b"[1, 2]"},
    "config_empty": {"config.json": b"{}"},
    "unknown_model_type": {"config.json": json.dumps({"model_type": "no-such-model"}).encode()},
    "no_weights": {"config.json": json.dumps(QWEN).encode()},
    "corrupt_weights": {"config.json": json.dumps(QWEN).encode(), "model.safetensors": b"\x00" * 64},
}


def make_not_model(root: Path, name: str) -> Path:
    path = root / name
    files = NOT_MODELS[name]
    if files is not None:
        path.mkdir()
        for file, content in files.items():
            (path / file).write_bytes(content)
    return path


@pytest.mark.parametrize("name", sorted(NOT_MODELS))
def test_not_a_model_is_one_line_depo_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(DepoError) as info:
        load_policy(make_not_model(tmp_path, name))
    assert "\n" not in str(info.value) and str(tmp_path / name) in str(info.value)


def test_cli_eval_on_a_corrupt_model_exits_2(tmp_path: Path, capsys) -> None:
    from depo.cli import main

    assert main(["eval", "--model", str(make_not_model(tmp_path, "corrupt_weights")), "--n", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("depo: error: cannot load policy") and "\n" not in err
