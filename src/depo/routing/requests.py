"""Reading a chat-completions request, and OpenAI-shaped error answers for a bad one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse


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


@dataclass
class ChatRequest:
    """A checked chat request: the body to forward, the text to route on, the model asked for."""

    body: dict[str, Any]
    text: str
    stream: bool
    model: str


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) on a declared length over `limit` before any byte is read,
    else read only until it runs past `limit`."""
    too_big = RequestError(413, f"request body over {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise too_big
    return bytes(raw)


async def read_chat(request: Request, limit: int, names: list[str], aliases: tuple[str, ...]) -> ChatRequest:
    """The request body checked before anything is routed or forwarded (RequestError otherwise).

    `names` are the configured models (asking for one pins it), `aliases` the names that mean
    "let the router choose"; the first alias is the default.
    """
    raw = await _body(request, limit)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    text = last_user_text(body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "'stream' must be true or false")
    model = body.get("model", aliases[0])
    if not isinstance(model, str):
        raise RequestError(400, "'model' must be a string")
    if model not in names and model not in aliases:
        raise RequestError(404, f"unknown model {model!r}; use one of {', '.join([*aliases, *names])}", "model_not_found")
    return ChatRequest(body, text, stream, model)
