"""A run directory: config.yaml, metrics.jsonl, checkpoints/, plots/, summary.md.

A new run claims an empty directory (refusing one that already holds a run, so nothing is
overwritten by accident); a resumed run reopens it with the config it was started with.
"""

from __future__ import annotations

import time
from pathlib import Path

from depo.config import write_yaml
from depo.errors import DepoError
from depo.rl import checkpoint as ckpt
from depo.rl.config import TrainConfig
from depo.rl.metrics_log import MetricsLog


class RunDirectory:
    """The paths of one run, and its metrics log."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.checkpoints = self.path / "checkpoints"
        self.plots = self.path / "plots"
        self.metrics = MetricsLog(self.path / "metrics.jsonl")

    @classmethod
    def for_config(cls, cfg: TrainConfig) -> RunDirectory:
        return cls(cfg.output_dir or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")

    def claim(self, cfg: TrainConfig) -> None:
        """Create the directory for a new run and write its config.yaml."""
        if self.metrics.path.exists() or ckpt.list_checkpoints(self.checkpoints):
            raise DepoError(
                f"{self.path} already holds a run; continue it with --resume {self.path} or pick another output_dir"
            )
        for sub in (self.path, self.checkpoints, self.plots):
            try:
                sub.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise DepoError(f"output_dir {self.path}: {sub} exists and is not a directory") from None
            except OSError as exc:
                raise DepoError(f"output_dir {self.path}: cannot create {sub} ({exc.strerror})") from None
        # local directories written absolute: `--resume` reopens them from any working directory
        # ("tiny" names the embedded policy, even where a folder of that name exists)
        paths = {key: str(Path(value).resolve()) for key in ("model", "estimator_init")
                 if (value := getattr(cfg, key)) and Path(value).is_dir() and (key, value) != ("model", "tiny")}
        write_yaml(cfg.replace(output_dir=str(self.path), **paths), self.config_file)
