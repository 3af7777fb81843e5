"""The OpenAPI 3.1 document, derived from the route table so that it never drifts from what exists."""

from __future__ import annotations

import re
from typing import Any

from app import __version__

_PATH_PARAM = re.compile(r"\{(\w+)\}")

#: The three error shapes: api.md's, and the backup seed's two (app.wallet.errors draws the tree).
ERROR_SCHEMA = {
    "anyOf": [
        {
            "type": "object",
            "required": ["success", "error", "code"],
            "properties": {"success": {"const": False}, "error": {"type": "string"}, "code": {"type": "integer"}},
        },
        {
            "type": "object",
            "required": ["error", "message", "code"],
            "properties": {"error": {"const": True}, "message": {"type": "string"}, "code": {"type": "integer"}},
        },
        {
            "type": "object",
            "required": ["status", "error", "error_code"],
            "properties": {
                "status": {"const": "error"},
                "error": {"type": "string"},
                "error_code": {"type": "integer"},
            },
        },
    ],
}
ACCEPTED_SCHEMA = {
    "type": "object",
    "required": ["success", "job_id", "task_id", "status", "status_url", "events_url"],
    "properties": {
        "success": {"const": True},
        "job_id": {"type": "string"},
        "task_id": {"type": "string"},
        "status": {"type": "string"},
        "status_url": {"type": "string"},
        "events_url": {"type": "string"},
    },
}


#: The fields a client sends to create (or, all optional, to change) a backup plan.
PLAN_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "wallet_path": {"type": "string", "description": "Create only; default the active wallet"},
        "destinations": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 8},
        "schedule": {"type": "string", "description": "5-field cron, or @hourly, @daily, @weekly, @monthly, @yearly"},
        "keep": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                rule: {"type": "integer", "minimum": 0} for rule in ("last", "daily", "weekly", "monthly", "yearly")
            },
        },
        "verify": {"const": True},
        "encrypted_only": {"type": "boolean"},
        "enabled": {"type": "boolean"},
    },
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
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA, "Accepted": ACCEPTED_SCHEMA, "PlanInput": PLAN_INPUT_SCHEMA}},
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
                "schema": _schema(param),
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
    if route.json_body and not route.job:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PlanInput"}}},
        }
        operation["responses"]["415"] = {
            "description": "The body is not JSON",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    elif method == "POST" and route.params:
        operation["requestBody"] = {
            "required": False,
            "content": {
                media: {"schema": {"type": "object", "properties": {p.name: _schema(p) for p in route.params}}}
                for media in ("application/json", "application/x-www-form-urlencoded")
            },
        }
    if route.deprecated:
        operation["deprecated"] = True
    if route.job:
        operation["responses"]["202"] = {
            "description": "Job accepted (Prefer: respond-async or async=true)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        }
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        operation["responses"]["422"] = {
            "description": "The request's Idempotency-Key header was used before for another method, path or "
            "parameters (no job made); the same request again within 24 h gets the same job",
            "content": error,
        }
        operation["responses"]["503"] = {
            "description": "Too many jobs queued, shutting down, or the job store cannot be written (no job made)",
            "content": error,
        }
    if route.path.endswith("/events"):
        operation["responses"]["200"] = {
            "description": "Server-Sent Events: the job's state, then each change, ending with its final status",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    return operation


def _schema(param: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.type}
    if param.type == "string":
        schema["maxLength"] = 4096
        if param.required:
            schema["minLength"] = 1
    if param.choices:
        schema["enum"] = list(param.choices)
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    return schema


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
