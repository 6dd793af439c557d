"""`depo bench ...`: every experiment (commands, not tests)."""

from __future__ import annotations

import argparse

from depo.bench import estimator_cmd, replay_cmd, route_cmd, train_cmd


def register(subparsers: argparse._SubParsersAction) -> None:
    for module in (estimator_cmd, replay_cmd, route_cmd, train_cmd):
        module.register(subparsers)
