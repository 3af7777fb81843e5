"""Request parameters: query, form and JSON body mean the same; bad input is a JSON 4xx with no effect."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from aiohttp import web

from app.main import create_app
from app.wallet.config import MAX_BODY_BYTES, MAX_PARAM_CHARS
from app.web.params import read_params
from tests.conftest import GuardedTestServer


async def echo(request: web.Request) -> web.Response:
    return web.json_response(await read_params(request))


@pytest.fixture
async def echo_client(aiohttp_client, make_config):
    """The real app (its middlewares, its limits) with one extra route that answers the parameters."""
    app = create_app(make_config())
    app.router.add_route("*", "/echo", echo)
    return await aiohttp_client(GuardedTestServer(app))


async def params_of(response) -> dict:
    assert response.status == 200, await response.text()
    return await response.json()


async def test_query_form_and_json_give_the_same_parameters(echo_client):
    expected = {"wallet_path": "My Wallet/ü&x=1", "limit": "10"}
    from_query = await params_of(await echo_client.get("/echo", params=expected))
    from_form = await params_of(await echo_client.post("/echo", data=expected))
    from_json = await params_of(await echo_client.post("/echo", json=expected))
    assert from_query == from_form == from_json == expected


async def test_json_integers_and_booleans_only_where_the_parameter_is_one(echo_client):
    body = await params_of(await echo_client.post("/echo", json={"limit": 10, "async": True, "index": 0}))
    assert body == {"limit": "10", "async": "true", "index": "0"}


@pytest.mark.parametrize(
    "document",
    [
        {"wallet_path": False},
        {"wallet_path": 12},
        {"new_name": 1.5},
        {"password": True},
        {"wallet_path": None},
        {"limit": True},
        {"limit": 1.5},
        {"async": 1},
    ],
)
async def test_json_values_of_the_wrong_type_are_400(echo_client, document):
    response = await echo_client.post("/echo", json=document)
    assert response.status == 400
    name = next(iter(document))
    assert await response.json() == {"success": False, "error": f"Parameter {name} must be a string", "code": 400}


async def test_a_bad_query_value_is_refused_even_when_the_body_gives_the_same_name(echo_client):
    response = await echo_client.post("/echo?wallet_path=" + "A" * 5000, json={"wallet_path": "ok"})
    assert response.status == 400
    assert "longer than 4096" in (await response.json())["error"]


async def test_a_broken_body_is_refused_before_a_handler_without_parameters_runs(client):
    login = await client.post("/api/system/login", json={"password": "pw"})
    assert login.status == 200
    response = await client.post("/api/system/logout", data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert response.status == 400
    status = await (await client.get("/api/system/encryption-status")).json()
    assert status["key_set"] is True  # the broken request changed nothing


async def test_body_wins_over_query(echo_client):
    body = await params_of(
        await echo_client.post("/echo?wallet_path=FromQuery&only=q", json={"wallet_path": "FromBody"})
    )
    assert body == {"wallet_path": "FromBody", "only": "q"}
    body = await params_of(await echo_client.post("/echo?wallet_path=FromQuery", data={"wallet_path": "FromForm"}))
    assert body == {"wallet_path": "FromForm"}


async def test_json_without_content_type_is_understood(echo_client):
    # curl -d '{"a": "b"}' sends it as a form; a script may send no content type at all.
    for headers in ({"Content-Type": "application/x-www-form-urlencoded"}, {}, {"Content-Type": "text/plain"}):
        body = await params_of(await echo_client.post("/echo", data=b'{"a": "b"}', headers=headers))
        assert body == {"a": "b"}


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "text/json", "application/vnd.api+json"])
async def test_json_media_types_are_understood(echo_client, content_type):
    body = await params_of(await echo_client.post("/echo", data=b'{"a": "b"}', headers={"Content-Type": content_type}))
    assert body == {"a": "b"}


async def test_empty_body_is_no_parameters(echo_client):
    assert (
        await params_of(await echo_client.post("/echo", data=b"", headers={"Content-Type": "application/json"})) == {}
    )


async def test_plus_and_percent_in_the_query_decode_as_in_a_form(echo_client):
    body = await params_of(await echo_client.get("/echo?wallet_path=My+Wallet%2B1%20x&e="))
    assert body == {"wallet_path": "My Wallet+1 x", "e": ""}


async def expect_error(response, status: int, *fragments: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["success"] is False and body["code"] == status
    for fragment in fragments:
        assert fragment in body["error"]
    return body


@pytest.mark.parametrize(
    "document",
    [b"[1, 2]", b'["wallet_path"]', b'"Default"', b"42", b"true", b"null"],
)
async def test_json_that_is_not_an_object_is_400(echo_client, document):
    response = await echo_client.post("/echo", data=document, headers={"Content-Type": "application/json"})
    await expect_error(response, 400, "JSON object")


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], []])
async def test_nested_json_value_is_400(echo_client, value):
    response = await echo_client.post("/echo", json={"wallet_path": value})
    await expect_error(response, 400, "wallet_path")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"wallet_path": ',
        b"{'a': 1}",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b"[" * 100_000,
        b'{"a": "\xff"}',
    ],
)
async def test_invalid_json_is_400(echo_client, raw):
    response = await echo_client.post("/echo", data=raw, headers={"Content-Type": "application/json"})
    await expect_error(response, 400)


async def test_non_utf8_form_body_is_400(echo_client):
    response = await echo_client.post(
        "/echo", data=b"wallet_path=%FF%FE", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    await expect_error(response, 400, "UTF-8")


async def test_non_utf8_query_is_400(echo_client):
    await expect_error(await echo_client.get("/echo?wallet_path=%FF%FE"), 400, "UTF-8")


async def send(echo_client, where: str, params: dict[str, str]):
    """The same parameters as a query string, an urlencoded form or a JSON body."""
    if where == "query":
        return await echo_client.get("/echo", params=params)
    if where == "form":
        return await echo_client.post("/echo", data=params)
    return await echo_client.post("/echo", json=params)


@pytest.mark.parametrize("where", ["query", "form", "json"])
async def test_nul_in_a_parameter_is_400(echo_client, where):
    params = {"wallet_path": "Def\0ault"}
    response = await send(echo_client, where, params)
    await expect_error(response, 400, "NUL")


async def test_nul_in_a_parameter_name_is_400(echo_client):
    await expect_error(await echo_client.get("/echo?wal%00let=x"), 400, "NUL")


@pytest.mark.parametrize("where", ["query", "form", "json"])
async def test_parameter_over_4096_characters_is_400(echo_client, where):
    # In a query, 4,097 ASCII characters fit the 16 KiB request line and reach the check; 4,097 "é"
    # (six characters each, percent-encoded) do not, and are the 414 of the line limit (below).
    params = {"wallet_path": ("A" if where == "query" else "é") * (MAX_PARAM_CHARS + 1)}
    response = await send(echo_client, where, params)
    await expect_error(response, 400, "4096")


async def test_parameter_of_exactly_4096_characters_is_accepted(echo_client):
    value = "é" * MAX_PARAM_CHARS
    assert await params_of(await echo_client.post("/echo", json={"p": value})) == {"p": value}


async def test_parameter_name_over_4096_characters_is_400(echo_client):
    await expect_error(await echo_client.post("/echo", json={"n" * (MAX_PARAM_CHARS + 1): "x"}), 400, "4096")


@pytest.mark.parametrize(
    "request_args",
    [
        {"method": "GET", "path": "/echo?wallet_path=A&wallet_path=B"},
        {
            "method": "POST",
            "path": "/echo",
            "data": b"wallet_path=A&wallet_path=B",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        {
            "method": "POST",
            "path": "/echo",
            "data": b'{"wallet_path": "A", "wallet_path": "B"}',
            "headers": {"Content-Type": "application/json"},
        },
    ],
)
async def test_duplicated_parameter_is_400(echo_client, request_args):
    args = dict(request_args)
    response = await echo_client.request(args.pop("method"), args.pop("path"), **args)
    await expect_error(response, 400, "more than once")


async def test_multipart_body_is_415(echo_client):
    from aiohttp import FormData

    form = FormData()
    form.add_field("wallet_path", b"x", filename="x.bin")
    await expect_error(await echo_client.post("/echo", data=form), 415)


async def test_body_of_unknown_type_is_415(echo_client):
    response = await echo_client.post("/echo", data=b"<a/>", headers={"Content-Type": "application/xml"})
    await expect_error(response, 415)


async def test_body_over_1_mib_is_413_json(echo_client):
    payload = io.BytesIO(json.dumps({"wallet_path": "x" * MAX_BODY_BYTES}).encode())
    response = await echo_client.post("/echo", data=payload, headers={"Content-Type": "application/json"})
    await expect_error(response, 413)


async def test_chunked_body_over_1_mib_is_413_json(echo_client):
    async def chunks():
        for _ in range(20):
            yield b"a" * 65536

    response = await echo_client.post(
        "/echo", data=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    await expect_error(response, 413)


async def test_body_over_1_mib_is_413_even_where_the_handler_reads_no_body(client):
    response = await client.get("/api/wallets/list", data=io.BytesIO(b"x" * (MAX_BODY_BYTES + 1)))
    await expect_error(response, 413)


# -- the same rules through the real endpoints: no side effect ----------------------------------


async def test_real_endpoint_takes_wallet_path_from_query_form_or_json(client):
    results = []
    for send in (
        lambda: client.get("/api/wallets/switch", params={"wallet_path": "Default"}),
        lambda: client.post("/api/wallets/switch", data={"wallet_path": "Default"}),
        lambda: client.post("/api/wallets/switch", json={"wallet_path": "Default"}),
    ):
        response = await send()
        assert response.status == 200
        results.append(await response.json())
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.post("/api/wallets/create", json={"wallet_path": "New\0Wallet"}),
        lambda c: c.get("/api/wallets/create?wallet_path=New%FFWallet"),
        lambda c: c.post("/api/wallets/create", json={"wallet_path": ["NewWallet"]}),
        lambda c: c.post("/api/wallets/create", data=b'["NewWallet"]', headers={"Content-Type": "application/json"}),
        lambda c: c.get("/api/wallets/create?wallet_path=NewWallet&wallet_path=Other"),
        lambda c: c.post(
            "/api/wallets/create",
            data=io.BytesIO(json.dumps({"wallet_path": "NewWallet", "pad": "x" * MAX_BODY_BYTES}).encode()),
            headers={"Content-Type": "application/json"},
        ),
        lambda c: c.post("/api/wallets/create", json={"wallet_path": "NewWallet" + "x" * MAX_PARAM_CHARS}),
    ],
)
async def test_bad_input_to_create_changes_nothing(client, data_dir: Path, send):
    before = (data_dir / "wallet-locations.csv").read_bytes()
    wallets_before = sorted(p.name for p in (data_dir / "Wallets").iterdir())
    response = await send(client)
    assert 400 <= response.status < 500
    assert response.content_type == "application/json"
    assert (data_dir / "wallet-locations.csv").read_bytes() == before
    assert sorted(p.name for p in (data_dir / "Wallets").iterdir()) == wallets_before


async def test_long_non_ascii_query_is_a_json_414(client):
    # 4,097 "é" are 24,582 characters percent-encoded: past the 16 KiB request line (api.md), so the
    # parser's limit answers, in JSON.
    r = await client.get("/api/wallets/balance", params={"wallet_path": "é" * 4097})
    assert r.status == 414
    body = await r.json()
    assert body == {"success": False, "error": "Request line is longer than 16384 bytes", "code": 414}


async def test_long_non_ascii_parameter_in_a_body_is_json_400(client):
    r = await client.post("/api/wallets/create", data={"wallet_path": "é" * 4097})
    assert r.status == 400
    body = await r.json()
    assert body["code"] == 400 and "longer than 4096" in body["error"]
