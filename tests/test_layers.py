"""The layer contract: imports point down only (pyproject.toml [tool.importlinter]), and it covers every package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import depo

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    return contract["layers"]


def test_every_package_and_module_of_depo_has_a_layer():
    named = {name.strip() for layer in _layers() for name in layer.replace("|", ":").split(":")}
    present = {
        f"depo.{p.stem}" for p in Path(depo.__file__).parent.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")
    }
    assert present == named, f"layers miss {sorted(present - named)}, name absent {sorted(named - present)}"


def test_imports_point_down_only():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout
