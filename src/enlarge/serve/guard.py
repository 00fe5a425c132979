"""The checks made before the app reads a request body: the bearer token, and the upload size limit.

A plain ASGI middleware, so a request without the token, or announcing too large a body, is refused before a
byte of its body is read, and a body without a length (chunked) is counted as it streams in and refused the
moment it passes the limit, never buffered whole first.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from enlarge.serve.config import BYTES_PER_MB

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED_PREFIX = "/v1/"  # the API; the page, its files, /healthz and the schema stay open
BEARER_PREFIX = b"bearer "
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Guard:
    """Refuse requests without the token (401) and bodies over `max_body_bytes` (413), with a JSON error."""

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope["headers"]}
        if self.token is not None and scope["path"].startswith(PROTECTED_PREFIX) and not self._authorized(headers):
            await send_error(
                send, 401, "missing or wrong token: send the header Authorization: Bearer TOKEN",
                {"www-authenticate": "Bearer"},
            )
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            await send_error(send, 400, "the Content-Length header is not a number")
            return
        if declared is not None and int(declared) > self.max_body_bytes:
            await send_error(send, 413, self._too_large())
            return
        body = await self._read_body(receive)
        if body is None:
            await send_error(send, 413, self._too_large())
            return
        await self.app(scope, _replay(body, receive), send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        value = headers.get(b"authorization", b"")
        if value[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX or self.token is None:
            return False
        return secrets.compare_digest(value[len(BEARER_PREFIX) :].strip(), self.token)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: hand on what came
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_large(self) -> str:
        megabytes = self.max_body_bytes / BYTES_PER_MB
        return f"the upload is larger than this server's {megabytes:g} MB limit; send a smaller file"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then passes on what follows (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A complete `{"error": message}` JSON response."""
    body = json.dumps({"error": message}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
