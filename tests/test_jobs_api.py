"""The job endpoints and the sync/async contract, with job functions defined here (slow, failing, blocking)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from aiohttp import web

from app.main import create_app
from app.web.jobhttp import answer_with_job, runner_key
from app.web.params import read_params
from app.web.views import jobs as jobs_views
from jobs.context import JobContext
from jobs.models import Job, JobCancelled, JobFailed, JobKind, JobStatus
from jobs.store import JobStore

TEST_KIND = JobKind.VERIFY


async def work(ctx: JobContext) -> dict[str, Any]:
    """A job whose behaviour the request chooses: mode ok | fail | crash | slow | block."""
    params = ctx.job.params
    mode = params.get("mode", "ok")
    seconds = float(params.get("seconds", "0"))
    if mode == "fail":
        raise JobFailed(507, {"success": False, "error": "Disk is full", "code": 507})
    if mode == "crash":
        raise RuntimeError("boom")
    if mode == "block":
        await ctx.run_blocking(_block, ctx, seconds)
    else:
        steps = 10
        for step in range(steps):
            ctx.check_cancelled()
            ctx.report(done=step, total=steps, message=f"step {step}")
            await asyncio.sleep(seconds / steps)
    return {"command": "test-work", "success": True, "wallet": ctx.job.wallet_path, "mode": mode}


def _block(ctx: JobContext, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if ctx.cancel_event.is_set():
            raise JobCancelled()
        time.sleep(0.01)


async def submit_work(request: web.Request) -> web.Response:
    params = await read_params(request)
    wallet = params.get("wallet", "/wallets/A")
    job_params = {k: params[k] for k in ("mode", "seconds") if k in params}
    return await answer_with_job(request, TEST_KIND, wallet_path=wallet, params=job_params)


def make_app(make_config, **overrides: Any) -> web.Application:
    app = create_app(make_config(**overrides))
    app.router.add_route("*", "/test/work", submit_work)

    async def register(app: web.Application) -> None:
        app[runner_key].register(TEST_KIND, work)

    app.on_startup.append(register)
    return app


@pytest.fixture
async def jc(aiohttp_client, make_config):
    return await aiohttp_client(make_app(make_config))


async def wait_status(client, job_id: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}", params={"wait": str(int(timeout))})
    body = await response.json()
    assert body["status"] == status, body
    return body


# -- the sync/async contract ---------------------------------------------------------------------


async def test_sync_request_waits_and_answers_the_result(jc):
    response = await jc.post("/test/work", params={"seconds": "0.05"})
    assert response.status == 200
    assert await response.json() == {"command": "test-work", "success": True, "wallet": "/wallets/A", "mode": "ok"}


async def test_failed_job_answers_its_exact_status_and_body(jc):
    response = await jc.post("/test/work", json={"mode": "fail"})
    assert response.status == 507
    assert await response.json() == {"success": False, "error": "Disk is full", "code": 507}


async def test_unexpected_exception_in_a_job_is_a_500_body(jc):
    response = await jc.post("/test/work", data={"mode": "crash"})
    assert response.status == 500
    body = await response.json()
    assert body == {"success": False, "error": "Internal server error", "code": 500}


@pytest.mark.parametrize("how", ["prefer", "param"])
async def test_async_request_answers_202_with_where_to_watch(jc, how):
    kwargs: dict[str, Any] = {"params": {"seconds": "0.1"}}
    if how == "prefer":
        kwargs["headers"] = {"Prefer": "respond-async"}
    else:
        kwargs["params"]["async"] = "true"
    response = await jc.post("/test/work", **kwargs)
    assert response.status == 202
    body = await response.json()
    job_id = body["job_id"]
    assert body == {
        "success": True,
        "job_id": job_id,
        "task_id": job_id,
        "status": "queued",
        "status_url": f"/api/jobs/{job_id}",
        "events_url": f"/api/jobs/{job_id}/events",
    }
    assert response.headers["Location"] == f"/api/jobs/{job_id}"
    if how == "prefer":
        assert response.headers["Preference-Applied"] == "respond-async"
    else:
        assert "Preference-Applied" not in response.headers
    done = await wait_status(jc, job_id, "completed")
    assert done["result"]["mode"] == "ok"
    assert done["progress"] == 100


async def test_prefer_wait_bounds_the_wait_and_falls_back_to_202(jc):
    started = time.monotonic()
    response = await jc.post("/test/work", params={"seconds": "2"}, headers={"Prefer": "wait=0.2"})
    assert response.status == 202
    assert time.monotonic() - started < 1.5
    body = await response.json()
    assert body["status"] in ("queued", "running")
    assert "wait=0.2" in response.headers["Preference-Applied"]
    await jc.post(f"/api/jobs/{body['job_id']}/cancel")


async def test_idempotency_key_returns_the_same_job(jc):
    headers = {"Idempotency-Key": "abc-123", "Prefer": "respond-async"}
    first = await (await jc.post("/test/work", params={"seconds": "0.05"}, headers=headers)).json()
    second = await (await jc.post("/test/work", params={"seconds": "0.05"}, headers=headers)).json()
    assert first["job_id"] == second["job_id"]
    other = await (await jc.post("/test/work", headers={"Idempotency-Key": "other", "Prefer": "respond-async"})).json()
    assert other["job_id"] != first["job_id"]
    listing = await (await jc.get("/api/jobs")).json()
    assert listing["count"] == 2


async def test_a_client_that_disconnects_does_not_cancel_the_job(jc):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(jc.post("/test/work", params={"seconds": "0.5"}), timeout=0.1)
    listing = await (await jc.get("/api/jobs")).json()
    job_id = listing["jobs"][0]["id"]
    done = await wait_status(jc, job_id, "completed")
    assert done["result"]["success"] is True


async def test_queue_bound_answers_503_with_retry_after(aiohttp_client, make_config):
    client = await aiohttp_client(make_app(make_config, max_queued=2, workers=1))
    async_ = {"Prefer": "respond-async"}
    ids = []
    for _ in range(3):  # one runs, two wait in the queue
        response = await client.post("/test/work", params={"seconds": "1"}, headers=async_)
        assert response.status == 202
        ids.append((await response.json())["job_id"])
        await asyncio.sleep(0.05)
    response = await client.post("/test/work", params={"seconds": "1"}, headers=async_)
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 1
    body = await response.json()
    assert body["success"] is False and body["code"] == 503
    for job_id in ids:
        await client.post(f"/api/jobs/{job_id}/cancel")


# -- reading jobs ------------------------------------------------------------------------------------


async def test_unknown_job_is_a_json_404_everywhere(jc):
    for method, url in [
        ("GET", "/api/jobs/nope"),
        ("GET", "/api/jobs/nope/events"),
        ("POST", "/api/jobs/nope/cancel"),
        ("DELETE", "/api/jobs/nope"),
        ("GET", "/api/system/tasks?task_id=nope"),
    ]:
        response = await jc.request(method, url)
        assert response.status == 404, url
        assert await response.json() == {"success": False, "error": "Job not found: nope", "code": 404}


async def test_job_shape_and_retry_after_while_unfinished(jc):
    body = await (await jc.post("/test/work", params={"seconds": "1", "async": "1"})).json()
    response = await jc.get(f"/api/jobs/{body['job_id']}")
    job = await response.json()
    assert response.headers["Retry-After"] == "1"
    assert set(job) == {
        "id",
        "kind",
        "status",
        "progress",
        "message",
        "phase",
        "wallet_path",
        "params",
        "done",
        "total",
        "bytes_done",
        "bytes_total",
        "created_at",
        "started_at",
        "finished_at",
        "result",
        "error",
        "links",
    }
    assert job["kind"] == "backup-verify"
    assert job["created_at"].endswith("Z")
    assert job["links"]["cancel"] == f"/api/jobs/{job['id']}/cancel"
    await jc.post(f"/api/jobs/{job['id']}/cancel")
    final = await wait_status(jc, job["id"], "cancelled")
    response = await jc.get(f"/api/jobs/{job['id']}")
    assert "Retry-After" not in response.headers
    assert final["finished_at"] is not None


async def test_long_polling_returns_when_the_job_finishes(jc):
    body = await (await jc.post("/test/work", params={"seconds": "0.3", "async": "true"})).json()
    started = time.monotonic()
    job = await (await jc.get(f"/api/jobs/{body['job_id']}", params={"wait": "10"})).json()
    elapsed = time.monotonic() - started
    assert job["status"] == "completed"
    assert elapsed < 5


async def test_long_polling_gives_up_after_wait_seconds(jc):
    body = await (await jc.post("/test/work", params={"seconds": "5", "async": "true"})).json()
    started = time.monotonic()
    job = await (await jc.get(f"/api/jobs/{body['job_id']}", params={"wait": "1"})).json()
    assert 0.9 <= time.monotonic() - started < 3
    assert job["status"] == "running"
    await jc.post(f"/api/jobs/{body['job_id']}/cancel")


@pytest.mark.parametrize("wait", ["61", "-1", "soon"])
async def test_bad_wait_is_400(jc, wait):
    body = await (await jc.post("/test/work", params={"async": "true"})).json()
    response = await jc.get(f"/api/jobs/{body['job_id']}", params={"wait": wait})
    assert response.status == 400


async def test_list_filters_and_limit(jc):
    ok = await (await jc.post("/test/work", params={"wallet": "/w/one"})).json()
    await jc.post("/test/work", params={"wallet": "/w/two", "mode": "fail"})
    everything = await (await jc.get("/api/jobs")).json()
    assert everything["count"] == 2
    assert everything["jobs"][0]["wallet_path"] == "/w/two"  # newest first
    failed = await (await jc.get("/api/jobs", params={"status": "failed"})).json()
    assert [j["wallet_path"] for j in failed["jobs"]] == ["/w/two"]
    by_wallet = await (await jc.get("/api/jobs", params={"wallet_path": "/w/one"})).json()
    assert [j["result"] for j in by_wallet["jobs"]] == [ok]
    by_kind = await (await jc.get("/api/jobs", params={"kind": "wallet-rename"})).json()
    assert by_kind["count"] == 0
    limited = await (await jc.get("/api/jobs", params={"limit": "1"})).json()
    assert limited["count"] == 1
    for bad in ({"status": "done"}, {"kind": "nope"}, {"limit": "0"}, {"limit": "1001"}):
        assert (await jc.get("/api/jobs", params=bad)).status == 400


async def test_tasks_poller_sees_the_same_job(jc):
    ok = await (await jc.post("/test/work", params={"async": "true"})).json()
    await wait_status(jc, ok["job_id"], "completed")
    for name in ("task_id", "id"):
        body = await (await jc.get("/api/system/tasks", params={name: ok["job_id"]})).json()
        assert body["status"] == "success"
        payload = body["payload"]
        assert payload["id"] == ok["job_id"] and payload["status"] == "completed" and payload["progress"] == 100
        assert payload["data"]["command"] == "test-work"
    failed = await (await jc.post("/test/work", params={"async": "true", "mode": "fail"})).json()
    await wait_status(jc, failed["job_id"], "failed")
    body = await (await jc.get("/api/system/tasks", params={"task_id": failed["job_id"]})).json()
    assert body["payload"]["data"] == {"success": False, "error": "Disk is full", "code": 507}
    response = await jc.get("/api/system/tasks")
    assert response.status == 400


# -- cancelling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_cancel_a_queued_and_a_running_job(jc, method):
    running = await (await jc.post("/test/work", params={"seconds": "5", "async": "1", "mode": "block"})).json()
    queued = await (await jc.post("/test/work", params={"seconds": "5", "async": "1"})).json()  # same wallet: waits
    await asyncio.sleep(0.1)
    url = (lambda i: f"/api/jobs/{i}/cancel") if method == "POST" else (lambda i: f"/api/jobs/{i}")
    response = await jc.request(method, url(queued["job_id"]))
    assert response.status == 200
    assert (await response.json())["status"] == "cancelled"
    response = await jc.request(method, url(running["job_id"]))
    assert response.status in (200, 202)
    await wait_status(jc, running["job_id"], "cancelled")
    again = await jc.request(method, url(running["job_id"]))
    assert again.status == 409
    body = await again.json()
    assert body["success"] is False and body["code"] == 409


async def test_sync_caller_of_a_cancelled_job_gets_409(jc):
    request = asyncio.ensure_future(jc.post("/test/work", params={"seconds": "5", "mode": "block"}))
    await asyncio.sleep(0.2)
    job_id = (await (await jc.get("/api/jobs")).json())["jobs"][0]["id"]
    await jc.post(f"/api/jobs/{job_id}/cancel")
    response = await request
    assert response.status == 409
    assert (await response.json())["error"] == "The job was cancelled"


# -- the event stream ------------------------------------------------------------------------------------


def parse_sse(text: str) -> list[dict[str, str]]:
    """Split an event stream as a browser's EventSource does: blank-line separated fields."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name in fields else value
        if fields:
            events.append(fields)
    return events


