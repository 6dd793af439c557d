"""An OpenAI-compatible HTTP service that routes each chat request to one of several backends.

The Router scores the text of the last user message (docs/method.md section 2.4); the request
goes to the chosen model's OpenAI-compatible server with only its `model` field changed, and the
answer comes back as is, with the decision in `x-depo-*` headers (listed in docs/routing.md, "What
the service does"). Micro-batching is in `batching`, failover and the concurrency bound in
`upstream`, request checks in `requests`, metrics in `metrics`. Access logs are one JSON object
per request on the `depo.route.access` logger.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from depo.routing.batching import MicroBatcher
from depo.routing.metrics import Metrics
from depo.routing.requests import ChatRequest, RequestError, error_response, read_chat
from depo.routing.router import Router
from depo.routing.serve_config import ServeConfig, build_router
from depo.routing.upstream import Slot, Upstream

access_log = logging.getLogger("depo.route.access")


class _Exchange:
    """One chat request's access-log entry and clock; `finish` stamps a response and logs it."""

    def __init__(self, request: Request, metrics: Metrics):
        self.start = time.perf_counter()
        self.metrics = metrics
        self.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        client = f"{request.client.host}:{request.client.port}" if request.client else None
        self.entry: dict[str, Any] = {"request_id": self.request_id, "path": "/v1/chat/completions", "client": client}

    def finish(self, response: Response, **fields: Any) -> Response:
        """`response` with its request id; logged now, unless it streams (logged when it ends)."""
        self.entry.update(fields)
        self.entry.setdefault("status", response.status_code)
        if not isinstance(response, StreamingResponse):
            self.log()
        response.headers["x-request-id"] = self.request_id
        return response

    def log(self, status: str | None = None) -> None:
        """Log the request and count its answer: once per request, every answer (model "none" when
        no backend answered). `status` replaces the HTTP status in the count (a broken stream)."""
        seconds = time.perf_counter() - self.start
        self.entry["latency_ms"] = round(seconds * 1000, 2)
        access_log.info(json.dumps({"ts": round(time.time(), 3), **self.entry}, separators=(",", ":"), default=str))
        model = self.entry.get("model")
        self.metrics.record_answer(model or "none", status or str(self.entry["status"]), seconds if model else None)


