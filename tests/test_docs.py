"""The documents point at tests and files that exist (RELIABILITY.md names the test behind each guarantee)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_reliability_md_exists():
    text = (ROOT / "RELIABILITY.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        current = None
        for m in re.finditer(r"(tests/[\w/]+\.py)(?:::(\w+))?|`::(\w+)`", line):
            path, name = m.group(1), m.group(2) or m.group(3)
            if path:
                current = ROOT / path
                assert current.is_file(), f"RELIABILITY.md names {path}, which does not exist"
            if name:
                assert current is not None and f"def {name}(" in current.read_text(encoding="utf-8"), (
                    f"RELIABILITY.md names {name} in {current}, which does not define it")
