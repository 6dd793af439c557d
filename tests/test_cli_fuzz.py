"""Fuzzing the command line: `depo.cli.main(argv)` returns an exit code or argparse exits,
for any argv; no other exception (no traceback) ever escapes.

The argv are drawn from the real parser (every command's flags, their choices, and hostile
values: missing / empty / binary / directory paths, negative and non-finite numbers, random
text) plus fully random token lists. The heavy work behind each command (training, policy
building, evaluation, benchmarks, the HTTP server) is replaced by a stub that raises `Reached`:
reaching it means the argv passed every check made before the real work, an accepted outcome.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depo.cli import build_parser, main
from tests.cli_stubs import Reached, stub_heavy_work

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], list]:
    """Every leaf command path -> its optional actions (flag strings, takes a value, choices)."""
    out: dict[tuple[str, ...], list] = {}
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix: [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]}
    for name, sub in subs[0].choices.items():
        out.update(_commands(sub, (*prefix, name)))
    return out


COMMANDS = _commands(build_parser())
TMP = Path(tempfile.mkdtemp(prefix="depo-cli-fuzz-"))
atexit.register(shutil.rmtree, TMP, True)
(TMP / "empty.jsonl").write_bytes(b"")
(TMP / "garbage.parquet").write_bytes(b"\x00\xffnot parquet")
(TMP / "bad.yaml").write_bytes(b"a: [1, 2\n\xff")
(TMP / "list.yaml").write_text("- 1\n- 2\n")
(TMP / "cfg.yaml").write_text("bogus_key: 1\n")
(TMP / "dir").mkdir()
PATHS = [str(TMP / n) for n in ("empty.jsonl", "garbage.parquet", "bad.yaml", "list.yaml", "cfg.yaml", "dir", "missing.json")]
VALUES = st.one_of(
    st.sampled_from(PATHS),
    st.sampled_from(["-1", "0", "1", "2.5", "1e309", "nan", "-inf", "", " ", "tiny", "a=b", "bogus=1", "seed=-3",
                     "selector=depo", "selector_options.x=1", "num_generations=1", "uniform,depo", "depo.threshold=2"]),
    st.text(max_size=12),
)


@st.composite
def structured_argv(draw) -> list[str]:
    path = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(path)
    # required flags first (most of the time), so most argv get past argparse to the command
    required = [a for a in COMMANDS[path] if a.required] if draw(st.integers(0, 4)) else []
    for action in required:
        argv += [action.option_strings[0], draw(VALUES)]
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(COMMANDS[path])) if COMMANDS[path] else None
        if action is None or draw(st.integers(0, 9)) == 0:
            argv.append(draw(VALUES))
            continue
        argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            choices = list(action.choices) if action.choices else []
            argv.append(draw(st.sampled_from(choices)) if choices and draw(st.booleans()) else draw(VALUES))
    if draw(st.integers(0, 19)) == 0:
        argv.append("--help")
    return argv


def _check(argv: list[str]) -> str:
    """Run main(argv) with the heavy work stubbed; return the outcome ("exit0", "exit2", "reached",
    "return<code>"); fail on any other exception or on a code-2 return without one error line."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        stub_heavy_work(mp)
        mp.chdir(TMP)  # a fuzzed relative output_dir (`tiny`, `INF`) is created here, not in the checkout
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
            assert exc.code in (0, 2), (argv, exc.code)
            return f"exit{exc.code}"
        except Reached:
            return "reached"
    assert isinstance(code, int), (argv, code)
    if code == 2:
        lines = err.getvalue().strip().split("\n")
        assert lines and lines[-1].startswith("depo: error: "), (argv, err.getvalue())
        message = [line for line in lines if line.startswith("depo: error: ")]
        assert len(message) == 1 and message[0] == lines[-1], (argv, err.getvalue())
    return f"return{code}"


@FUZZ
@given(argv=structured_argv())
def test_structured_argv(argv: list[str]) -> None:
    _check(argv)


@settings(max_examples=40, deadline=None)
@given(argv=st.lists(st.text(max_size=10) | st.sampled_from(["train", "eval", "demo", "bench", "route", "--set"]), max_size=5))
def test_random_argv(argv: list[str]) -> None:
    _check(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--set", "selector_options.bogus=1"],
        ["train", "--config", str(TMP / "bad.yaml")],
        ["train", "--config", str(TMP / "dir")],
        ["demo", "--config", str(TMP / "list.yaml")],
        ["eval", "--model", str(TMP / "dir"), "--n", "2"],
        ["eval", "--model", str(TMP / "garbage.parquet")],
        ["eval", "--preset", "nonsense", "--model", str(TMP / "dir")],
        ["eval", "--k", "many"],
        ["bench", "train", "--methods", "nope"],
        ["bench", "train", "--paired-heldout", "-5"],
        ["route", "serve", "--config", str(TMP / "missing.yaml")],
    ],
)
def test_explicit_bad_argv(argv: list[str]) -> None:
    assert _check(argv) == "return2"


def test_argparse_errors_and_help_exit() -> None:
    assert _check([]) == "exit2"
    assert _check(["train", "--nope"]) == "exit2"
    assert _check(["eval", "--nope"]) == "exit2"
    assert _check(["bench", "--help"]) == "exit0"


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=8))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
SERVE_KEYS = ["host", "port", "rule", "tau", "lambda", "routed_aliases", "max_concurrency", "max_batch", "models", "bogus"]
MODEL_KEYS = ["name", "url", "cost", "rate", "estimator", "upstream_model", "predictor", "bogus"]
serve_models = st.lists(st.dictionaries(st.sampled_from(MODEL_KEYS), yaml_values, max_size=5) | yaml_values, max_size=3)
serve_configs = st.dictionaries(st.sampled_from(SERVE_KEYS) | yaml_scalars, yaml_values, max_size=5).flatmap(
    lambda d: serve_models.map(lambda m: {**d, "models": m}) if "models" in d else st.just(d)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=serve_configs | yaml_values)
def test_route_serve_random_config_files(config) -> None:
    """`depo route serve --config FILE --check` over random YAML: a setup line, or one error line."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "serve.yaml"
        try:
            path.write_text(yaml.safe_dump(config), encoding="utf-8")
        except yaml.YAMLError:
            return
        _check(["route", "serve", "--config", str(path), "--check"])
