"""Encoder loading (any local HF encoder dir), pooling, truncation counting and layer freezing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from depo.errors import DepoError
from depo.estimator import EstimatorConfig, OnlineEstimator
from depo.estimator.encoder import TextEncoder, encoder_layers
from depo.types import GroupOutcome

torch.set_num_threads(1)


def test_any_local_encoder_dir_predicts_updates_and_reloads(tiny_bert_dir, tmp_path):
    est = OnlineEstimator(EstimatorConfig(encoder_path=str(tiny_bert_dir), max_length=16))
    assert est.encoder.hidden_size == 32
    texts = ["gcd 14, 7", "sort these words: pear apple fig", "how many r in strawberry"]
    p0 = est.predict(texts)
    assert p0.shape == (3,) and np.all(np.abs(p0 - 0.5) < 0.01)
    metrics = est.update([GroupOutcome(str(i), t, (1.0, 0.0, float(i % 2))) for i, t in enumerate(texts)])
    assert np.isfinite(metrics["estimator/loss"])
    est.save(tmp_path / "est")
    again = OnlineEstimator.load(tmp_path / "est")
    np.testing.assert_array_equal(again.predict(texts), est.predict(texts))


def test_cls_and_mean_pooling(tiny_bert_dir):
    cls_enc = TextEncoder(tiny_bert_dir, pooling="cls", max_length=16).eval()
    mean_enc = TextEncoder(tiny_bert_dir, pooling="mean", max_length=16).eval()
    texts = ["a b c d e f", "x"]
    batch = cls_enc.tokenize(texts)
    with torch.no_grad():
        hidden = cls_enc.model(**batch).last_hidden_state
        pooled_cls = cls_enc(**batch)
        pooled_mean = mean_enc(**batch)
    assert torch.allclose(pooled_cls, hidden[:, 0])
    # the short text is padded: its mean must ignore the padding positions
    n_short = int(batch["attention_mask"][1].sum())
    assert n_short < batch["input_ids"].shape[1]
    assert torch.allclose(pooled_mean[1], hidden[1, :n_short].mean(0), atol=1e-6)
    assert torch.allclose(pooled_mean[0], hidden[0].mean(0), atol=1e-6)


def test_truncation_is_counted_and_warned_once(tiny_bert_dir):
    enc = TextEncoder(tiny_bert_dir, max_length=8)
    long_text = " ".join(["word"] * 20)
    with pytest.warns(UserWarning, match="truncated"):
        batch = enc.tokenize([long_text, "short"])
    assert batch["input_ids"].shape[1] == 8
    assert enc.truncated_count == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.tokenize([long_text, long_text, "short"])
    assert enc.truncated_count == 3


def test_top_layers_only_train_the_top_of_the_stack(tiny_bert_dir):
    enc = TextEncoder(tiny_bert_dir)
    enc.set_trainable(freeze=False, top_layers=1)
    layers = encoder_layers(enc.model)
    assert all(p.requires_grad for p in layers[1].parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert not any(p.requires_grad for p in enc.model.embeddings.parameters())
    enc.train()  # dropout only where weights learn: frozen layers give deterministic features
    assert layers[1].training and not layers[0].training and not enc.model.embeddings.training
    enc.set_trainable(freeze=True, top_layers=None)
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(DepoError, match="train_top_layers"):
        enc.set_trainable(freeze=False, top_layers=3)


def test_bad_encoder_inputs_are_user_errors(tmp_path, tiny_bert_dir):
    with pytest.raises(DepoError, match="config.json"):
        TextEncoder(tmp_path)
    with pytest.raises(DepoError, match="pooling"):
        TextEncoder(tiny_bert_dir, pooling="max")