async def test_event_stream_sends_state_changes_and_ends_with_the_final_one(jc):
    body = await (await jc.post("/test/work", params={"seconds": "0.5", "async": "1"})).json()
    response = await jc.get(body["events_url"])
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(await response.text())
    assert events[-1]["event"] == "completed"
    assert all(e["event"] == "progress" for e in events[:-1])
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    jobs_seen = [json.loads(e["data"]) for e in events]
    progress = [j["progress"] for j in jobs_seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert jobs_seen[-1]["result"]["success"] is True


async def test_event_stream_resumes_after_last_event_id(jc):
    body = await (await jc.post("/test/work", params={"seconds": "0.2", "async": "1"})).json()
    events = parse_sse(await (await jc.get(body["events_url"])).text())
    middle = events[len(events) // 2]["id"]
    resumed = parse_sse(await (await jc.get(body["events_url"], headers={"Last-Event-ID": middle})).text())
    assert [int(e["id"]) for e in resumed] and all(int(e["id"]) > int(middle) for e in resumed)
    assert resumed[-1]["event"] == "completed"
    last = events[-1]["id"]
    assert parse_sse(await (await jc.get(body["events_url"], headers={"Last-Event-ID": last})).text()) == []


async def test_event_stream_sends_keepalive_comments(jc, monkeypatch):
    monkeypatch.setattr(jobs_views, "KEEPALIVE_SECONDS", 0.1)
    body = await (await jc.post("/test/work", params={"seconds": "0.6", "async": "1", "mode": "block"})).json()
    text = await (await jc.get(body["events_url"])).text()
    assert ": keep-alive" in text
    assert parse_sse(text)[-1]["event"] == "completed"


# -- responsiveness, restart, shutdown --------------------------------------------------------------------


async def test_health_answers_fast_while_every_worker_and_thread_is_busy(aiohttp_client, make_config):
    client = await aiohttp_client(make_app(make_config, workers=2, threads=2))
    for wallet in ("/w/a", "/w/b"):
        await client.post("/test/work", params={"wallet": wallet, "seconds": "2", "mode": "block", "async": "1"})
    await asyncio.sleep(0.2)
    health = await (await client.get("/api/health")).json()
    assert health["jobs"] == {"queued": 0, "running": 2}
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        response = await client.get("/api/health")
        await response.read()
        latencies.append(time.perf_counter() - started)
    assert max(latencies) < 0.050, latencies
    for job in (await (await client.get("/api/jobs")).json())["jobs"]:
        await client.post(f"/api/jobs/{job['id']}/cancel")


async def test_jobs_left_running_by_a_dead_server_read_failed_after_restart(aiohttp_client, make_config, data_dir):
    from concurrent.futures import ThreadPoolExecutor

    (data_dir / "jobs").mkdir(parents=True)
    store = JobStore(data_dir / "jobs")
    with ThreadPoolExecutor(1) as executor:
        await store.open(executor)
        running = Job.new(TEST_KIND, wallet_path="/w/a", params={})
        running.status = JobStatus.RUNNING
        queued = Job.new(TEST_KIND, wallet_path="/w/a", params={})
        store.put(running)
        store.put(queued)
        await store.close()
    client = await aiohttp_client(make_app(make_config))
    for job in (running, queued):
        body = await (await client.get(f"/api/jobs/{job.id}")).json()
        assert body["status"] == "failed"
        assert body["error"]["body"]["error"] == "Interrupted by server restart"


async def test_no_task_is_left_running_after_the_app_closes(aiohttp_client, make_config):
    client = await aiohttp_client(make_app(make_config))
    await client.post("/test/work", params={"seconds": "5", "mode": "block", "async": "1"})
    await client.post("/test/work", params={"seconds": "5", "async": "1", "wallet": "/w/b"})
    await asyncio.sleep(0.1)
    stream = asyncio.ensure_future(client.get("/api/jobs?limit=1"))
    await stream
    await client.close()
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert leftover == []
    assert not [t for t in threading.enumerate() if t.name.startswith("cloudcoin")]
