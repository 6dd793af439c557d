"""`depo route serve`: the OpenAI-compatible router (its module holds the work)."""

from __future__ import annotations

import argparse

from depo.routing import serve_cmd


def register(subparsers: argparse._SubParsersAction) -> None:
    serve_cmd.register(subparsers)
