"""Reading a YAML config file with one-line errors (shared by training and the route service)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from depo.errors import DepoError


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping in a YAML file ({} for an empty file); a DepoError naming `what` otherwise."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DepoError(f"{what} file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DepoError(f"cannot read {what} {path}: {exc}") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).replace("\n", " ")
        raise DepoError(f"{what} {path} is not valid YAML: {first}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise DepoError(f"{what} {path} must be a mapping of key: value, got {type(values).__name__}")
    return values
