"""`depo route serve --config FILE`: the OpenAI-compatible routing service (see depo.routing.serve)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="OpenAI-compatible HTTP router in front of several model servers",
        description="Route each chat request to one of several OpenAI-compatible backends by predicted pass rate.",
    )
    parser.add_argument("--config", required=True, help="YAML config (see configs/route_serve.example.yaml)")
    parser.add_argument("--host", help="override the config's listen host")
    parser.add_argument("--port", type=int, help="override the config's listen port")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--check", action="store_true", help="load the config and predictors, print the setup, exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depo.routing.serve import serve
    from depo.routing.serve_config import build_router, load_config

    config = load_config(args.config)
    if args.host:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    config.validate()
    router = build_router(config)
    knob = f"tau={router.tau}" if router.rule == "threshold" else f"lambda={router.lam}"
    print(f"depo route: rule={router.rule} {knob}; models (cheapest first):")
    for m in router.models:
        spec = next(b for b in config.models if b.name == m.name)
        print(f"  {m.name}  cost={m.cost:g}  -> {spec.url} (model {spec.upstream_model})")
    if args.check:
        return 0
    serve(config, router, log_level=args.log_level)
    return 0
