"""The `cloudcoin-wallet` command group: global options, the server, wallets, jobs and the login key."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import click

from app import __version__
from app.cli import work
from app.cli.follow import follow
from app.cli.http import Api, Refused
from app.cli.output import console, emit_json, number, print_fields, print_table, table
from app.cli.session import DEFAULT_SERVER, Settings, fetch, params_of, run, settings_of

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--server",
    envvar="CLOUDCOIN_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="The server's URL (env CLOUDCOIN_SERVER).",
)
@click.option(
    "--token",
    envvar="CLOUDCOIN_API_TOKEN",
    default=None,
    help="API token (prefer the env CLOUDCOIN_API_TOKEN: a command line is visible to other users).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON body and nothing else.")
@click.version_option(__version__, prog_name="cloudcoin-wallet", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, server: str, token: str | None, as_json: bool) -> None:
    """Back up, restore and watch CloudCoin wallets through a running wallet server."""
    ctx.obj = Settings(server=server, token=token or None, as_json=as_json)


@cli.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@click.option("--data-dir", help="The Client_Data directory (default ./Client_Data).")
@click.option("--config", "config_file", help="A TOML settings file (see config/default.toml).")
@click.option(
    "--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), help="How much to log (default INFO)."
)
def serve(
    host: str | None, port: int | None, data_dir: str | None, config_file: str | None, log_level: str | None
) -> None:
    """Run the server (the same as `python -m app`)."""
    from app.__main__ import main as serve_main  # the only command that is not an HTTP client

    argv: list[str] = []
    for flag, value in (
        ("--host", host),
        ("--port", port),
        ("--data-dir", data_dir),
        ("--config", config_file),
        ("--log-level", log_level),
    ):
        if value is not None:
            argv += [flag, str(value)]
    serve_main(argv)


@cli.command()
@click.pass_context
def wallets(ctx: click.Context) -> None:
    """The registered wallets: name, path, active, coins, value."""
    settings = settings_of(ctx)

    async def listing(api: Api) -> dict[str, Any]:
        body = (await api.call("GET", "/api/wallets/list")).body
        balances = await asyncio.gather(*(_balance_or_none(api, w) for w in body["wallets"]))
        for wallet, balance in zip(body["wallets"], balances, strict=True):
            wallet["total_notes"] = balance and balance.get("total_notes")
            wallet["total_value"] = balance and balance.get("total_value")
        return body

    body = run(settings, listing)
    if settings.as_json:
        return emit_json(body)
    rows = [
        (
            "*" if w.get("active") else "",
            w["wallet_name"],
            w["wallet_path"],
            number(w["total_notes"]) if w.get("online", True) else "offline",
            number(w["total_value"]),
        )
        for w in body["wallets"]
    ]
    print_table(None, ("Active", "Name", "Path", "Coins", "Value"), rows)


async def _balance_or_none(api: Api, wallet: dict[str, Any]) -> dict[str, Any] | None:
    if not wallet.get("online", True):
        return None
    try:
        return (await api.call("GET", "/api/wallets/balance", params={"wallet_path": wallet["wallet_path"]})).body
    except Refused:
        return None


@cli.command()
@click.argument("wallet", required=False)
@click.pass_context
def balance(ctx: click.Context, wallet: str | None) -> None:
    """Coins and value of WALLET (default: the active wallet)."""
    settings = settings_of(ctx)
    body = fetch(settings, "GET", "/api/wallets/balance", params=params_of(wallet_path=wallet))
    if settings.as_json:
        return emit_json(body)
    rows = [
        (folder.title(), number(body.get(f"{folder}_notes")), number(body.get(f"{folder}_value")))
        for folder in ("bank", "fracked", "limbo", "total")
    ]
    print_table(f"{body['wallet_name']}  ({body['wallet_path']})", ("Folder", "Coins", "Value"), rows)
    denominations = ", ".join(f"{k}: {v}" for k, v in (body.get("denominations") or {}).items())
    click.echo(f"denominations: {denominations or 'none'}")
    click.echo(f"encrypted coins: {body.get('encrypted_notes', 0)}")
    if body.get("unreadable_files"):
        click.echo(f"unreadable files: {len(body['unreadable_files'])}")


@cli.command()
@click.argument("wallet")
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, wallet: str, new_name: str) -> None:
    """Rename WALLET's folder and registry entry to NEW_NAME."""
    settings = settings_of(ctx)
    body = run(
        settings,
        lambda api: api.call("POST", "/api/wallets/rename", json_body={"wallet_path": wallet, "new_name": new_name}),
    ).body
    emit_json(body) if settings.as_json else print_fields(body)


