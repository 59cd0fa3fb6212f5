"""The OpenAPI 3.1 document at /openapi.json, generated from the route table."""

from __future__ import annotations

from typing import Any

import msgspec

from taube import __version__
from taube.protocol.api import Problem
from taube.protocol.errors import ERRORS
from taube.server.api import AUTH_ERRORS
from taube.server.http import Route


def openapi_document(routes: list[Route]) -> dict[str, Any]:
    types: list[Any] = [Problem]
    for route in routes:
        types += [t for t in (route.request, route.response) if t is not None]
    schemas, components = msgspec.json.schema_components(
        list(dict.fromkeys(types)), ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(dict.fromkeys(types), schemas, strict=True))
    problem = {"application/problem+json": {"schema": by_type[Problem]}}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        codes = list(route.errors) + (list(AUTH_ERRORS) if route.auth else [])
        codes += (
            ["request.malformed", "request.invalid", "request.too_large"] if route.request else []
        )
        codes.append("internal")
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "Success."}
        if route.response is not None:
            ok["content"] = {"application/json": {"schema": by_type[route.response]}}
        elif route.response_media is not None:
            binary = {"type": "string", "format": "binary"}
            ok["content"] = {route.response_media: {"schema": binary}}
        responses[str(route.status)] = ok
        for code in codes:
            status = str(ERRORS[code].http_status)
            entry = responses.setdefault(status, {"description": "", "content": problem})
            entry["description"] = ", ".join(filter(None, [entry["description"], code]))
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "responses": responses,
        }
        if route.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[route.request]}},
            }
        elif route.request_media is not None:
            binary = {"type": "string", "format": "binary"}
            operation["requestBody"] = {
                "required": True,
                "content": {route.request_media: {"schema": binary}},
            }
        if route.auth:
            operation["security"] = [{"deviceToken": []}]
        elif route.path.startswith("/v1/admin/"):
            operation["security"] = [{"adminToken": []}]
        params = [seg[1:-1] for seg in route.path.split("/") if seg.startswith("{")]
        parameters: list[dict[str, Any]] = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if p == "id" else "string"},
            }
            for p in params
        ]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
            for name, kind in route.query
        ]
        parameters += [
            {"name": name, "in": "header", "required": True, "schema": {"type": kind}}
            for name, kind in route.headers
        ]
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Taube HTTP API",
            "version": __version__,
            "description": "Accounts, devices, users, groups, end-to-end encryption "
            "keys, attachment blobs and blocks. Messages travel over the "
            "WebSocket at /v1/ws (see docs/protocol.md).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "deviceToken": {"type": "http", "scheme": "bearer"},
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's [admin] token (docs/operations.md).",
                },
            },
        },
    }
