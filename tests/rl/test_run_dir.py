"""A run directory: claimed once, refused with one line when its path cannot hold a run."""

from __future__ import annotations

import pytest
import yaml

from depo.errors import DepoError
from depo.rl.config import TrainConfig
from depo.rl.run_dir import RunDirectory


def test_claim_writes_the_config_and_its_folders(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.claim(TrainConfig.build({"max_steps": 3}))
    assert run.config_file.is_file() and run.checkpoints.is_dir() and run.plots.is_dir()
    assert "max_steps: 3" in run.config_file.read_text()


def test_the_config_names_local_directories_by_absolute_path_so_a_resume_works_from_anywhere(tmp_path, monkeypatch):
    (tmp_path / "policy").mkdir()
    (tmp_path / "estimator").mkdir()
    monkeypatch.chdir(tmp_path)
    RunDirectory("run").claim(TrainConfig.build({"model": "policy", "selector": "depo", "estimator_init": "estimator"}))
    monkeypatch.chdir(tmp_path / "run")  # elsewhere: the saved config still names the directory
    saved = TrainConfig.build(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()))
    assert (saved.model, saved.estimator_init) == (str(tmp_path / "policy"), str(tmp_path / "estimator"))
    (tmp_path / "run" / "tiny").mkdir()  # a folder named like the embedded policy does not replace it
    RunDirectory(tmp_path / "tiny-run").claim(TrainConfig.build({}))
    assert "model: tiny" in (tmp_path / "tiny-run" / "config.yaml").read_text()  # a name, not a path


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_an_output_dir_that_is_a_file_is_a_one_line_error(tmp_path, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    path = blocker if where == "file" else blocker / "run"
    with pytest.raises(DepoError, match="not a directory|cannot create") as err:
        RunDirectory(path).claim(TrainConfig.build({}))
    assert "\n" not in str(err.value)
    assert blocker.read_text() == "not a directory"  # nothing lost
