"""`depo route serve --config FILE`: the OpenAI-compatible routing service (see depo.routing.app)."""

from __future__ import annotations

import argparse

from depo.config import add_arguments, overrides_from
from depo.errors import DepoError
from depo.routing.serve_config import ServeConfig, build_router, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="OpenAI-compatible HTTP router in front of several model servers",
        description="Route each chat request to one of several OpenAI-compatible backends by predicted pass rate.",
    )
    add_arguments(parser, ServeConfig, flags=("host", "port"))  # --config FILE (see configs/route_serve.example.yaml)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--check", action="store_true", help="load the config and predictors, print the setup, exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depo.routing.app import serve  # the web stack (fastapi, uvicorn) only when serving

    if not args.config:
        raise DepoError("depo route serve needs --config FILE (see configs/route_serve.example.yaml)")
    config = load_config(args.config, overrides_from(args))
    config.resolved_token()  # the environment variables serving reads: missing ones fail --check too
    for backend in config.models:
        backend.resolved_api_key()
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
