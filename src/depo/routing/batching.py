"""Micro-batching: concurrent routing requests are scored together in one Router.route call.

Why: an encoder forward is shared by the batch, so routing stays batched under load
(`max_batch` queries at most, the first waiting up to `max_wait_ms` for company).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from depo.routing.metrics import Metrics
    from depo.routing.router import Decision, Router

log = logging.getLogger("depo.route")


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
        self.queue: asyncio.Queue[tuple[str, asyncio.Future]] = asyncio.Queue()  # (text, its decision)
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
        await self.queue.put((text, future))
        return await future

    async def _next_batch(self) -> list[tuple[str, asyncio.Future]]:
        batch = [await self.queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            timeout = deadline - time.perf_counter()
            try:
                batch.append(self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self.queue.get(), timeout))
            except (asyncio.QueueEmpty, TimeoutError):
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            start = time.perf_counter()
            try:
                decisions = await asyncio.to_thread(self.router.route, [text for text, _ in batch])
            except Exception as exc:  # a predictor failure fails this batch's requests, not the service
                log.exception("routing failed for a batch of %d", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.metrics.predict_latency.observe(time.perf_counter() - start)
            self.metrics.batch_size.observe(len(batch))
            for (_, future), decision in zip(batch, decisions):
                if not future.done():
                    future.set_result(decision)