@cli.command("jobs")
@click.option("--watch", is_flag=True, help="Keep the table live until Ctrl-C.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_context
def jobs_command(ctx: click.Context, watch: bool, limit: int) -> None:
    """Recent jobs, newest first."""
    settings = settings_of(ctx)

    def recent() -> dict[str, Any]:
        return fetch(settings, "GET", "/api/jobs", params={"limit": str(limit)})

    if not watch:
        body = recent()
        return emit_json(body) if settings.as_json else console().print(_jobs_table(body))
    try:
        if settings.as_json:
            last = None
            while True:
                body = recent()
                if body != last:
                    emit_json(body)
                    last = body
                time.sleep(1)
        from rich.live import Live

        with Live(_jobs_table(recent()), console=console(), refresh_per_second=4) as live:
            while True:
                time.sleep(1)
                live.update(_jobs_table(recent()))
    except KeyboardInterrupt:
        sys.exit(0)  # --watch ends with Ctrl-C: that is its normal end


def _jobs_table(body: dict[str, Any]) -> Any:
    rows = [
        (
            j["id"],
            j["kind"],
            j["status"],
            f"{j['progress']}%",
            j.get("message", ""),
            j.get("wallet_path", ""),
            j.get("created_at", ""),
        )
        for j in body["jobs"]
    ]
    return table(None, ("ID", "Kind", "Status", "Progress", "Message", "Wallet", "Created"), rows)


@cli.command("job")
@click.argument("job_id")
@click.option("--follow", "follow_it", is_flag=True, help="Show its progress until it ends.")
@click.pass_context
def job_command(ctx: click.Context, job_id: str, follow_it: bool) -> None:
    """One job; --follow shows its progress until it ends (the exit status then says how it ended)."""
    settings = settings_of(ctx)
    if follow_it:
        follow(settings, job_id, stream_json=settings.as_json)
    body = fetch(settings, "GET", f"/api/jobs/{job_id}")
    emit_json(body) if settings.as_json else print_fields(body, heading=f"job {body['id']}: {body['status']}")


@cli.command()
@click.argument("job_id")
@click.pass_context
def cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel a queued or running job."""
    settings = settings_of(ctx)
    answer = run(settings, lambda api: api.call("POST", f"/api/jobs/{job_id}/cancel"))
    if settings.as_json:
        return emit_json(answer.body)
    if answer.status == 202:
        click.echo(f"Job {job_id} is stopping (at its next file).")
    else:
        click.echo(f"Job {job_id} is {answer.body.get('status')}.")


@cli.command()
@click.pass_context
def login(ctx: click.Context) -> None:
    """Give the server the coin-file password (read without echo, never from the command line)."""
    settings = settings_of(ctx)
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")  # a script pipes it in: `... | cloudcoin-wallet login`
    if not password:
        raise click.UsageError("an empty password")
    body = fetch(settings, "POST", "/api/system/login", json_body={"password": password})
    if settings.as_json:
        return emit_json(body)
    click.echo(f"Logged in (key check {body.get('key_check')}): backups now re-encrypt plaintext coins.")


@cli.command()
@click.pass_context
def logout(ctx: click.Context) -> None:
    """Make the server forget the coin-file key."""
    settings = settings_of(ctx)
    body = fetch(settings, "POST", "/api/system/logout")
    emit_json(body) if settings.as_json else click.echo("Logged out: the server holds no key.")


work.register(cli)


def main() -> None:
    cli.main(prog_name="cloudcoin-wallet")
