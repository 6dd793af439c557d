"""`depo` command line: train | eval | demo | bench ... | route serve.

Each command lives beside the code it drives and registers itself here through a
`register(subparsers)` function. Registration modules import only argparse-level things;
heavy imports (torch, transformers) happen inside the command, so `depo --help` is fast.
Every `DepoError` becomes a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from depo.errors import DepoError

TOP_LEVEL = ["depo.rl.commands"]  # train, eval, demo
BENCH = ["depo.bench.estimator_cmd", "depo.bench.replay_cmd", "depo.routing.bench_cmd", "depo.bench.train_cmd"]
ROUTE = ["depo.routing.serve_cmd"]


def _register_all(subparsers: argparse._SubParsersAction, modules: list[str]) -> None:
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command is not built yet
                continue
            raise
        module.register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _register_all(sub, TOP_LEVEL)
    bench = sub.add_parser("bench", help="benchmarks (commands, not tests)")
    _register_all(bench.add_subparsers(dest="bench_command", required=True), BENCH)
    route = sub.add_parser("route", help="query routing across models")
    _register_all(route.add_subparsers(dest="route_command", required=True), ROUTE)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except DepoError as exc:
        print(f"depo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("depo: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
