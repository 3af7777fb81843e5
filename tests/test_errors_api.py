"""Every answer is JSON: unknown route 404, wrong method 405, a crash 500 with a request id; health and
the OpenAPI description, which lists every route the app serves."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from app.main import create_app


async def assert_json_error(response, status: int, message: str | None = None) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    assert response.charset == "utf-8"
    text = await response.text()
    assert "<html" not in text.lower()
    body = await response.json()
    assert body["success"] is False and body["code"] == status
    if message is not None:
        assert body["error"] == message
    return body


# `GET /` is the status page (HTML, the one exception to JSON-only): tests/test_page_files.py.
@pytest.mark.parametrize(
    "path", ["/api", "/api/nope", "/api/wallets/list/extra", "/index.html", "/api/health/", "/static/"]
)
async def test_unknown_route_is_json_404(client, path):
    await assert_json_error(await client.get(path), 404, "Not Found")


async def test_unknown_route_with_any_method_is_json_404(client):
    await assert_json_error(await client.post("/api/nope", json={"a": 1}), 404)
    await assert_json_error(await client.delete("/api/nope"), 404)


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("POST", "/api/health", {"GET"}),
        ("DELETE", "/api/wallets/list", {"GET"}),
        ("POST", "/api/wallets/balance", {"GET"}),
        ("PUT", "/api/wallets/create", {"GET", "POST"}),
        ("PATCH", "/api/wallets/switch", {"GET", "POST"}),
    ],
)
async def test_wrong_method_is_json_405_with_allow(client, method, path, allowed):
    response = await client.request(method, path)
    await assert_json_error(response, 405, "Method Not Allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


async def test_plain_options_without_preflight_headers_is_json_405(client):
    response = await client.options("/api/wallets/list")
    await assert_json_error(response, 405)


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("something deep broke: secret detail")


@pytest.fixture
async def boom_client(aiohttp_client, make_config):
    app = create_app(make_config())
    app.router.add_get("/boom", boom)
    return await aiohttp_client(app)


async def test_unexpected_exception_is_json_500_with_request_id_and_logged_traceback(boom_client, caplog):
    with caplog.at_level(logging.ERROR):
        response = await boom_client.get("/boom")
    body = await assert_json_error(response, 500, "Internal server error")
    assert set(body) == {"success", "error", "code", "request_id"}
    assert body["request_id"] and body["request_id"] == response.headers["X-Request-Id"]
    assert "secret detail" not in await response.text()
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert record.exc_info[0] is RuntimeError
    assert body["request_id"] in record.getMessage()
    assert "/boom" in record.getMessage()


async def test_request_id_from_the_client_is_kept(boom_client, caplog):
    with caplog.at_level(logging.ERROR):
        response = await boom_client.get("/boom", headers={"X-Request-Id": "trace-42"})
    assert (await response.json())["request_id"] == "trace-42"
    assert response.headers["X-Request-Id"] == "trace-42"


async def test_unprintable_or_long_request_id_is_not_echoed_as_given(boom_client, caplog):
    with caplog.at_level(logging.ERROR):
        response = await boom_client.get("/boom", headers={"X-Request-Id": "bad\tid"})
    request_id = (await response.json())["request_id"]
    assert request_id != "bad\tid" and request_id.isprintable()
    with caplog.at_level(logging.ERROR):
        response = await boom_client.get("/boom", headers={"X-Request-Id": "x" * 500})
    assert len((await response.json())["request_id"]) <= 64


async def test_every_answer_carries_a_request_id(client):
    for response in (await client.get("/api/health"), await client.get("/nope")):
        assert response.headers["X-Request-Id"]


async def test_expected_errors_are_not_logged_as_errors(client, caplog):
    with caplog.at_level(logging.WARNING):
        await client.get("/api/wallets/balance", params={"wallet_path": "Nope"})
        await client.get("/nope")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- system: health and the OpenAPI description ------------------------------------------------


async def test_health_answers_status_version_uptime_and_job_counts(client):
    response = await client.get("/api/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and body["version"]
    assert isinstance(body["uptime_s"], (int, float)) and body["uptime_s"] >= 0
    assert set(body["jobs"]) >= {"queued", "running"}


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route registered on the app, as OpenAPI writes them."""
    operations = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        operations.add((route.method, path))
    return operations


async def test_openapi_is_3_1_and_lists_every_route_the_app_serves(client):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] and document["info"]["version"]
    described = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = served_operations(client.server.app)
    assert served, "the app serves no route?"
    # The status page's own files are not API endpoints (api.md): served, but not in the description.
    page = {("GET", "/"), ("GET", "/static/{name}")}
    assert page <= served
    served -= page
    assert served - described == set(), "routes missing from /api/openapi.json"
    assert described - served == set(), "/api/openapi.json describes routes that do not exist"


async def test_openapi_operations_are_well_formed(client):
    document = await (await client.get("/api/openapi.json")).json()
    ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            ids.append(operation["operationId"])
            assert operation["responses"], (method, path)
            for parameter in operation.get("parameters", []):
                assert parameter["in"] in ("query", "path") and parameter["name"]
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path
    assert len(ids) == len(set(ids))
    wallet_param = [
        p for p in document["paths"]["/api/wallets/balance"]["get"]["parameters"] if p["name"] == "wallet_path"
    ]
    assert wallet_param


async def test_openapi_needs_the_token_like_any_other_route(make_client):
    client = await make_client(api_token="t")
    assert (await client.get("/api/openapi.json")).status == 401
    assert (await client.get("/api/openapi.json", headers={"Authorization": "Bearer t"})).status == 200


async def test_openapi_marks_the_legacy_rename_deprecated(client):
    document = await (await client.get("/api/openapi.json")).json()
    assert document["paths"]["/api/wallets/active/rename"]["get"]["deprecated"] is True
    assert "deprecated" not in document["paths"]["/api/wallets/rename"]["get"]
