"""Request parameters: query, urlencoded form or JSON object body, merged (the body wins) and checked once."""

from __future__ import annotations

import json
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl

from aiohttp import web

from app.wallet.config import MAX_PARAM_CHARS
from app.wallet.errors import ApiError
from app.wallet.paths import path_parameter_problem

_PARAMS_KEY = web.RequestKey("params", dict)

V = TypeVar("V")


async def read_params(request: web.Request) -> dict[str, str]:
    """All parameters of the request as strings; cached on the request. Bad input is a 400."""
    if _PARAMS_KEY in request:
        return request[_PARAMS_KEY]
    params = _checked(_from_query(request.rel_url.raw_query_string))
    params.update(_checked(await _from_body(request)))  # each source checked: the body may not hide a bad query
    request[_PARAMS_KEY] = params
    return params


async def read_json_body(request: web.Request) -> Any:
    """The body of a JSON-only endpoint as a document (an empty body is {}); 415 for any other type.

    The query string is still checked as every request's is."""
    _checked(_from_query(request.rel_url.raw_query_string))
    raw = await _body(request)
    if not raw:
        return {}
    if not _is_json(request.content_type):
        raise ApiError(415, "This endpoint takes a JSON body (Content-Type: application/json)")
    return _parse_json(raw)


def _from_query(raw_query: str) -> dict[str, str]:
    """The query string decoded strictly: aiohttp's `request.query` turns bad UTF-8 into U+FFFD, which
    would let `?wallet_path=%FF` name a wallet called "\ufffd"."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ApiError(400, "Query string is not valid UTF-8") from None
    return _from_pairs(pairs, where="query")


#: Bodies sent without a useful Content-Type (curl -d, fetch with a string) are sniffed for JSON.
_SNIFFED_TYPES = frozenset({"", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"})


async def _from_body(request: web.Request) -> dict[str, str]:
    raw = await _body(request)
    if not raw:
        return {}
    content_type = request.content_type
    if _is_json(content_type) or (content_type in _SNIFFED_TYPES and raw.lstrip()[:1] in (b"{", b"[")):
        return _from_json(raw)
    if content_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise ApiError(400, "Request body is not valid UTF-8") from None
        return _from_pairs(pairs, where="form body")
    raise ApiError(415, "Send parameters as a query string, a form or a JSON object")


async def _body(request: web.Request) -> bytes:
    """The request's body; empty when it has none or only white space."""
    if not request.body_exists:
        return b""
    raw = await request.read()
    return raw if raw.strip() else b""


def _is_json(content_type: str) -> bool:
    return content_type in ("application/json", "text/json") or content_type.endswith("+json")


def _from_json(raw: bytes) -> dict[str, str]:
    document = _parse_json(raw)
    if not isinstance(document, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return {name: _json_scalar(name, value) for name, value in document.items()}


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "Request body is not valid UTF-8") from None
    except (ValueError, RecursionError):  # JSONDecodeError, an over-long integer, deep nesting
        raise ApiError(400, "Request body is not valid JSON") from None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return _from_pairs(pairs, where="JSON body")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: The only parameters a JSON body may give as something other than a string.
JSON_BOOLEANS = frozenset({"async"})
JSON_INTEGERS = frozenset({"offset", "limit", "wait", "index"})


def _json_scalar(name: str, value: Any) -> str:
    """A JSON value as the parameter string; `{"wallet_path": false}` must not name a wallet "false"."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        if name in JSON_BOOLEANS:
            return "true" if value else "false"
    elif isinstance(value, int) and name in JSON_INTEGERS:
        return str(value)
    raise ApiError(400, f"Parameter {name} must be a string")


def _from_pairs(pairs: list[tuple[str, V]], *, where: str) -> dict[str, V]:
    params: dict[str, V] = {}
    for name, value in pairs:
        if name in params:
            raise ApiError(400, f"Parameter {name} is given more than once in the {where}")
        params[name] = value
    return params


#: Parameters that name a file or folder: a control character in one is refused before any handler runs.
#: `wallet_path` and the names (`new_name`, `to`) meet the same rule where the endpoint checks them, in
#: the seed's order: a wallet path with one can name no registered wallet (`wallet_argument`), and a
#: new name with one is an invalid name.
PATH_PARAMETERS = frozenset({"destination", "location", "zip_path", "path"})


def _checked(params: dict[str, str]) -> dict[str, str]:
    for name, value in params.items():
        _check(name, value)
    return params


def _check(name: str, value: str) -> None:
    if "\0" in name or "\0" in value:
        raise ApiError(400, f"Parameter {name.replace(chr(0), '')} contains a NUL character")
    if len(name) > MAX_PARAM_CHARS:
        raise ApiError(400, f"A parameter name is longer than {MAX_PARAM_CHARS} characters")
    if len(value) > MAX_PARAM_CHARS:
        raise ApiError(400, f"Parameter {name} is longer than {MAX_PARAM_CHARS} characters")
    if any("\ud800" <= c <= "\udfff" for c in name + value):
        raise ApiError(400, f"Parameter {name} is not valid UTF-8")
    if name in PATH_PARAMETERS and value.strip():  # a blank one is missing: each endpoint answers that its way
        problem = path_parameter_problem(name, value)
        if problem:
            raise ApiError(400, problem)


@overload
def choice(params: dict[str, str], name: str, choices: tuple[str, ...], *, default: str) -> str: ...
@overload
def choice(params: dict[str, str], name: str, choices: tuple[str, ...], *, default: None = None) -> str | None: ...
def choice(params: dict[str, str], name: str, choices: tuple[str, ...], *, default: str | None = None) -> str | None:
    """One of `choices` (matched without regard to case), `default` when absent; an empty or other value is a 400."""
    raw = params.get(name)
    if raw is None:
        return default
    for option in choices:
        if raw.lower() == option.lower():
            return option
    raise ApiError(400, f"Parameter {name} must be one of {', '.join(choices)}")


def flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def integer(params: dict[str, str], name: str, *, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Parameter {name} must be an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(400, f"Parameter {name} must be {bound}")
    return value
