"""DEPO in TRL with two processes (accelerate launch, gloo on CPU): every rank yields the same
prompts, gets its own shard of each generation batch, and ends with the same selector state."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("accelerate")
torch = pytest.importorskip("torch")

from tests.integrations.trl.trl_support import build_tiny_model  # noqa: E402

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path: Path, *extra: str) -> tuple[dict, dict]:
    model_dir = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "ranks"
    out.mkdir()
    accelerate = Path(sys.executable).with_name("accelerate")
    # `--multi_gpu` selects accelerate's torchrun launcher; with no GPU and use_cpu=True the
    # processes join a gloo group on CPU (`--cpu --num_processes 2` would need mpirun).
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        str(HERE / "trl_support.py"), str(model_dir), str(out), *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tuple(json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_agree_on_indices_and_selector_state(tmp_path) -> None:
    r0, r1 = _launch(tmp_path)

    assert r0["world"] == r1["world"] == 2
    assert r0["history"] == r1["history"] and len(r0["history"]) == 6  # 5 steps + 1 prefetched
    # each rank rolled out its half of every generation batch (2 prompts x 4 completions)
    for step, chunk in enumerate(r0["history"][:5]):
        assert r0["local_indices"][4 * step : 4 * step + 4] == [chunk[0]] * 4
        assert r1["local_indices"][4 * step : 4 * step + 4] == [chunk[1]] * 4
    # both selectors observed every group (rewards gathered across ranks), log-probs included
    rolled_out = [str(i) for chunk in r0["history"][:5] for i in chunk]
    assert r0["observed"] == r1["observed"] == rolled_out
    assert r0["logprob_groups"] == r1["logprob_groups"] == 10
    assert r0["fingerprint"] == r1["fingerprint"]
    assert r0["stream_fingerprint"] == r1["stream_fingerprint"]
    # rank 1 was given a wider keep window: it disagreed locally, yet yielded rank 0's prompts
    assert r0["disagreements"] == 0 and r1["disagreements"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_run_the_same_dynamic_sampling_rounds(tmp_path) -> None:
    r0, r1 = _launch(tmp_path, "dynamic")  # even prompt ids always zero-variance: rounds are added
    assert r0["global_step"] == r1["global_step"] == 5  # TRL's step accounting, unchanged
    assert r0["ds_rounds"] == r1["ds_rounds"] and sum(r0["ds_rounds"]) > 5  # same rounds on both ranks
    assert r0["history"] == r1["history"] and len(r0["history"]) > 6  # the extra rounds' chunks
    assert r0["observed"] == r1["observed"] and r0["fingerprint"] == r1["fingerprint"]
