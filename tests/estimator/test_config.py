"""EstimatorConfig: typed settings, refused combinations, the torch device."""

from __future__ import annotations

import pytest
import torch

from depo.errors import DepoError
from depo.estimator import EstimatorConfig, OnlineEstimator
from depo.estimator.config import resolve_device


def test_bad_settings_are_one_line_errors():
    with pytest.raises(DepoError, match="not both"):
        EstimatorConfig.build({"freeze_encoder": True, "train_top_layers": 1})
    with pytest.raises(DepoError, match="unknown key 'learning_rate'; valid keys: .*, lr, "):
        EstimatorConfig.build({"lr": 1e-3, "learning_rate": 1e-3})


def test_the_device_is_a_torch_device_that_exists():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DepoError, match="'gpu0' is not a torch device"):
        OnlineEstimator(EstimatorConfig(freeze_encoder=True, device="gpu0"))
    if not torch.cuda.is_available():
        with pytest.raises(DepoError, match="'cuda:1' requested but CUDA is not available"):
            OnlineEstimator(EstimatorConfig(freeze_encoder=True, device="cuda:1"))
