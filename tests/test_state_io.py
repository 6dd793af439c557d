"""Checkpoint state without pickle (depo.state_io): exact round trips, and damaged files as one-line errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from depo.errors import DepoError
from depo.state_io import load_state, save_state


def test_round_trip_of_everything_a_trainer_checkpoints(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {
        "optimizer": opt.state_dict(),  # int keys, tuples (betas), 0-dim step tensors
        "python": random.getstate(),  # a tuple of 625 ints
        "numpy": np.random.get_state(),  # a tuple holding a uint32 array
        "torch": torch.get_rng_state(),
        "bit_generator": np.random.default_rng(5).bit_generator.state,  # 128-bit ints
        "floats": [float("nan"), float("inf"), 0.1],
        "nested": {"__tensor__": "looks like a marker", 1: (2, [3])},
    }
    save_state(state, tmp_path, "s")
    back = load_state(tmp_path, "s")
    fresh = torch.optim.AdamW(model.parameters())
    fresh.load_state_dict(back["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["python"] == state["python"]
    np.testing.assert_array_equal(back["numpy"][1], state["numpy"][1])
    assert back["numpy"][1].dtype == np.uint32
    assert torch.equal(back["torch"], state["torch"])
    assert back["bit_generator"] == state["bit_generator"]
    assert np.isnan(back["floats"][0]) and back["floats"][1:] == [float("inf"), 0.1]
    assert back["nested"] == {"__tensor__": "looks like a marker", 1: (2, [3])}


def test_damaged_or_missing_state_is_one_line(tmp_path):
    with pytest.raises(DepoError, match="holds no depo state"):
        load_state(tmp_path, "s")
    save_state({"x": torch.ones(2)}, tmp_path, "s")
    (tmp_path / "s.json").write_text('{"x": {"__tensor__": "7"}}')
    with pytest.raises(DepoError, match=r"^cannot read the state in .*: KeyError: '7'$"):
        load_state(tmp_path, "s")
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(DepoError, match="JSONDecodeError"):
        load_state(tmp_path, "s")


def test_objects_that_are_not_data_are_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="cannot store a object"):
        save_state({"x": object()}, tmp_path, "s")
