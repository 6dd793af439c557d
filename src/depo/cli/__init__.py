"""`depo` command line: train | eval | demo | bench ... | route serve.

Each command's module registers it with a `register(subparsers)` function: train, eval and demo
in `depo.cli.train`, bench ... in `depo.bench.commands`, route serve in `depo.routing.serve_cmd`.
Every `DepoError` becomes a one-line message and exit code 2; Ctrl-C outside a training loop
exits with 130.
"""

from __future__ import annotations

import argparse

from depo.bench import commands as bench_commands
from depo.cli import train
from depo.errors import run_command
from depo.routing import serve_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train.register(sub)
    bench = sub.add_parser("bench", help="benchmarks (commands, not tests)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bench_commands.register(bench_sub)
    route = sub.add_parser("route", help="query routing across models")
    serve_cmd.register(route.add_subparsers(dest="route_command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.func(args))

