"""Helpers for the routing tests: stub OpenAI-compatible backends and servers on loopback threads."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import zlib
from collections.abc import Sequence

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


class HashRate:
    """A cheap deterministic pass-rate predictor: a fixed function of the text (crc32 -> [0, 1))."""

    def __init__(self, salt: str = ""):
        self.salt = salt

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([(zlib.crc32((self.salt + t).encode()) % 1000) / 1000 for t in texts], dtype=np.float64)


def small_predictor() -> HashRate:
    """Factory named in YAML configs (`predictor: routing_stubs:small_predictor`)."""
    return HashRate()


class StubBackend:
    """An OpenAI-compatible chat backend that answers '<name>: <last user text>'.

    Counts requests and the most requests it ever held at once; `fail_status` makes it answer
    that HTTP status to every request (a broken backend); `delay_s` holds each request;
    `break_stream_after` drops a stream's connection after that many chunks (a backend dying mid-answer).
    """

    def __init__(self, name: str, delay_s: float = 0.0):
        self.name = name
        self.delay_s = delay_s
        self.fail_status: int | None = None
        self.break_stream_after: int | None = None
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen_models: list[str] = []
        self.seen_auth: list[str | None] = []
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.count += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.seen_models.append(body.get("model"))
            self.seen_auth.append(request.headers.get("authorization"))
            try:
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.fail_status is not None:
                    return JSONResponse({"error": {"message": "broken"}}, status_code=self.fail_status)
                text = f"{self.name}: {body['messages'][-1]['content']}"
                if body.get("stream"):
                    return StreamingResponse(self._stream(body["model"], text), media_type="text/event-stream")
                return {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            finally:
                self.in_flight -= 1

        return app

    async def _stream(self, model: str, text: str):
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            chunk = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            if i == self.break_stream_after:
                raise ConnectionResetError("the stub backend died mid-stream")
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(0)
        end = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
        yield f"data: {json.dumps(end)}\n\n"
        yield "data: [DONE]\n\n"


class ThreadServer:
    """Run an ASGI app with uvicorn on 127.0.0.1 at a random free port, in a daemon thread."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", backlog=2048)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def free_port() -> int:
    """A loopback port with nothing listening (for a backend that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
