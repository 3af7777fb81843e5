"""Two thread pools: the requests' disk work is served while the jobs' pool is full."""

from __future__ import annotations

import asyncio
import threading

from app.web.jobhttp import runner_key
from app.web.state import config_key, executor_key
from tests.conftest import write_coins


async def test_requests_are_served_while_every_job_thread_is_busy(client, data_dir):
    write_coins(data_dir / "Wallets" / "Default" / "Bank", range(1, 20))
    app = client.server.app
    release = threading.Event()
    pool = app[runner_key].executor  # the pool jobs hand their blocking work to
    busy = [pool.submit(release.wait, 30) for _ in range(app[config_key].threads)]
    try:
        # Listing, a balance (a walk of the wallet) and a job's checks all need a thread of their own.
        listing = await asyncio.wait_for(client.get("/api/wallets/list"), 10)
        assert listing.status == 200
        balance = await asyncio.wait_for(client.get("/api/wallets/balance", params={"wallet_path": "Default"}), 10)
        assert balance.status == 200 and (await balance.json())["bank_notes"] == 19
        refused = await asyncio.wait_for(
            client.post("/api/wallets/backup", json={"wallet_path": "Nope", "destination": "/tmp/x"}), 10
        )
        assert refused.status == 404  # the plan ran on the request side
        assert not any(future.done() for future in busy)
    finally:
        release.set()
    for future in busy:
        assert future.result(timeout=10) is True


async def test_pool_sizes_come_from_the_config(make_client):
    client = await make_client(threads=3, request_threads=2)
    app = client.server.app
    assert app[runner_key].executor._max_workers == 3
    assert app[executor_key]._max_workers == 2
    assert app[executor_key] is not app[runner_key].executor
