"""Encoder and saved-estimator paths that are not what they claim: one DepoError line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from depo.errors import DepoError
from depo.estimator import EstimatorConfig, OnlineEstimator
from depo.estimator.encoder import TextEncoder, default_encoder_path
from tests.policy.test_loading import NOT_MODELS, make_not_model


@pytest.fixture(scope="module")
def saved_estimator(tmp_path_factory) -> Path:
    """A small estimator (random 1-layer BERT with the MiniLM tokenizer) saved with `.save`."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.set_num_threads(1)
    enc = tmp_path_factory.mktemp("enc")
    tok = AutoTokenizer.from_pretrained(default_encoder_path())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=32)).save_pretrained(enc)
    tok.save_pretrained(enc)
    est = OnlineEstimator(EstimatorConfig(encoder_path=str(enc), max_length=16, width=16, feature_width=8))
    return est.save(tmp_path_factory.mktemp("est") / "saved")


def _one_line(call) -> str:
    with pytest.raises(DepoError) as info:
        call()
    assert "\n" not in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("name", sorted(NOT_MODELS))
def test_encoder_path_not_a_model(tmp_path: Path, name: str) -> None:
    path = make_not_model(tmp_path, name)
    _one_line(lambda: TextEncoder(path))
    _one_line(lambda: OnlineEstimator(EstimatorConfig(encoder_path=str(path))))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "estimator_config.json").write_text("{"), "cannot read"),
        (lambda d: (d / "estimator_config.json").write_text("[]"), "unknown format"),
        (lambda d: (d / "estimator_config.json").write_text(json.dumps({"format": "depo-estimator/1", "config": 3})), "'config' must be a mapping"),
        (lambda d: (d / "head.safetensors").unlink(), "cannot load the estimator weights"),
        (lambda d: (d / "head.safetensors").write_bytes(b"\x00" * 32), "cannot load the estimator weights"),
        (lambda d: (d / "train_state.pt").write_bytes(b"not a torch file"), "cannot load the estimator weights"),
        (lambda d: _rewrite_config(d, width="wide"), "estimator_config.json width: Input should be a valid integer"),
        (lambda d: _rewrite_config(d, width=32), "cannot load the estimator weights"),  # shapes no longer match
        (lambda d: _rewrite_config(d, bogus=1), "estimator_config.json: unknown key 'bogus'"),
    ],
)
def test_damaged_saved_estimator(saved_estimator: Path, tmp_path: Path, damage, message: str) -> None:
    target = _copy(saved_estimator, tmp_path / "copy")
    OnlineEstimator.load(target)  # intact copy loads
    damage(target)
    assert message in _one_line(lambda: OnlineEstimator.load(target))


def _rewrite_config(path: Path, **changes) -> None:
    file = path / "estimator_config.json"
    data = json.loads(file.read_text())
    data["config"].update(changes)
    file.write_text(json.dumps(data))
