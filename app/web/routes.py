"""One flat table of every route: method, path, handler, and what /api/openapi.json says of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from app.web.openapi import build_openapi
from app.web.state import json_body_paths_key, openapi_key, route_headers_key
from app.web.views import backup, jobs, login, page, plans, rename, restore, system, wallets

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    required: bool = False
    type: str = "string"
    secret: bool = False  # taken from the body only, never from the query string
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    methods: tuple[str, ...]
    path: str
    handler: Handler
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    job: bool = False  # answers 202 on request (Prefer: respond-async or async=true)
    successor: str | None = None  # set on a deprecated route: the path that replaces it
    json_body: bool = False  # takes a JSON document (415 for anything else), not flat parameters

    @property
    def deprecated(self) -> bool:
        return self.successor is not None

    @property
    def headers(self) -> dict[str, str]:
        """Headers on every answer of this route, errors included (RFC 9745 Deprecation, RFC 8288 Link)."""
        if self.successor is None:
            return {}
        return {"Deprecation": "true", "Link": f'<{self.successor}>; rel="successor-version"'}


WALLET_PATH = Param(
    "wallet_path", "Wallet folder: absolute, or relative to Client_Data/Wallets; default the active wallet"
)
ASYNC = Param("async", "true: answer 202 with the job instead of waiting", type="boolean")

ROUTES: tuple[Route, ...] = (
    Route(("GET",), "/api/health", system.health, "Liveness, version, uptime and job counts", "system"),
    Route(("GET",), "/api/openapi.json", system.openapi, "This description", "system"),
    Route(("GET",), "/api/wallets/list", wallets.list_wallets, "Registered wallets", "wallets"),
    Route(("GET",), "/api/wallet/list", wallets.list_wallets, "Registered wallets (alias)", "wallets"),
    Route(("GET",), "/api/wallets", wallets.list_wallets, "Registered wallets (alias)", "wallets"),
    Route(("GET",), "/api/wallets/balance", wallets.wallet_balance, "Balance of a wallet", "wallets", (WALLET_PATH,)),
    Route(
        ("GET",),
        "/api/wallets/show-coins",
        wallets.show_coins,
        "Coins of a wallet, paginated",
        "wallets",
        (
            WALLET_PATH,
            Param("folder", "Bank, Fracked, Limbo or all (default)", choices=("Bank", "Fracked", "Limbo", "all")),
            Param("offset", "First coin to list (default 0)", type="integer", minimum=0),
            Param("limit", "Coins per page (default 1000, at most 10000)", type="integer", minimum=1, maximum=10000),
        ),
    ),
    Route(
        ("GET", "POST"),
        "/api/wallets/locations",
        wallets.wallet_locations,
        "Register a wallet folder, or every wallet folder inside a folder; without path, list locations",
        "wallets",
        (Param("path", "Absolute path of a wallet folder or of a folder of wallets"),),
    ),
    Route(
        ("GET", "POST"),
        "/api/wallets/create",
        wallets.create_wallet,
        "Create and register a new wallet",
        "wallets",
        (Param("wallet_path", "New wallet folder: absolute, or a name inside Client_Data/Wallets", True),),
    ),
    Route(
        ("GET", "POST"),
        "/api/wallets/switch",
        wallets.switch_wallet,
        "Make a wallet the active one",
        "wallets",
        (Param("wallet_path", "Wallet folder to make active", True),),
    ),
    # -- jobs ------------------------------------------------------------------------------------
    Route(
        ("GET",),
        "/api/jobs",
        jobs.list_jobs,
        "Jobs, newest first",
        "jobs",
        (
            Param(
                "status", "Only jobs in this status", choices=("queued", "running", "completed", "failed", "cancelled")
            ),
            Param(
                "kind",
                "Only jobs of this kind",
                choices=("wallet-backup", "wallet-rename", "wallet-restore", "backup-verify", "plan-run"),
            ),
            Param("wallet_path", "Only jobs on this wallet path"),
            Param("limit", "At most this many (default 100, at most 1000)", type="integer", minimum=1, maximum=1000),
        ),
    ),
    Route(
        ("GET",),
        "/api/jobs/{job_id}",
        jobs.get_job,
        "One job; wait=N holds the answer until it finishes",
        "jobs",
        (Param("wait", "Seconds to wait for the job to finish (at most 60)", type="integer", minimum=0, maximum=60),),
    ),
    Route(("GET",), "/api/jobs/{job_id}/events", jobs.job_events, "Server-Sent Events of one job", "jobs"),
    Route(("POST",), "/api/jobs/{job_id}/cancel", jobs.cancel_job, "Cancel a job", "jobs"),
    Route(("DELETE",), "/api/jobs/{job_id}", jobs.cancel_job, "Cancel a job", "jobs"),
    Route(
        ("GET",),
        "/api/system/tasks",
        jobs.task_status,
        "The reference client's task poller",
        "jobs",
        (Param("task_id", "Job id"), Param("id", "Job id (alias of task_id)")),
    ),
    # -- backup, restore, verify, login (issue 4) -------------------------------------------------
    Route(
        ("GET", "POST"),
        "/api/wallets/backup",
        backup.backup_wallet,
        "Back up a wallet into a timestamped ZIP in the destination folder",
        "wallets",
        (
            Param("destination", "Absolute path of the folder the ZIP goes into (created if missing)", True),
            WALLET_PATH,
            ASYNC,
        ),
        job=True,
    ),
    Route(
        ("POST",),
        "/api/system/login",
        login.login,
        "Set the coin-file key from a password",
        "system",
        (Param("password", "The wallet password (request body only)", True, secret=True),),
    ),
    Route(("POST",), "/api/system/logout", login.logout, "Forget the coin-file key", "system"),
    Route(
        ("GET",),
        "/api/system/encryption-status",
        login.encryption_status,
        "Encrypted and plaintext coin files, and whether a login is needed",
        "system",
    ),
    Route(
        ("POST",),
        "/api/wallets/restore",
        restore.restore_wallet,
        "Restore a backup ZIP into a new registered wallet (checked against its manifest)",
        "wallets",
        (
            Param("zip_path", "Absolute path of the backup ZIP", True),
            Param("location", "Absolute path of the folder to restore into (default Client_Data/Wallets)"),
            Param("new_name", "Name of the restored wallet (default the name in the archive)"),
            ASYNC,
        ),
        job=True,
    ),
    Route(
        ("POST",),
        "/api/wallets/backup/verify",
        restore.verify_backup,
        "Check a backup ZIP: every entry's CRC-32, and every entry against the manifest",
        "wallets",
        (Param("zip_path", "Absolute path of the backup ZIP", True), ASYNC),
        job=True,
    ),
    # -- rename (issue 5) -------------------------------------------------------------------------
    Route(
        ("GET", "POST"),
        "/api/wallets/rename",
        rename.rename_wallet,
        "Rename a wallet's folder and its registry row, atomically",
        "wallets",
        (
            Param("wallet_path", "Wallet folder: absolute, or relative to Client_Data/Wallets", True),
            Param("new_name", "New folder name: trimmed, valid on every platform, at most 64 characters", True),
            ASYNC,
        ),
        job=True,
    ),
    # -- backup plans (issue 11) -------------------------------------------------------------------
    Route(
        ("POST",),
        "/api/backup-plans",
        plans.create_plan,
        "Create a backup plan: wallet, 1-8 destinations, 5-field cron schedule, retention (JSON body)",
        "plans",
        json_body=True,
    ),
    Route(
        ("GET",),
        "/api/backup-plans",
        plans.list_plans,
        "Backup plans",
        "plans",
        (Param("wallet_path", "Only the plans of this wallet"),),
    ),
    Route(
        ("GET",),
        "/api/backup-plans/{plan_id}",
        plans.get_plan,
        "One backup plan, with last_run and next_run_at",
        "plans",
    ),
    Route(
        ("PATCH",),
        "/api/backup-plans/{plan_id}",
        plans.change_plan,
        "Change name, destinations, schedule, keep, encrypted_only or enabled (JSON body)",
        "plans",
        json_body=True,
    ),
    Route(("DELETE",), "/api/backup-plans/{plan_id}", plans.delete_plan, "Delete a plan (never its archives)", "plans"),
    Route(
        ("GET",), "/api/backup-plans/{plan_id}/runs", plans.plan_runs, "The plan's last 100 runs, newest first", "plans"
    ),
    Route(
        ("POST",),
        "/api/backup-plans/{plan_id}/run",
        plans.run_plan,
        "Run the plan now; answers the run record (or 202 with Prefer: respond-async); 409 while one runs",
        "plans",
        (ASYNC,),
        job=True,
        json_body=True,
    ),
    Route(
        ("GET",),
        "/api/wallets/backups",
        plans.list_backups,
        "Archives of a wallet in every place the server has written backups to",
        "wallets",
        (WALLET_PATH,),
    ),
    Route(
        ("GET",),
        "/api/system/dropdown",
        plans.dropdown,
        "Suggestions the reference GUI reads: BackupPlaces.txt or wallet-locations.csv",
        "system",
        (
            Param(
                "file",
                "BackupPlaces.txt or wallet-locations.csv",
                True,
                choices=("BackupPlaces.txt", "wallet-locations.csv"),
            ),
        ),
    ),
    Route(
        ("GET",),
        "/api/wallets/active/rename",
        rename.rename_wallet_legacy,
        "Deprecated: rename the wallet in registry row `index`; use /api/wallets/rename",
        "wallets",
        (
            Param("index", "0-based registry row of the wallet", True, type="integer", minimum=0),
            Param("to", "New folder name", True),
            ASYNC,
        ),
        job=True,
        successor="/api/wallets/rename",
    ),
)


def add_routes(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    app[route_headers_key] = {route.path: route.headers for route in routes if route.headers}
    app[json_body_paths_key] = frozenset(route.path for route in routes if route.json_body)
    # The description is built from the table here, so the view that serves it needs no import of it.
    app[openapi_key] = build_openapi(routes)
    for route in routes:
        for method in route.methods:
            app.router.add_route(method, route.path, route.handler)
    # The status page (cli.md): not part of the API, so not in its table or the OpenAPI document.
    for path, handler in page.ROUTES:
        app.router.add_get(path, handler)
