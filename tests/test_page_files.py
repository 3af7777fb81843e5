"""The status page's own files: served without a token, with a strict content policy; the API keeps its rules."""

from __future__ import annotations

from typing import Any

import pytest


async def test_the_page_and_its_assets_are_served(make_client: Any) -> None:
    client = await make_client()
    page = await client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert '<script src="/static/page.js"' in html and "http://" not in html and "https://" not in html
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in (("page.js", "text/javascript"), ("page.css", "text/css")):
        asset = await client.get(f"/static/{name}")
        assert asset.status == 200 and asset.content_type == kind
    script = await (await client.get("/static/page.js")).text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script, "names go in as text only"


@pytest.mark.parametrize("path", ["/static/missing.js", "/static/..%2fmain.py", "/static/index.htm", "/index.html"])
async def test_anything_else_is_a_json_404(make_client: Any, path: str) -> None:
    client = await make_client()
    response = await client.get(path)
    assert response.status == 404
    body = await response.json()
    assert body["success"] is False and body["code"] == 404


async def test_with_a_token_the_page_needs_none_but_the_api_does(make_client: Any) -> None:
    client = await make_client(api_token="t0ken")
    assert (await client.get("/")).status == 200
    assert (await client.get("/static/page.js")).status == 200
    assert (await client.get("/api/wallets/list")).status == 401
    assert (await client.head("/")).status == 200
    assert (await client.post("/")).status in (401, 405), "only reading the page is free"
    assert (await client.get("/static/missing.js")).status == 404, "a page route: no token, nothing there"
    assert (await client.get("/index.html")).status == 401, "only the page's own routes are free"
    assert (await client.get("/api/wallets/list", headers={"Authorization": "Bearer t0ken"})).status == 200


async def test_the_page_keeps_the_host_rule(make_client: Any) -> None:
    client = await make_client()
    assert (await client.get("/", headers={"Host": "evil.example"})).status == 403
