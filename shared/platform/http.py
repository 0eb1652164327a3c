"""FastAPI application factory with the edges' common protections.

One layer for every route, so no route can forget it:
  * `BodySizeLimit` (ASGI) reads the whole body before any handler, at most the app's limit, and
    answers 413 itself, Content-Length given or chunked;
  * `StrictRoute` (every route of `create_app` apps and of `api_router()` routers) holds each
    route to its own body limit (`body_limit(n)`), requires a JSON content type for a body, and
    parses it with shared.platform.strict_json: UTF-8 only, no NaN/Infinity/1e999, no lone surrogates, no
    control characters other than tab and line breaks, no duplicated keys, bounded depth and
    integer size. A refusal is a 4xx with the reason and nothing runs;
  * the validation error handler never echoes the input (FastAPI's default returns it and cannot
    serialize a non-finite number or a surrogate: a 500); messages are made printable and short;
  * every operation documents what it can answer (401/403 when it takes a key, 413/415/422 when it
    takes a body) with the `ErrorBody` schema, and says which role it needs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from pydantic import BaseModel, Field

from shared.platform import strict_json
from shared.platform.auth import Principal
from shared.platform.errors import DomainError
from shared.platform.http_telemetry import instrument
from shared.platform.unit_of_work import Actor, UnitOfWork, open_unit_of_work

MAX_BODY_BYTES = 256 * 1024  # the app's cap; routes choose a lower one with `body_limit`
DEFAULT_ROUTE_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 30  # far above any amount or count; int("9" * 5000) alone costs milliseconds
_BODY_LIMIT_KEY = "x-max-body-bytes"
# Never meaningful in a request: NUL and other C0 controls except tab/LF/CR, DEL, C1 controls,
# lone surrogates and the two non-characters. Field types narrow further (shared.contracts.text).


# ---- error bodies (documented in every operation) ---------------------------------------------------


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where: body, path, query or header, then the field")
    msg: str = Field(description="What is wrong (never the value sent)")
    type: str = Field(description="Machine-readable kind, e.g. missing, string_too_long, json_invalid")


class StateDetail(BaseModel):
    message: str
    current_status: str


class ErrorBody(BaseModel):
    """Every 4xx: `detail` is a reason, a list of validation issues, or a reason with the current state."""

    detail: str | list[ValidationIssue] | StateDetail


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "A header is malformed (the reason is in `detail`)",
    401: "No API key, or an invalid or revoked one",
    403: "The key's role or region may not do this",
    404: "No such resource",
    409: "Not possible in the current state (the reason is in `detail`)",
    410: "No longer available (the reason is in `detail`)",
    412: "The If-Match version is stale",
    413: "The body exceeds this operation's limit",
    415: "A body must be sent as application/json",
    422: "The request breaks a rule or is not valid JSON of the documented shape",
    429: "Allowed, but not this often: `detail` says when to try again",
}


def error(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these codes with the error schema; `descriptions` override by 'e409' etc."""
    return {code: {"model": ErrorBody, "description": descriptions.get(f"e{code}", ERROR_DESCRIPTIONS[code])}
            for code in codes}


def body_limit(max_bytes: int) -> dict[str, Any]:
    """`openapi_extra` giving an operation its own body limit (documented as x-max-body-bytes)."""
    return {_BODY_LIMIT_KEY: max_bytes}


# ---- strict JSON ------------------------------------------------------------------------------------


class InvalidJSON(ValueError):
    """The body is not strict JSON; the message says why without quoting it."""


# Bodies are read by the one strict JSON parser, with the HTTP edge's bounds and its text rule.
_LIMITS = strict_json.Limits(max_bytes=MAX_BODY_BYTES, max_depth=MAX_JSON_DEPTH, max_int_digits=MAX_INT_DIGITS,
                             forbidden_text=strict_json.CONTROL_TEXT)


def strict_json_body(raw: bytes) -> Any:
    """The parsed body, or InvalidJSON with the reason."""
    try:
        return strict_json.loads(raw, _LIMITS, what="the body")
    except strict_json.JsonRefused as exc:
        raise InvalidJSON(str(exc)) from None


