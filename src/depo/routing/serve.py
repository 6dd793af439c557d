"""An OpenAI-compatible HTTP service that routes each chat request to one of several backends.

Clients speak the OpenAI chat-completions API to this service (`POST /v1/chat/completions`,
streaming included; `GET /v1/models`). For each request the Router scores the text of the last
user message (SPEC.md section 2, Routing: the estimator predicts each model's pass rate), picks a
model, and the request is forwarded unchanged except for its `model` field to that model's
OpenAI-compatible server (vLLM, SGLang, a provider). The backend's answer comes back as is, with
the decision in response headers:

    x-depo-model        the model that answered
    x-depo-routed-model the Router's choice (differs from x-depo-model after a failover)
    x-depo-pass-rates   predicted pass rate per model, JSON
    x-depo-rule         threshold | gain | pinned (the client asked for a configured model by name)
    x-depo-failover     present after a failover: "<model>: <reason>; ..." for each model skipped
    x-request-id        the id in the access log

Why each mechanism:
- Micro-batching: concurrent requests are scored together (`max_batch`, `max_wait_ms`), so an
  encoder forward is shared and routing stays batched under load.
- Bounded concurrency: at most `max_concurrency` requests are forwarded at once; the rest wait
  up to `queue_timeout_s`, then get 503, so a burst cannot exhaust sockets or backend memory.
- Failover: a backend that refuses connections, times out or answers 5xx before any byte was
  sent to the client is skipped for the next model (Router.fallback_order); 4xx answers are the
  client's problem and are returned as is.
- Access logs are one JSON object per request on the `depo.route.access` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from depo.routing.router import Decision, Router
from depo.routing.serve_config import ServeConfig

access_log = logging.getLogger("depo.route.access")
log = logging.getLogger("depo.route")

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


class RequestError(Exception):
    """A client error that becomes an OpenAI-style JSON error response."""

    def __init__(self, status: int, message: str, code: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def error_response(status: int, message: str, code: str = "invalid_request_error", headers=None) -> JSONResponse:
    """OpenAI's error shape, so official clients raise their usual exceptions with our message."""
    body = {"error": {"message": message, "type": code, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def last_user_text(body: dict[str, Any]) -> str:
    """The text the Router reads: the last `user` message (string content or text parts)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list of chat messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(400, f"messages[{i}] must be an object with a string 'role'")
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if all(isinstance(p, str) for p in parts) and parts:
                return "\n".join(parts)
        raise RequestError(400, "the last user message has no text content")
    raise RequestError(400, "no message with role 'user' to route on")


class Metrics:
    """Prometheus metrics in a registry of the app's own (several apps can live in one process)."""

    def __init__(self, model_names: list[str]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "depo_route_requests", "Chat requests answered, by serving model and HTTP status", ["model", "status"], registry=r
        )
        self.backend_requests = Counter(
            "depo_route_backend_requests", "Forwarded attempts per backend and outcome", ["backend", "outcome"], registry=r
        )
        self.decisions = Counter("depo_route_decisions", "Routing decisions per chosen model", ["model"], registry=r)
        self.share = Gauge("depo_route_routing_share", "Share of routed requests sent to each model", ["model"], registry=r)
        self.failovers = Counter("depo_route_failovers", "Requests served by another model than routed", registry=r)
        self.latency = Histogram(
            "depo_route_request_latency_seconds",
            "End-to-end latency (to the last byte) by serving model",
            ["model"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.predict_latency = Histogram(
            "depo_route_predict_seconds", "Time to score one micro-batch", buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=r
        )
        self.batch_size = Histogram("depo_route_predict_batch_size", "Queries per micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.in_flight = Gauge("depo_route_in_flight", "Requests being forwarded now", registry=r)
        self.rejected = Counter("depo_route_rejected", "Requests refused: concurrency queue timed out", registry=r)
        self._counts = dict.fromkeys(model_names, 0)

    def record_decision(self, model: str) -> None:
        self.decisions.labels(model).inc()
        self._counts[model] = self._counts.get(model, 0) + 1
        total = sum(self._counts.values())
        for name, count in self._counts.items():
            self.share.labels(name).set(count / total)


@dataclass
class _Pending:
    text: str
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collect concurrent routing requests and score them in one Router.route call.

    One worker task owns the predictors (they need not be thread-safe); the scoring runs in a
    worker thread so the event loop keeps serving streams while the encoder computes.
    """

    def __init__(self, router: Router, metrics: Metrics, max_batch: int, max_wait_s: float):
        self.router = router
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def route(self, text: str) -> Decision:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(text, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch:
                timeout = deadline - time.perf_counter()
                try:
                    batch.append(self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self.queue.get(), timeout))
                except (asyncio.QueueEmpty, TimeoutError):
                    break
            start = time.perf_counter()
            try:
                decisions = await asyncio.to_thread(self.router.route, [p.text for p in batch])
            except Exception as exc:  # a predictor failure fails this batch's requests, not the service
                log.exception("routing failed for a batch of %d", len(batch))
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            self.metrics.predict_latency.observe(time.perf_counter() - start)
            self.metrics.batch_size.observe(len(batch))
            for p, d in zip(batch, decisions):
                if not p.future.done():
                    p.future.set_result(d)


class _Attempt:
    """The outcome of forwarding to one backend: a response to relay, or a reason to fail over."""

    def __init__(self, response: httpx.Response | None, reason: str | None):
        self.response = response
        self.reason = reason


def create_app(config: ServeConfig, router: Router | None = None) -> FastAPI:
    """The ASGI app. `router` overrides the one the config describes (tests, custom predictors)."""
    from depo.routing.serve_config import build_router

    config.validate()
    router = router if router is not None else build_router(config)
    backends = {m.name: m for m in config.models}
    missing = set(router.names) - set(backends)
    if missing:
        raise ValueError(f"router models {sorted(missing)} have no backend in the config")
    token = config.resolved_token()
    api_keys = {m.name: m.resolved_api_key() for m in config.models}
    metrics = Metrics(router.names)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s, read=config.read_timeout_s, write=config.read_timeout_s, pool=config.queue_timeout_s
        )
        limits = httpx.Limits(max_connections=config.max_concurrency * 2, max_keepalive_connections=config.max_concurrency)
        state["client"] = httpx.AsyncClient(timeout=timeout, limits=limits)
        state["slots"] = asyncio.Semaphore(config.max_concurrency)
        batcher = MicroBatcher(router, metrics, config.max_batch, config.max_wait_ms / 1000.0)
        batcher.start()
        state["batcher"] = batcher
        try:
            yield
        finally:
            await batcher.stop()
            await state["client"].aclose()

    app = FastAPI(title="depo route", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.router = router

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())

    def unauthorized() -> JSONResponse:
        return error_response(401, "missing or wrong bearer token", "invalid_api_key", {"www-authenticate": "Bearer"})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": router.names, "rule": router.rule}

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        now = int(time.time())
        ids = list(config.routed_aliases) + router.names
        return JSONResponse({"object": "list", "data": [{"id": i, "object": "model", "created": now, "owned_by": "depo"} for i in ids]})

    async def forward(name: str, body: dict[str, Any], stream: bool) -> _Attempt:
        spec = backends[name]
        payload = dict(body, model=spec.upstream_model)
        headers = {"content-type": "application/json"}
        if api_keys[name]:
            headers["authorization"] = f"Bearer {api_keys[name]}"
        client: httpx.AsyncClient = state["client"]
        request = client.build_request("POST", f"{spec.url}/chat/completions", json=payload, headers=headers)
        try:
            response = await client.send(request, stream=stream)
        except httpx.TimeoutException:
            metrics.backend_requests.labels(name, "timeout").inc()
            return _Attempt(None, "timeout")
        except httpx.HTTPError as exc:
            metrics.backend_requests.labels(name, "unreachable").inc()
            return _Attempt(None, f"unreachable ({type(exc).__name__})")
        if response.status_code in RETRYABLE_STATUS:
            metrics.backend_requests.labels(name, f"http_{response.status_code}").inc()
            await response.aclose()
            return _Attempt(None, f"HTTP {response.status_code}")
        metrics.backend_requests.labels(name, "ok" if response.status_code < 400 else f"http_{response.status_code}").inc()
        return _Attempt(response, None)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        start = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        entry: dict[str, Any] = {"request_id": request_id, "path": "/v1/chat/completions", "client": _client(request)}

        def finish(response: Response, **fields: Any) -> Response:
            entry.update(fields)
            entry.setdefault("status", response.status_code)
            if not isinstance(response, StreamingResponse):
                entry["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
                _log_access(entry)
            response.headers["x-request-id"] = request_id
            return response

        if not authorized(request):
            return finish(unauthorized())
        try:
            body = await _read_json(request, config.max_body_bytes)
            text = last_user_text(body)
            stream = body.get("stream", False)
            if not isinstance(stream, bool):
                raise RequestError(400, "'stream' must be true or false")
            asked = body.get("model", config.routed_aliases[0])
            if not isinstance(asked, str):
                raise RequestError(400, "'model' must be a string")
            if asked not in router.names and asked not in config.routed_aliases:
                raise RequestError(
                    404, f"unknown model {asked!r}; use one of {', '.join(list(config.routed_aliases) + router.names)}", "model_not_found"
                )
        except RequestError as exc:
            return finish(error_response(exc.status, exc.message, exc.code), error=exc.message)

        if asked in router.names:
            chosen, rule, rates = asked, "pinned", {}
        else:
            try:
                decision = await state["batcher"].route(text)
            except Exception as exc:
                return finish(error_response(500, f"routing failed: {type(exc).__name__}", "routing_error"), error=str(exc))
            chosen, rule, rates = decision.model, decision.rule, decision.rates
            metrics.record_decision(chosen)
        entry.update(routed_model=chosen, rule=rule, rates={k: round(v, 4) for k, v in rates.items()}, stream=stream)
        headers = {
            "x-depo-routed-model": chosen,
            "x-depo-rule": rule,
            "x-depo-pass-rates": json.dumps({k: round(v, 4) for k, v in rates.items()}, separators=(",", ":")),
        }

        slots: asyncio.Semaphore = state["slots"]
        try:
            if slots.locked():  # wait for a slot, bounded; an immediate acquire needs no timer
                await asyncio.wait_for(slots.acquire(), timeout=config.queue_timeout_s)
            else:
                await slots.acquire()
        except TimeoutError:
            metrics.rejected.inc()
            return finish(
                error_response(503, "router is at its concurrency limit; retry later", "overloaded", {"retry-after": "1"}),
                error="concurrency limit",
            )
        metrics.in_flight.inc()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                metrics.in_flight.dec()
                slots.release()

        try:
            skipped: list[str] = []
            attempt = _Attempt(None, None)
            served = chosen
            order = [chosen] if rule == "pinned" else router.fallback_order(chosen)
            for name in order:
                attempt = await forward(name, body, stream)
                if attempt.response is not None:
                    served = name
                    break
                skipped.append(f"{name}: {attempt.reason}")
            if attempt.response is None:
                release()
                headers["x-depo-failover"] = "; ".join(skipped)
                metrics.requests.labels("none", "502").inc()
                return finish(
                    error_response(502, "no backend could answer: " + "; ".join(skipped), "backend_unavailable", headers),
                    failover=skipped,
                    error="all backends failed",
                )
            headers["x-depo-model"] = served
            if skipped:
                headers["x-depo-failover"] = "; ".join(skipped)
                metrics.failovers.inc()
            entry.update(model=served, failover=skipped or None)
            upstream = attempt.response
            status = upstream.status_code
            if not stream or status >= 400:
                content = upstream.content if not stream else await upstream.aread()
                await upstream.aclose()
                release()
                metrics.requests.labels(served, str(status)).inc()
                metrics.latency.labels(served).observe(time.perf_counter() - start)
                media = upstream.headers.get("content-type", "application/json")
                return finish(Response(content=content, status_code=status, media_type=media, headers=headers))

            async def relay() -> AsyncIterator[bytes]:
                ok = True
                try:
                    async for chunk in upstream.aiter_raw():
                        yield chunk
                except httpx.HTTPError as exc:  # backend died mid-stream: nothing to fail over to
                    ok = False
                    entry["error"] = f"stream broken: {type(exc).__name__}"
                    message = {"error": {"message": "backend stream broke", "type": "backend_error"}}
                    yield f"data: {json.dumps(message)}\n\n".encode()
                finally:
                    await upstream.aclose()
                    release()
                    metrics.requests.labels(served, str(status) if ok else "stream_error").inc()
                    metrics.latency.labels(served).observe(time.perf_counter() - start)
                    entry["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
                    _log_access(entry)

            media = upstream.headers.get("content-type", "text/event-stream")
            headers["cache-control"] = "no-cache"
            return finish(StreamingResponse(relay(), status_code=status, media_type=media, headers=headers))
        except BaseException:
            release()
            raise

    return app


def _client(request: Request) -> str | None:
    return f"{request.client.host}:{request.client.port}" if request.client else None


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > limit:
        raise RequestError(413, f"request body over {limit} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    return body


def _log_access(entry: dict[str, Any]) -> None:
    entry = {"ts": round(time.time(), 3), **entry}
    access_log.info(json.dumps(entry, separators=(",", ":"), default=str))


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
    import uvicorn

    configure_logging(log_level)
    app = create_app(config, router)
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level, access_log=False)
