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


class _Parsed(Exception):
    """Raised in place of the work: the command parsed and its settings validated."""


def _documented_commands() -> list[str]:
    """Every `depo ...` command quoted in the README, BENCHMARKS.md and docs/ (placeholders skipped)."""
    found = []
    for path in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for command in re.findall(r"`(depo (?:train|demo|bench|route)[^`]*)`", path.read_text(encoding="utf-8")):
            if not re.search(r"\.\.\.|<|\bFILE\b|\bDIR\b|\bPATH\b|\bN\b|KEY=VALUE|\$\(| \| ", command):
                found.append(command)
    return sorted(set(found))


def test_every_documented_command_parses_and_its_settings_validate(monkeypatch, capsys):
    """Commands in the docs run as written: flags exist and `--set` keys are settings (the work
    itself is replaced by a stop once the settings are built). A fragment quoted in prose
    (`depo bench replay --methods speed`) may leave out the inputs a full command names."""
    import shlex

    from depo.bench import estimator_cmd, replay_cmd, route_cmd
    from depo.cli import main
    from depo.cli import train as train_cmd

    def stop(*args, **kwargs):
        raise _Parsed

    class StopTrainer:
        def __init__(self, *args, **kwargs):
            raise _Parsed

        resume = classmethod(stop)

    monkeypatch.setattr(estimator_cmd, "run_bench", stop)
    monkeypatch.setattr(replay_cmd, "run_replay", stop)
    monkeypatch.setattr(route_cmd, "run_bench", stop)
    monkeypatch.setattr("depo.bench.train.run_bench", stop)
    monkeypatch.setattr(train_cmd, "Trainer", StopTrainer)
    monkeypatch.setattr(train_cmd, "resolve_model_path", lambda cfg: None)
    monkeypatch.setattr("depo.routing.serve_cmd.build_router", stop)
    monkeypatch.chdir(ROOT)
    commands = _documented_commands()
    assert len(commands) > 20
    failed = []
    for command in commands:
        argv = [a for a in shlex.split(command)[1:] if a != "\\"]
        try:
            code = main(argv)
        except _Parsed:
            continue
        except SystemExit as exc:  # argparse refused a flag
            code = exc.code
        error = capsys.readouterr().err.strip()
        if code == 2 and re.search(r": Field required$|needs --config FILE", error):
            continue  # a fragment: everything it names is valid, the inputs are left out
        failed.append(f"{command}\n    {error}")
    assert not failed, "documented commands that do not run as written:\n" + "\n".join(failed)