def _invalid_json(reason: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body"], "msg": reason, "type": "json_invalid"}])


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False  # JSON is UTF-8 (RFC 8259); a body declared otherwise is not what we parse
    return True


# ---- the route class ---------------------------------------------------------------------------------


def _roles_of(dependant: Any) -> tuple[str, ...] | None:
    """The roles a `shared.platform.auth.require` dependency anywhere in the tree admits (None: no key needed)."""
    roles = getattr(dependant.call, "__roles__", None)
    if roles is not None:
        return tuple(roles)
    for sub in dependant.dependencies:
        found = _roles_of(sub)
        if found is not None:
            return found
    return None


class StrictRoute(APIRoute):
    """An APIRoute whose body goes through `strict_json` and whose OpenAPI lists every answer."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.body_limit = (self.openapi_extra or {}).get(_BODY_LIMIT_KEY, DEFAULT_ROUTE_BODY_BYTES)
        roles = _roles_of(self.dependant)
        codes: list[int] = []
        if roles is not None:
            codes += [401, 403]
            who = ", ".join(sorted(roles))
            note = f"Needs an API key with the role: {who}." if roles else "Needs an API key."
        else:
            note = (self.openapi_extra or {}).get("x-credential", "No API key.")
        self.description = f"{self.description}\n\n{note}".strip()
        has_params = bool(self.dependant.path_params or self.dependant.query_params
                          or self.dependant.header_params)
        if self.body_field is not None:
            codes += [413, 415, 422]
            if self.openapi_extra is None:
                self.openapi_extra = {}
            self.openapi_extra.setdefault(_BODY_LIMIT_KEY, self.body_limit)
        elif has_params:
            codes.append(422)
        documented: dict[int | str, dict[str, Any]] = {
            int(c) if str(c).isdigit() else c: dict(v) for c, v in self.responses.items()}
        for status in codes:
            documented.setdefault(status, {"description": ERROR_DESCRIPTIONS[status]})
        for code, entry in documented.items():
            if isinstance(code, int) and 400 <= code < 500:
                entry.setdefault("model", ErrorBody)
        self.responses = dict(sorted(documented.items(), key=lambda item: str(item[0])))
        self.response_fields = {
            code: create_model_field(name=f"Response_{code}_{self.unique_id}", type_=entry["model"],
                                     mode="serialization")
            for code, entry in documented.items() if entry.get("model")}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        has_body = self.body_field is not None
        limit = (self.openapi_extra or {}).get(_BODY_LIMIT_KEY, DEFAULT_ROUTE_BODY_BYTES)
        known_query = {p.alias for p in self.dependant.query_params}

        async def strict(request: Request) -> Response:
            # A query parameter the operation does not take, or one given twice, is refused rather
            # than ignored or last-one-wins: the request does not mean what its sender thinks.
            names = [name for name, _ in request.query_params.multi_items()]
            for name in names:
                if name not in known_query:
                    raise HTTPException(422, [{"loc": ["query", strict_json.printable(name, 60)],
                                               "type": "extra_forbidden",
                                               "msg": "this operation takes no such query parameter"}])
                if names.count(name) > 1:
                    raise HTTPException(422, [{"loc": ["query", name], "type": "duplicate",
                                               "msg": "a query parameter is given more than once"}])
            if not has_body:
                return await handler(request)
            raw = await request.body()
            if len(raw) > limit:
                raise HTTPException(413, f"request body exceeds {limit} bytes")
            if raw:
                if not _is_json(request.headers.get("content-type")):
                    raise HTTPException(415, "send the body as application/json")
                try:
                    request._json = strict_json_body(raw)  # noqa: SLF001 - Starlette's Request.json() returns this cache
                except InvalidJSON as exc:
                    raise _invalid_json(str(exc)) from None
            return await handler(request)

        return strict


def api_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes are `StrictRoute`s: every service router is made with this."""
    return APIRouter(route_class=StrictRoute, **kwargs)


# ---- ASGI body cap -----------------------------------------------------------------------------------


class BodySizeLimit:
    """Read the whole body (at most `max_bytes`) before the app sees it; 413 above, chunked or not."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: pass it on
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

    async def _reject(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # A page answers with a page (shared.platform.web.serve_page_errors sets app.state.page_refusal).
        refusal = getattr(getattr(scope.get("app"), "state", None), "page_refusal", None)
        page = refusal(scope.get("path", ""), 413) if refusal is not None else None
        if page is not None:
            page.headers["connection"] = "close"
            await page(scope, receive, send)
            return
        body = json.dumps({"detail": f"request body exceeds {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[dict[str, Any]], receive: Any) -> Callable[[], Coroutine[Any, Any, dict[str, Any]]]:
    pending = list(messages)

    async def replay() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        message: dict[str, Any] = await receive()
        return message  # after the body: waits for the disconnect, as the server's would

    return replay


# ---- error handlers ----------------------------------------------------------------------------------


def issues(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without `input` or `ctx`: loc, msg, type, each printable."""
    cut = strict_json.printable
    return [{"loc": [part if isinstance(part, int) else cut(str(part), 100) for part in e.get("loc", ())],
             "msg": cut(str(e.get("msg", "")), 300), "type": cut(str(e.get("type", "")), 60)}
            for e in errors[:20]]


async def _validation_failed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": issues(list(exc.errors()))}, status_code=422)


async def _unstorable(_: Request, __: Exception) -> JSONResponse:
    # PostgreSQL data errors (SQLSTATE class 22: NUL in text, numbers or dates out of range) and
    # date arithmetic overflows are caused by the request's values: 422, and the transaction around
    # the write has rolled back. The message is fixed: the database's own may quote the input.
    return JSONResponse({"detail": "a value cannot be stored: out of range, or text containing NUL (\\u0000)"},
                        status_code=422)


async def _refused(request: Request, exc: Exception) -> Response:
    """The one mapping of the error family to HTTP answers (shared.platform.errors)."""
    assert isinstance(exc, DomainError)
    refusal = getattr(request.app.state, "page_refusal", None)
    page: Response | None = refusal(request.url.path, exc.http_status) if refusal is not None else None
    if page is not None:  # a page's route let a refusal through: the person gets a page, not JSON
        return page
    detail: str | dict[str, str] = {"message": exc.message, **exc.detail} if exc.detail else exc.message
    return JSONResponse({"detail": detail}, status_code=exc.http_status)


def create_app(title: str, description: str, *, version: str = "1.0.0", max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    # No trailing-slash redirects: a request for a path that is not an operation gets a 404, not a 307.
    app = FastAPI(title=title, description=description, version=version, redirect_slashes=False)
    app.router.route_class = StrictRoute
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    instrument(app)  # outermost: trace context, access log, RED metrics (shared.platform.http_telemetry)
    app.add_exception_handler(asyncpg.exceptions.DataError, _unstorable)
    app.add_exception_handler(OverflowError, _unstorable)
    app.add_exception_handler(DomainError, _refused)
    return app


def unit_of_work(who: Callable[..., Any]) -> Any:
    """`uow: UnitOfWork = unit_of_work(require(Role.X))`: the request's unit of work, acting as the caller.

    `who` is the dependency that names the caller: an API key's `require(...)` or a page session
    (a Principal), or one that returns an `Actor` itself (e.g. the invitation an RSVP token names).
    Scoped to the route function, so the transaction commits (or rolls back on a raised refusal)
    before the answer is sent: a 2xx always means committed."""
    async def dependency(request: Request, caller: Principal | Actor = Depends(who)) -> AsyncIterator[UnitOfWork[Any]]:
        rt = request.app.state.runtime
        actor = caller if isinstance(caller, Actor) else Actor.of(caller)
        async with open_unit_of_work(rt.pool, rt.outbox, rt.clock(), actor, rt.store) as uow:
            yield uow

    return Depends(dependency, scope="function")
