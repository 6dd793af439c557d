"""The heavy work behind each `depo` command, replaced by stubs that raise `Reached`: a command
that gets there passed every check made before its real work (its flags, its settings)."""

from __future__ import annotations

import contextlib

import pytest


class Reached(Exception):
    """A stubbed heavy function was called: the argv was accepted."""


def _reached(*args, **kwargs):
    raise Reached


class _StubTrainer:
    def __init__(self, *args, **kwargs):
        raise Reached

    @classmethod
    def resume(cls, *args, **kwargs):
        raise Reached


HEAVY = [  # (module, attribute, replacement)
    ("depo.rl.trainer", "Trainer", _StubTrainer),
    ("depo.rl.trainer", "resolve_model_path", _reached),
    ("depo.policy", "build_tiny_policy", _reached),
    ("depo.policy.tiny", "build_tiny_policy", _reached),
    ("depo.rl.evaluation", "evaluate", _reached),
    ("depo.bench.estimator", "run_bench", _reached),
    ("depo.bench.replay", "run_replay", _reached),
    ("depo.bench.route", "run_bench", _reached),
    ("depo.bench.train", "run_bench", _reached),
    ("depo.routing.serve_config", "build_router", _reached),
    ("depo.routing.app", "serve", _reached),
    ("torch", "set_num_threads", lambda n: None),  # a fuzzed num_threads must not touch this process
    # ... and where the commands imported them at load time (a patch of the defining module
    # would not reach those names)
    ("depo.cli.train", "Trainer", _StubTrainer),
    ("depo.cli.train", "resolve_model_path", _reached),
    ("depo.cli.train", "build_tiny_policy", _reached),
    ("depo.cli.train", "evaluate", _reached),
    ("depo.bench.commands", "run_bench", _reached),
    ("depo.bench.commands", "build_tiny_policy", _reached),
    ("depo.routing.serve_cmd", "build_router", _reached),
]


def stub_heavy_work(mp: pytest.MonkeyPatch) -> None:
    """Put every stub of HEAVY in place (undone with `mp`)."""
    for module, name, stub in HEAVY:
        with contextlib.suppress(ImportError):  # a command whose module is not built yet
            mp.setattr(f"{module}.{name}", stub)
