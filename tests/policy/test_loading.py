"""Loading a policy: a path that is not a causal LM is one DepoError line (never a transformers
traceback); chat models read a prompt through their chat template; every EOS ends a response."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depo.errors import DepoError
from depo.policy import load_policy
from depo.policy.loading import encode_prompts, eos_token_ids

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


def test_a_chat_model_reads_the_prompt_as_one_user_turn_and_a_plain_one_reads_it_raw(random_policy_dir, tmp_path):
    model, tokenizer = load_policy(random_policy_dir)
    raw = encode_prompts(tokenizer, ["ab", "c"])
    assert [tokenizer.decode(ids) for ids in raw] == ["ab<sep>", "c<sep>"]  # the tiny policy's separator
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}:{{ m['content'] }}]{% endfor %}" \
                              "{% if add_generation_prompt %}>{% endif %}"
    model.save_pretrained(tmp_path / "chat")
    tokenizer.save_pretrained(tmp_path / "chat")
    _, chat = load_policy(tmp_path / "chat")
    assert [chat.decode(ids) for ids in encode_prompts(chat, ["ab"])] == ["[user:ab]>"]  # no <sep> appended


def test_every_eos_ends_a_response_and_a_tokenizer_without_one_is_refused(random_policy_dir):
    model, tokenizer = load_policy(random_policy_dir)
    assert tokenizer.pad_token == "<pad>"
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 7]
    assert eos_token_ids(model, tokenizer) == {tokenizer.eos_token_id, 7}
    model.generation_config.eos_token_id = None
    tokenizer.eos_token = None
    with pytest.raises(DepoError, match="no EOS token"):
        eos_token_ids(model, tokenizer)
