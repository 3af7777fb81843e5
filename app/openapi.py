"""The OpenAPI 3.1 document, derived from the route table so that it never drifts from what exists."""
from __future__ import annotations

import re
from typing import Any

from app import __version__

_PATH_PARAM = re.compile(r"\{(\w+)\}")

ERROR_SCHEMA = {
    "type": "object",
    "description": "api.md's error shape; the seeds' endpoints answer their own documented bodies",
    "properties": {"success": {"type": "boolean"}, "error": {"type": "string"}, "code": {"type": "integer"}},
}


def build_openapi(routes: Any) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        item = paths.setdefault(route.path, {})
        for method in route.methods:
            item[method.lower()] = _operation(route, method)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CloudCoin Wallet Server",
            "version": __version__,
            "description": "Local wallet server: back up, rename and inspect CloudCoin wallets.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }


def _operation(route: Any, method: str) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    for param in (p for p in route.params if not p.secret):
        parameters.append(
            {
                "name": param.name,
                "in": "query",
                "required": param.required and method == "GET",
                "description": param.description,
                "schema": {"type": param.type, "maxLength": 4096} if param.type == "string" else {"type": param.type},
            }
        )
    operation: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{method.lower()}_{route.handler.__name__}_{_slug(route.path)}",
        "parameters": parameters,
        "responses": {
            "200": {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if method == "POST" and route.params:
        operation["requestBody"] = {
            "required": False,
            "content": {
                media: {"schema": {"type": "object", "properties": {p.name: {"type": p.type} for p in route.params}}}
                for media in ("application/json", "application/x-www-form-urlencoded")
            },
        }
    if route.deprecated:
        operation["deprecated"] = True
    if route.job:
        operation["responses"]["202"] = {"description": "Job accepted (Prefer: respond-async or async=true)"}
    return operation


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
