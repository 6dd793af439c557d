"""A run directory: claimed once, refused with one line when its path cannot hold a run."""

from __future__ import annotations

import pytest

from depo.errors import DepoError
from depo.rl.config import TrainConfig
from depo.rl.run_dir import RunDirectory


def test_claim_writes_the_config_and_its_folders(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.claim(TrainConfig.build({"max_steps": 3}))
    assert run.config_file.is_file() and run.checkpoints.is_dir() and run.plots.is_dir()
    assert "max_steps: 3" in run.config_file.read_text()


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_an_output_dir_that_is_a_file_is_a_one_line_error(tmp_path, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    path = blocker if where == "file" else blocker / "run"
    with pytest.raises(DepoError, match="not a directory|cannot create") as err:
        RunDirectory(path).claim(TrainConfig.build({}))
    assert "\n" not in str(err.value)
    assert blocker.read_text() == "not a directory"  # nothing lost
