"""FastAPI application factory with the edges' common protections."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .http_telemetry import instrument

MAX_BODY_BYTES = 256 * 1024


class BodySizeLimit:
    """Refuse oversized request bodies with 413 before any handler parses them."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body exceeds {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


async def _unstorable(_: Request, __: Exception) -> JSONResponse:
    # PostgreSQL data errors (SQLSTATE class 22: NUL in text, numbers or dates out of range) and
    # date arithmetic overflows are caused by the request's values: 422, and the transaction around
    # the write has rolled back. The message is fixed: the database's own may quote the input.
    return JSONResponse({"detail": "a value cannot be stored: out of range, or text containing NUL (\\u0000)"},
                        status_code=422)


def create_app(title: str, description: str, *, version: str = "1.0.0", max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title=title, description=description, version=version)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    instrument(app)  # outermost: trace context, access log, RED metrics (shared.http_telemetry)
    app.add_exception_handler(asyncpg.exceptions.DataError, _unstorable)
    app.add_exception_handler(OverflowError, _unstorable)
    return app
