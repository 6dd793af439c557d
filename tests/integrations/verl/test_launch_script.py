"""The 7B launch script composes against verl 0.9.1's real config schema (Hydra `--cfg job`, no training)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# "verl.protocol", not "verl": in a full run tests/integrations is on sys.path, where this
# folder is a namespace package named verl.
pytest.importorskip("verl.protocol")
yaml = pytest.importorskip("yaml")

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "verl" / "run_depo_qwen2.5_7b_dapo17k.sh"


def compose(tmp_path: Path, **env: str) -> dict:
    run_env = dict(os.environ, PYTHON=sys.executable, HF_HUB_OFFLINE="1", **env)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--cfg", "job"], env=run_env, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load(proc.stdout)


def test_launch_script_mirrors_reference_settings(tmp_path):
    cfg = compose(tmp_path, MODEL_PATH="/models/qwen", ENCODER_PATH="/models/distilbert")
    actor = cfg["actor_rollout_ref"]["actor"]
    assert cfg["data"]["train_batch_size"] == 128 and cfg["actor_rollout_ref"]["rollout"]["n"] == 8
    assert (actor["clip_ratio_low"], actor["clip_ratio_high"], actor["loss_agg_mode"]) == (0.2, 0.28, "token-mean")
    assert cfg["algorithm"]["filter_groups"]["enable"] is False
    assert cfg["reward"]["reward_kwargs"]["overlong_buffer_cfg"]["enable"] is True
    assert cfg["trainer"]["use_v1"] is False and cfg["trainer"]["nnodes"] == 2
    depo = cfg["depo"]
    assert depo["selector"] == "depo-paper" and depo["reward_key"] == "acc"
    assert depo["options"] == {"warmup_steps": 100, "lo": 0.15, "hi": 0.85}
    assert depo["estimator"]["config"]["encoder_path"] == "/models/distilbert"


def test_launch_script_with_our_selector_keeps_the_warm_up_and_drops_the_window(tmp_path):
    depo = compose(tmp_path, SELECTOR="depo")["depo"]
    assert depo["selector"] == "depo" and depo["options"] == {"warmup_steps": 100}


def test_launch_script_grpo_variant(tmp_path):
    cfg = compose(tmp_path, USE_DAPO="false", SELECTOR="uniform")
    assert cfg["actor_rollout_ref"]["actor"]["clip_ratio_high"] == 0.2
    assert cfg["reward"]["reward_kwargs"]["overlong_buffer_cfg"]["enable"] is False
    assert cfg["depo"]["selector"] == "uniform" and cfg["depo"]["options"] == {}


def test_documented_small_gpu_command_composes(tmp_path):
    """The first command docs/verl.md asks a GPU user to run (one node, few steps) composes."""
    doc = (SCRIPT.parents[2] / "docs" / "verl.md").read_text()
    block = doc[doc.index("MODEL_PATH=/models/Qwen2.5-0.5B-Instruct") :].split("\n\n")[0]
    overrides = [t for t in block.replace("\\\n", " ").split() if "=" in t and not t.split("=")[0].isupper()]
    run_env = dict(os.environ, PYTHON=sys.executable, NNODES="1", GPUS_PER_NODE="1")
    proc = subprocess.run(
        ["bash", str(SCRIPT), *overrides, "--cfg", "job"], env=run_env, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["trainer"]["total_training_steps"] == 5 and cfg["data"]["train_batch_size"] == 16
    assert cfg["reward"]["reward_kwargs"]["overlong_buffer_cfg"]["len"] == 512
