"""HTTP plumbing: typed bodies in, typed bodies out, every error as problem+json.

``route`` registers a handler together with its request and response types, so
that the same table serves the router and the OpenAPI document (openapi.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from taube.protocol.api import Problem
from taube.protocol.errors import TaubeError
from taube.store.base import StoreUnavailable

log = logging.getLogger("taube.http")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    request: type[Any] | None = None
    response: type[Any] | None = None
    status: int = 200
    auth: bool = True
    errors: tuple[str, ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    """Optional query parameters: (name, JSON schema type)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers the route reads: (name, JSON schema type)."""
    request_media: str | None = None
    """A raw (not JSON) request body of this media type."""
    response_media: str | None = None
    """A raw (not JSON) response body of this media type."""


def json_response(body: msgspec.Struct | None, status: int = 200) -> web.Response:
    if body is None:
        return web.Response(status=status)
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def problem_response(exc: TaubeError) -> web.Response:
    problem = Problem(
        type=f"urn:taube:error:{exc.code}",
        title=exc.spec.title,
        status=exc.spec.http_status,
        code=exc.code,
        detail=exc.message,
        details=exc.details or None,
    )
    response = web.Response(
        body=msgspec.json.encode(problem),
        status=problem.status,
        content_type="application/problem+json",
    )
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="taube"'
    if "retry_after_s" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after_s"])
    return response


async def read_body(request: web.Request, kind: type[T]) -> T:
    """Decode the JSON body as ``kind``; raises a TaubeError saying what is wrong."""
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TaubeError("request.too_large") from None
    try:
        return msgspec.json.decode(data or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        try:  # Typed decoding can stop at a type error before it sees broken JSON.
            msgspec.json.decode(data)
        except (msgspec.DecodeError, RecursionError):
            raise TaubeError("request.malformed") from None
        raise TaubeError("request.invalid", str(exc)) from None
    except msgspec.DecodeError:
        raise TaubeError("request.malformed") from None
    except RecursionError:  # JSON nested thousands deep (found by tests/security fuzzing)
        raise TaubeError("request.malformed", "The JSON is nested too deeply.") from None


_HTTP_CODES = {
    404: "request.not_found",
    405: "request.method_not_allowed",
    413: "request.too_large",
}


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TaubeError as exc:
        return problem_response(exc)
    except StoreUnavailable:
        return problem_response(TaubeError("server.unavailable", retry_after_s=1))
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status)
        if code is None or exc.status < 400:
            raise
        return problem_response(TaubeError(code))
    except Exception:
        log.exception("request failed: %s %s", request.method, request.path)
        return problem_response(TaubeError("internal"))
