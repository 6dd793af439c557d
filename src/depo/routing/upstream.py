"""Forwarding a chat request to a backend, failover to the next model, and the concurrency bound.

Failover skips a backend that refuses connections, times out or answers 5xx before any byte
reached the client (Router.fallback_order); 4xx answers are the client's problem and are relayed
as they are. At most `max_concurrency` requests are forwarded at once; the rest wait up to
`queue_timeout_s`, then get 503, so a burst cannot exhaust sockets or backend memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from depo.routing.metrics import Metrics
    from depo.routing.serve_config import ServeConfig

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


@dataclass
class Answer:
    """The first backend that answered (`response` None when none did) and the models skipped."""

    response: httpx.Response | None
    model: str
    skipped: list[str] = field(default_factory=list)


class Slot:
    """One of the `max_concurrency` forwarding slots; released once, however often `release` runs
    (a streamed answer releases it when the stream ends, long after the handler returned)."""

    def __init__(self, slots: asyncio.Semaphore, metrics: Metrics):
        self._slots = slots
        self._metrics = metrics
        self._held = True
        metrics.in_flight.inc()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._metrics.in_flight.dec()
            self._slots.release()


class Upstream:
    """The backends behind the router: one pooled HTTP client, the slots, forwarding with failover."""

    def __init__(self, config: ServeConfig, metrics: Metrics):
        self.config = config
        self.metrics = metrics
        self.backends = {m.name: m for m in config.models}
        self.api_keys = {m.name: m.resolved_api_key() for m in config.models}
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def open(self) -> None:
        c = self.config
        timeout = httpx.Timeout(connect=c.connect_timeout_s, read=c.read_timeout_s, write=c.read_timeout_s, pool=c.queue_timeout_s)
        limits = httpx.Limits(max_connections=c.max_concurrency * 2, max_keepalive_connections=c.max_concurrency)
        self._client = httpx.AsyncClient(timeout=timeout, limits=limits)
        self._slots = asyncio.Semaphore(c.max_concurrency)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def slot(self) -> Slot | None:
        """A forwarding slot, or None when none freed up within `queue_timeout_s`."""
        assert self._slots is not None, "Upstream.open() was not called"
        try:
            if self._slots.locked():  # wait for a slot, bounded; an immediate acquire needs no timer
                await asyncio.wait_for(self._slots.acquire(), timeout=self.config.queue_timeout_s)
            else:
                await self._slots.acquire()
        except TimeoutError:
            self.metrics.rejected.inc()
            return None
        return Slot(self._slots, self.metrics)

    async def first_answer(self, order: list[str], body: dict[str, Any], stream: bool) -> Answer:
        """Try the models in `order` until one answers (anything but a failover reason)."""
        skipped: list[str] = []
        for name in order:
            attempt = await self.forward(name, body, stream)
            if isinstance(attempt, httpx.Response):
                return Answer(attempt, name, skipped)
            skipped.append(f"{name}: {attempt}")
        return Answer(None, order[0], skipped)

    async def forward(self, name: str, body: dict[str, Any], stream: bool) -> httpx.Response | str:
        """`body` sent to backend `name` as its own model (and key): the response, or why to fail over."""
        assert self._client is not None, "Upstream.open() was not called"
        spec = self.backends[name]
        headers = {"authorization": f"Bearer {self.api_keys[name]}"} if self.api_keys[name] else {}
        payload = dict(body, model=spec.upstream_model)
        request = self._client.build_request("POST", f"{spec.url}/chat/completions", json=payload, headers=headers)
        outcome = self.metrics.backend_requests
        try:
            response = await self._client.send(request, stream=stream)
        except httpx.TimeoutException:
            outcome.labels(name, "timeout").inc()
            return "timeout"
        except httpx.HTTPError as exc:
            outcome.labels(name, "unreachable").inc()
            return f"unreachable ({type(exc).__name__})"
        status = response.status_code
        outcome.labels(name, "ok" if status < 400 else f"http_{status}").inc()
        if status in RETRYABLE_STATUS:
            await response.aclose()
            return f"HTTP {status}"
        return response
