"""Who may call: Host allow-list, Origin / Sec-Fetch-Site refusal with CORS for allowed origins, bearer token."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.wallet.registry import read_registry


def registry_bytes(data_dir: Path) -> bytes:
    return (data_dir / "wallet-locations.csv").read_bytes()


async def assert_refused(response, status: int = 403) -> None:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["success"] is False and body["code"] == status
    assert "Access-Control-Allow-Origin" not in response.headers


async def create_is_refused_without_effect(client, data_dir: Path, headers: dict[str, str], status: int = 403):
    before = registry_bytes(data_dir)
    for response in (
        await client.post("/api/wallets/create", json={"wallet_path": "Intruder"}, headers=headers),
        await client.get("/api/wallets/create", params={"wallet_path": "Intruder"}, headers=headers),
        await client.post("/api/wallets/switch", data={"wallet_path": "Default"}, headers=headers),
    ):
        await assert_refused(response, status)
    assert not (data_dir / "Wallets" / "Intruder").exists()
    assert registry_bytes(data_dir) == before


# -- Host (DNS rebinding) ----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.2", ""])
async def test_foreign_host_is_403_with_no_effect(client, data_dir, host):
    await create_is_refused_without_effect(client, data_dir, {"Host": host})
    await assert_refused(await client.get("/api/wallets/list", headers={"Host": host}))


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1:1", "[::1]:8080", "[::1]", "LOCALHOST"])
async def test_loopback_hosts_on_any_port_are_served(client, host):
    response = await client.get("/api/wallets/list", headers={"Host": host})
    assert response.status == 200


async def test_configured_host_is_served(make_client):
    client = await make_client(allowed_hosts=("wallet.lan", "box.lan:9000"))
    assert (await client.get("/api/wallets/list", headers={"Host": "wallet.lan:8080"})).status == 200
    assert (await client.get("/api/wallets/list", headers={"Host": "box.lan"})).status == 200
    await assert_refused(await client.get("/api/wallets/list", headers={"Host": "other.lan"}))


async def test_foreign_host_is_refused_on_unknown_routes_and_health_too(client):
    await assert_refused(await client.get("/api/health", headers={"Host": "evil.example"}))
    await assert_refused(await client.get("/nowhere", headers={"Host": "evil.example"}))


# -- Origin and Sec-Fetch-Site (CSRF) ----------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://evil.example:8080",
        "null",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://localhost@evil.example",
        "file://",
        "http://localhost:notaport",
    ],
)
async def test_cross_site_origin_is_403_with_no_effect(client, data_dir, origin):
    await create_is_refused_without_effect(client, data_dir, {"Origin": origin})
    await assert_refused(await client.get("/api/wallets/balance", headers={"Origin": origin}))


@pytest.mark.parametrize("site", ["cross-site", "same-site", "CROSS-SITE"])
async def test_sec_fetch_site_without_allowed_origin_is_403_with_no_effect(client, data_dir, site):
    await create_is_refused_without_effect(client, data_dir, {"Sec-Fetch-Site": site})
    await assert_refused(await client.get("/api/wallets/list", headers={"Sec-Fetch-Site": site}))


async def test_cross_site_with_foreign_origin_is_403(client, data_dir):
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
    await create_is_refused_without_effect(client, data_dir, headers)


@pytest.mark.parametrize("site", ["same-origin", "none"])
async def test_same_origin_and_user_initiated_fetches_are_served(client, site):
    assert (await client.get("/api/wallets/list", headers={"Sec-Fetch-Site": site})).status == 200


async def test_clients_without_origin_or_fetch_headers_are_served(client):
    assert (await client.get("/api/wallets/list")).status == 200


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "http://localhost:3000",
        "http://127.0.0.1:5173",
        "http://127.0.0.1",
        "http://[::1]:8080",
        "http://[::1]",
    ],
)
async def test_loopback_origin_on_any_port_gets_cors(client, data_dir, origin):
    response = await client.get("/api/wallets/list", headers={"Origin": origin, "Sec-Fetch-Site": "cross-site"})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in response.headers.get("Vary", "")
    created = await client.post(
        "/api/wallets/create",
        json={"wallet_path": "FromGui"},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-site"},
    )
    assert created.status == 200
    assert created.headers["Access-Control-Allow-Origin"] == origin
    assert (data_dir / "Wallets" / "FromGui" / "Bank").is_dir()


async def test_loopback_origin_gets_cors_on_error_answers_too(client):
    response = await client.get(
        "/api/wallets/balance", params={"wallet_path": "Nope"}, headers={"Origin": "http://localhost:3000"}
    )
    assert response.status == 404
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


async def test_configured_origin_gets_cors(make_client):
    client = await make_client(allowed_origins=("https://wallet.example", "http://gui.lan:8081/"))
    for origin in ("https://wallet.example", "http://gui.lan:8081"):
        response = await client.get("/api/wallets/list", headers={"Origin": origin, "Sec-Fetch-Site": "cross-site"})
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == origin
    await assert_refused(await client.get("/api/wallets/list", headers={"Origin": "https://other.example"}))


async def test_preflight_is_answered_204_with_the_allow_headers(client):
    response = await client.options(
        "/api/wallets/create",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed and "authorization" in allowed
    assert "Access-Control-Max-Age" in response.headers


async def test_preflight_from_a_foreign_origin_is_refused(client):
    response = await client.options(
        "/api/wallets/create",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    await assert_refused(response)


async def test_cors_exposes_the_headers_a_gui_reads(client):
    response = await client.get("/api/wallets/list", headers={"Origin": "http://localhost:3000"})
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert "Location" in exposed and "X-Request-Id" in exposed


# -- bearer token ------------------------------------------------------------------------------


@pytest.fixture
async def token_client(make_client):
    return await make_client(api_token="s3cret-token")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer wrong", "Bearer s3cret-token-and-more", "bearer s3cret-tokeX", "Basic czNjcmV0", "Bearer"],
)
async def test_missing_or_wrong_token_is_401(token_client, data_dir, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await token_client.get("/api/wallets/list", headers=headers)
    await assert_refused(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    await create_is_refused_without_effect(token_client, data_dir, headers, status=401)


async def test_non_ascii_authorization_is_401_not_500(token_client):
    response = await token_client.get("/api/wallets/list", headers={"Authorization": "Bearer s3crét"})
    await assert_refused(response, 401)


async def test_right_token_is_served(token_client, data_dir):
    headers = {"Authorization": "Bearer s3cret-token"}
    assert (await token_client.get("/api/wallets/list", headers=headers)).status == 200
    response = await token_client.post("/api/wallets/create", json={"wallet_path": "Mine"}, headers=headers)
    assert response.status == 200
    assert any(e.wallet_path.endswith("/Mine") for e in read_registry(data_dir / "wallet-locations.csv").entries)


async def test_health_needs_no_token(token_client):
    response = await token_client.get("/api/health")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_preflight_needs_no_token(token_client):
    response = await token_client.options(
        "/api/wallets/list",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


async def test_unknown_route_needs_the_token_too(token_client):
    await assert_refused(await token_client.get("/api/nowhere"), 401)


async def test_without_a_configured_token_authorization_is_ignored(client):
    assert (await client.get("/api/wallets/list", headers={"Authorization": "Bearer anything"})).status == 200


# -- Referer without Origin or Sec-Fetch-Site (an old browser's <img> or form) ------------------


@pytest.mark.parametrize(
    "referer",
    [
        "http://evil.example/",
        "https://evil.example/page?x=1",
        "http://localhost.evil.example/",
        "http://localhost@evil.example/",
        "http://127.0.0.1.evil.example:8080/a",
        "not a url",
        "file:///home/user/attack.html",
    ],
)
async def test_foreign_referer_without_origin_is_403_with_no_effect(client, data_dir, referer, tmp_path):
    headers = {"Referer": referer}
    await create_is_refused_without_effect(client, data_dir, headers)
    destination = tmp_path / "attacker"
    for response in (
        await client.get("/api/wallets/backup", params={"destination": str(destination)}, headers=headers),
        await client.post("/api/wallets/backup", data={"destination": str(destination)}, headers=headers),
        # a form with enctype=text/plain carrying a JSON object
        await client.post(
            "/api/wallets/create",
            data=b'{"wallet_path": "Intruder", "x": "="}',
            headers={**headers, "Content-Type": "text/plain"},
        ),
    ):
        await assert_refused(response)
    assert not destination.exists()
    assert not (data_dir / "Wallets" / "Intruder").exists()


@pytest.mark.parametrize("referer", ["http://localhost:3000/app", "http://127.0.0.1:8080/", "http://[::1]/x", ""])
async def test_loopback_or_empty_referer_is_served(client, data_dir, referer):
    response = await client.post("/api/wallets/create", json={"wallet_path": "Mine"}, headers={"Referer": referer})
    assert response.status == 200, await response.text()
    assert (data_dir / "Wallets" / "Mine" / "Bank").is_dir()


async def test_configured_origin_referer_is_served(make_client):
    client = await make_client(allowed_origins=("https://wallet.example",))
    response = await client.get("/api/wallets/list", headers={"Referer": "https://wallet.example/gui/index.html"})
    assert response.status == 200


async def test_referer_is_not_judged_when_sec_fetch_site_says_same_origin(client):
    # A modern browser sends Sec-Fetch-Site; that header is the one to trust.
    response = await client.get("/api/wallets/list", headers={"Sec-Fetch-Site": "same-origin", "Referer": "http://x/"})
    assert response.status == 200
