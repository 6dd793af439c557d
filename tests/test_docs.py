"""The documents point at tests and files that exist (RELIABILITY.md names the test behind each guarantee)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def _documented_commands() -> list[str]:
    """Every `depo ...` command quoted in the README, BENCHMARKS.md and docs/, inline or on a line
    of a code block (its trailing `# comment` dropped); placeholders skipped."""
    found = []
    for path in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        inline = re.findall(r"`(depo (?:train|demo|bench|route|eval)[^`]*)`", text)
        blocks = [line.split(" #")[0].strip() for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
                  for line in block.splitlines() if re.match(r"\s*depo (?:train|demo|bench|route|eval)\b", line)]
        for command in inline + blocks:
            if not re.search(r"\.\.\.|<|\bFILE\b|\bDIR\b|\bPATH\b|\bN\b|KEY=VALUE|\$\(| \| ", command):
                found.append(command)
    return sorted(set(found))


def test_every_documented_command_parses_and_its_settings_validate(monkeypatch, capsys):
    """Commands in the docs run as written: flags exist and `--set` keys are settings (the work
    itself is replaced by the CLI fuzz test's stubs, tests/cli_stubs.py). A fragment quoted in prose
    (`depo bench replay --methods speed`) may leave out the inputs a full command names."""
    import shlex

    from depo.cli import main
    from tests.cli_stubs import Reached, stub_heavy_work

    stub_heavy_work(monkeypatch)
    monkeypatch.chdir(ROOT)
    commands = _documented_commands()
    assert len(commands) > 20
    failed = []
    for command in commands:
        argv = [a for a in shlex.split(command)[1:] if a != "\\"]
        try:
            code = main(argv)
        except Reached:
            continue
        except SystemExit as exc:  # argparse refused a flag
            code = exc.code
        error = capsys.readouterr().err.strip()
        if code == 2 and re.search(r": Field required$|needs --config FILE", error):
            continue  # a fragment: everything it names is valid, the inputs are left out
        failed.append(f"{command}\n    {error}")
    assert not failed, "documented commands that do not run as written:\n" + "\n".join(failed)


def test_every_documented_python_m_command_parses_and_its_settings_validate(monkeypatch):
    """`python -m depo.bench.*` commands in the docs parse as written (their settings are read,
    then a stub stops the work)."""
    import importlib
    import shlex

    from depo import config
    from tests.cli_stubs import Reached

    def parse_then_stop(*args, **kwargs):
        raise Reached(config.parse_command(*args, **kwargs))

    found = set()
    for path in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found.update(re.findall(r"`python -m (depo\.bench\.\w+)( [^`]*)?`", path.read_text(encoding="utf-8")))
    commands = sorted((m, a) for m, a in found if not re.search(r"\bP\b|\.\.\.|<|\[", a))
    assert len({m for m, _ in commands}) >= 4
    for module_name, rest in commands:
        module = importlib.import_module(module_name)
        monkeypatch.setattr(module, "parse_command", parse_then_stop)
        with pytest.raises(Reached):
            module.main(shlex.split(rest))


def test_every_code_name_in_the_docs_exists():
    """`depo.module.name` in README, BENCHMARKS, RELIABILITY and docs/ resolves (docs/verl.md is left
    out: its `depo.*` are keys of verl's YAML, and verl's modules import only in verl's environment)."""
    import importlib

    docs = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "RELIABILITY.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(p.read_text(encoding="utf-8") for p in docs if p.name != "verl.md")
    names = sorted(set(re.findall(r"`(depo(?:\.\w+)+)", text)))
    assert len(names) > 20
    missing = []
    for dotted in names:
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(dotted)
            break
    assert not missing, f"the docs name code that does not exist: {missing}"
