"""The app starts on a fresh data directory and answers health."""


async def test_health_answers_ok(client):
    response = await client.get("/api/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["jobs"] == {"queued": 0, "running": 0}
