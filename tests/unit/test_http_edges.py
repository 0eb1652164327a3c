"""The HTTP edge's common protections."""

import httpx
from fastapi import Request

from shared.platform.http import create_app


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


# ---- the strict JSON layer ----------------------------------------------------------------------

import json  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from shared.platform.http import InvalidJSON, api_router, strict_json_body  # noqa: E402


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_strict_json_returns_only_what_can_be_written_back(raw):
    """Any bytes: refused with a reason, or a value that serializes as strict UTF-8 JSON (no NaN, no surrogate)."""
    try:
        value = strict_json_body(raw)
    except InvalidJSON as exc:
        assert str(exc)
        return
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e999}', b'{"a": "\\ud800"}',
                                 b'{"a": 1, "a": 2}', b'{"a": {"b": 1, "b": 1}}', b"[" * 40 + b"]" * 40,
                                 b'{"a": "\\u0000"}', b'{"a": "\\u001b"}', b'{"\\u0085": 1}', b"\xff",
                                 "\ufeff{}".encode(), b'{"a": 1' + b"0" * 31 + b"}", b"[" * 100000])
def test_strict_json_refuses(raw):
    with pytest.raises(InvalidJSON):
        strict_json_body(raw)


def test_strict_json_keeps_tabs_line_breaks_and_unicode():
    assert strict_json_body('{"a": "x\\ty\\nz é 🙂", "n": -12, "f": 1.5}'.encode()) == {"a": "x\ty\nz é 🙂", "n": -12,
                                                                                 "f": 1.5}


class _Body(BaseModel):
    a: int


def _strict_app():
    app = create_app("t", "test app")
    router = api_router()

    @router.post("/b")
    async def body(b: _Body, limit: int = 1) -> dict:
        return {"a": b.a}

    app.include_router(router)
    return app


async def test_the_strict_layer_answers_4xx_with_reasons_that_never_echo_the_input():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_strict_app()), base_url="http://t") as client:
        headers = {"content-type": "application/json"}
        for raw in (b'{"a": NaN}', b'{"a": "\\ud800"}', b'{"a": 1, "a": 2}'):
            r = await client.post("/b", content=raw, headers=headers)
            assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
        r = await client.post("/b", content=b'{"a": "\\u00e9secret"}', headers=headers)
        assert r.status_code == 422 and "secret" not in r.text and "input" not in r.json()["detail"][0]
        assert (await client.post("/b", content=b'{"a":1}', headers={"content-type": "text/plain"})).status_code == 415
        assert (await client.post("/b", content=b'{"a":1}')).status_code == 415
        assert (await client.post("/b?x=1", content=b'{"a":1}', headers=headers)).status_code == 422
        assert (await client.post("/b?limit=1&limit=2", content=b'{"a":1}', headers=headers)).status_code == 422
        assert (await client.post("/b?limit=1", content=b'{"a":1}', headers=headers)).status_code == 200

        async def ten_megabytes():
            for _ in range(160):
                yield b"x" * 65536

        r = await client.post("/b", content=ten_megabytes(), headers=headers)
        assert r.status_code == 413 and "bytes" in r.json()["detail"]


def test_every_service_route_is_strict():
    """No route of the three services bypasses the strict layer (a plain APIRouter would)."""
    import os

    from fastapi.routing import iter_route_contexts

    from services.commitments.bootstrap import build as commitments
    from services.commitments.settings import CommitmentsSettings
    from services.invitations.bootstrap import build as invitations
    from services.invitations.settings import InvitationsSettings
    from services.notifications.bootstrap import build as notifications
    from services.notifications.settings import NotificationsSettings
    from shared.platform.http import StrictRoute

    assert os.environ["NTB_ENV"] == "development"
    for build, settings_ in ((invitations, InvitationsSettings), (commitments, CommitmentsSettings),
                             (notifications, NotificationsSettings)):
        _, app = build(settings_())
        for context in iter_route_contexts(app.routes):
            if context.include_in_schema and context.path not in ("/openapi.json", "/docs", "/redoc"):
                assert isinstance(context.original_route, StrictRoute), context.path
