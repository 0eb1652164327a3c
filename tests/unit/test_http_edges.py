"""The HTTP edge's common protections."""

import httpx
from fastapi import Request

from shared.http import create_app


def _app():
    app = create_app("t", "test app", max_body_bytes=100)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"size": len(await request.body())}

    return app


async def test_oversized_body_is_refused_with_413_and_a_reason():
    """A body above the limit gets 413 naming the limit; the handler never runs."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        big = await client.post("/echo", content=b"x" * 101)
        small = await client.post("/echo", content=b"x" * 100)
    assert big.status_code == 413 and "100 bytes" in big.json()["detail"]
    assert small.status_code == 200 and small.json() == {"size": 100}


async def test_streamed_body_without_length_is_counted():
    """A chunked body with no Content-Length is still cut off at the limit."""

    async def chunks():
        for _ in range(5):
            yield b"y" * 30

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        response = await client.post("/echo", content=chunks())
    assert response.status_code == 413
