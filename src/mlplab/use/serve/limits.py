"""Pure ASGI middlewares: a body-size cap, a concurrency cap, and one log line per request.

They sit in front of the routes and never read a body themselves, so a refused request costs
no memory: an oversized `Content-Length` is answered 413 before anything is read, and a body
sent without a length (chunked) is counted as the application reads it and cut off at the cap.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_logger = logging.getLogger("mlplab.serve.access")


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the cap; answered 413."""


async def send_json(send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


class BodySizeLimit:
    """413 for a request body over `max_body_bytes`, declared or streamed."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def too_large(self, size: str) -> dict[str, str]:
        return {"error": f"request body {size} is over the limit of {self.max_body_bytes:,} bytes"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None:
            # The server (h11/httptools) enforces a declared length: the body can be neither
            # longer nor shorter, so checking the number is enough.
            length = int(declared) if declared.isdigit() else -1
            if length > self.max_body_bytes:
                await send_json(send, 413, self.too_large(f"of {length:,} bytes"), [(b"connection", b"close")])
                return
            if length >= 0:
                await self.app(scope, receive, send)
                return
        await self.counting(scope, receive, send)

    async def counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(f"over {received:,} bytes")
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await send_json(send, 413, self.too_large(str(exc)), [(b"connection", b"close")])


class ConcurrencyLimit:
    """At most `max_concurrency` requests in the application at once; the others get 503 + Retry-After.

    The liveness probe is exempt: a busy service is still alive.
    """

    def __init__(self, app: ASGIApp, max_concurrency: int, exempt: tuple[str, ...] = ("/livez",)) -> None:
        self.app = app
        self.max_concurrency = max_concurrency
        self.exempt = exempt
        self.active = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_concurrency:
            await send_json(send, 503, {"error": f"busy: {self.max_concurrency} requests in progress, retry shortly"},
                            [(b"retry-after", b"1")])
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class AccessLog:
    """One line per request: method, path, status, milliseconds."""

    def __init__(self, app: ASGIApp, logger: logging.Logger = access_logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def noted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted_send)
        finally:
            ms = (time.perf_counter() - start) * 1000
            # status 0: the client went away (or the app failed) before any response was sent
            self.logger.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, ms)
