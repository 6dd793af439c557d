"""`depo` command line: train | eval | demo | bench ... | route serve.

Each group of commands lives in a module of this package and registers itself with a
`register(subparsers)` function. Every `DepoError` becomes a one-line message and exit code 2;
Ctrl-C outside a training loop exits with 130.
"""

from __future__ import annotations

import argparse
import sys

from depo.cli import bench, route, train
from depo.errors import DepoError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train.register(sub)
    bench.register(sub.add_parser("bench", help="benchmarks (commands, not tests)").add_subparsers(dest="bench_command", required=True))
    route.register(sub.add_parser("route", help="query routing across models").add_subparsers(dest="route_command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
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