class _Service:
    """What the endpoints share: the config, the router, metrics, the backends and the batcher."""

    def __init__(self, config: ServeConfig, router: Router):
        missing = set(router.names) - {m.name for m in config.models}
        if missing:
            raise ValueError(f"router models {sorted(missing)} have no backend in the config")
        self.config = config
        self.router = router
        self.token = config.resolved_token()
        self.metrics = Metrics(router.names)
        self.upstream = Upstream(config, self.metrics)
        self.batcher: MicroBatcher | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        # the client, the slots and the batcher's queue belong to the serving event loop
        self.upstream.open()
        self.batcher = MicroBatcher(self.router, self.metrics, self.config.max_batch, self.config.max_wait_ms / 1000.0)
        self.batcher.start()
        try:
            yield
        finally:
            await self.batcher.stop()
            await self.upstream.aclose()

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    @staticmethod
    def unauthorized() -> JSONResponse:
        return error_response(401, "missing or wrong bearer token", "invalid_api_key", {"www-authenticate": "Bearer"})

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "models": self.router.names, "rule": self.router.rule}

    async def metrics_text(self) -> Response:
        return Response(self.metrics.exposition(), media_type=self.metrics.content_type)

    async def list_models(self, request: Request) -> Response:
        if not self.authorized(request):
            return self.unauthorized()
        now = int(time.time())
        ids = [*self.config.routed_aliases, *self.router.names]
        return JSONResponse({"object": "list", "data": [{"id": i, "object": "model", "created": now, "owned_by": "depo"} for i in ids]})

    async def chat_completions(self, request: Request) -> Response:
        ex = _Exchange(request, self.metrics)
        if not self.authorized(request):
            return ex.finish(self.unauthorized())
        try:
            chat = await read_chat(request, self.config.max_body_bytes, self.router.names, self.config.routed_aliases)
        except RequestError as exc:
            return ex.finish(error_response(exc.status, exc.message, exc.code), error=exc.message)
        if chat.model in self.router.names:
            chosen, rule, rates = chat.model, "pinned", {}
        else:
            assert self.batcher is not None
            try:
                decision = await self.batcher.route(chat.text)
            except Exception as exc:
                return ex.finish(error_response(500, f"routing failed: {type(exc).__name__}", "routing_error"), error=str(exc))
            chosen, rule, rates = decision.model, decision.rule, decision.rates
            self.metrics.record_decision(chosen)
        rounded = {k: round(v, 4) for k, v in rates.items()}
        ex.entry.update(routed_model=chosen, rule=rule, rates=rounded, stream=chat.stream)
        headers = {"x-depo-routed-model": chosen, "x-depo-rule": rule, "x-depo-pass-rates": json.dumps(rounded, separators=(",", ":"))}
        slot = await self.upstream.slot()
        if slot is None:
            overloaded = error_response(503, "router is at its concurrency limit; retry later", "overloaded", {"retry-after": "1"})
            return ex.finish(overloaded, error="concurrency limit")
        try:
            order = [chosen] if rule == "pinned" else self.router.fallback_order(chosen)
            return await self._answer(chat, order, headers, slot, ex)
        except BaseException:
            slot.release()
            raise

    async def _answer(self, chat: ChatRequest, order: list[str], headers: dict[str, str], slot: Slot, ex: _Exchange) -> Response:
        answer = await self.upstream.first_answer(order, chat.body, chat.stream)
        if answer.skipped:
            headers["x-depo-failover"] = "; ".join(answer.skipped)
        if answer.response is None:
            slot.release()
            failed = error_response(502, "no backend could answer: " + "; ".join(answer.skipped), "backend_unavailable", headers)
            return ex.finish(failed, failover=answer.skipped, error="all backends failed")
        served, upstream = answer.model, answer.response
        headers["x-depo-model"] = served
        if answer.skipped:
            self.metrics.failovers.inc()
        ex.entry.update(model=served, failover=answer.skipped or None)
        status = upstream.status_code
        if not chat.stream or status >= 400:
            content = await upstream.aread()
            await upstream.aclose()
            slot.release()
            media = upstream.headers.get("content-type", "application/json")
            return ex.finish(Response(content=content, status_code=status, media_type=media, headers=headers))
        headers["cache-control"] = "no-cache"
        media = upstream.headers.get("content-type", "text/event-stream")
        return ex.finish(StreamingResponse(self._relay(upstream, served, slot, ex), status_code=status, media_type=media, headers=headers))

    async def _relay(self, upstream: httpx.Response, served: str, slot: Slot, ex: _Exchange) -> AsyncIterator[bytes]:
        """The backend's stream as it comes; the slot is freed and the request logged at its end."""
        ok = True
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:  # backend died mid-stream: nothing to fail over to
            ok = False
            ex.entry["error"] = f"stream broken: {type(exc).__name__}"
            message = {"error": {"message": "backend stream broke", "type": "backend_error"}}
            yield f"data: {json.dumps(message)}\n\n".encode()
        finally:
            await upstream.aclose()
            slot.release()
            ex.log(None if ok else "stream_error")


def create_app(config: ServeConfig, router: Router | None = None) -> FastAPI:
    """The ASGI app. `router` overrides the one the config describes (tests, custom predictors)."""
    service = _Service(config, router if router is not None else build_router(config))
    app = FastAPI(title="depo route", lifespan=service.lifespan)
    app.add_api_route("/health", service.health, methods=["GET"])
    app.add_api_route("/metrics", service.metrics_text, methods=["GET"])
    app.add_api_route("/v1/models", service.list_models, methods=["GET"])
    app.add_api_route("/v1/chat/completions", service.chat_completions, methods=["POST"])
    return app


def configure_logging(level: str = "info") -> None:
    """Access log lines go to stderr as bare JSON (one object per line, ready for log shippers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [handler]
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
    logging.getLogger("depo.route").setLevel(level.upper())


def serve(config: ServeConfig, router: Router | None = None, log_level: str = "info") -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn  # only the running service needs the server, not create_app (tests mount the app themselves)

    configure_logging(log_level)
    uvicorn.run(create_app(config, router), host=config.host, port=config.port, log_level=log_level, access_log=False)
