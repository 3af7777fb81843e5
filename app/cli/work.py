"""Commands of long work and its archives: backup, verify, restore, backups and the backup plans (plans.md)."""

from __future__ import annotations

from typing import Any

import click

from app.cli.follow import ASYNC, submit_and_follow
from app.cli.output import emit_json, number, print_fields, print_table
from app.cli.session import absolute, fetch, params_of, run, settings_of

DETACH = click.option("--detach", is_flag=True, help="Submit, print the job id and return at once.")


@click.command()
@click.argument("wallet", required=False)
@click.option("--to", "destination", required=True, help="Folder the ZIP goes into (only its last folder is created).")
@DETACH
@click.pass_context
def backup(ctx: click.Context, wallet: str | None, destination: str, detach: bool) -> None:
    """Back up WALLET (default: the active wallet) into a ZIP in --to, with live progress."""
    body = params_of(destination=absolute(destination), wallet_path=wallet)
    submit_and_follow(
        settings_of(ctx),
        lambda api: api.call("POST", "/api/wallets/backup", json_body=body, headers=ASYNC),
        detach=detach,
    )


@click.command()
@click.argument("zip_path", metavar="ZIP")
@DETACH
@click.pass_context
def verify(ctx: click.Context, zip_path: str, detach: bool) -> None:
    """Read a backup back: every entry's CRC and the manifest's SHA-256s (exit 1 when not ok)."""
    body = {"zip_path": absolute(zip_path)}
    submit_and_follow(
        settings_of(ctx),
        lambda api: api.call("POST", "/api/wallets/backup/verify", json_body=body, headers=ASYNC),
        detach=detach,
        judge=lambda result: result.get("ok") is True,
    )


@click.command()
@click.argument("zip_path", metavar="ZIP")
@click.option("--to", "location", help="Folder to restore into (default Client_Data/Wallets).")
@click.option("--name", "new_name", help="The restored wallet's name (default the archive's).")
@DETACH
@click.pass_context
def restore(ctx: click.Context, zip_path: str, location: str | None, new_name: str | None, detach: bool) -> None:
    """Restore a backup into a new registered wallet."""
    body = params_of(zip_path=absolute(zip_path), location=location and absolute(location), new_name=new_name)
    submit_and_follow(
        settings_of(ctx),
        lambda api: api.call("POST", "/api/wallets/restore", json_body=body, headers=ASYNC),
        detach=detach,
    )


@click.command()
@click.argument("wallet", required=False)
@click.pass_context
def backups(ctx: click.Context, wallet: str | None) -> None:
    """The archives of WALLET the server knows, newest first."""
    settings = settings_of(ctx)
    body = fetch(settings, "GET", "/api/wallets/backups", params=params_of(wallet_path=wallet))
    if settings.as_json:
        return emit_json(body)
    rows = [
        (
            b.get("created_at"),
            b.get("zip_path"),
            number(b.get("bytes")),
            number(b.get("coins")),
            number(b.get("value")),
            _yes(b.get("encrypted")),
            b.get("verified_at") or "",
            "" if b.get("readable", True) else "unreadable",
        )
        for b in body.get("backups", [])
    ]
    print_table(None, ("Created", "Archive", "Bytes", "Coins", "Value", "Encrypted", "Verified", ""), rows)
    for place in body.get("places", []):
        if place.get("reachable") is False:
            click.echo(f"not reachable: {place.get('path')}", err=True)


@click.group(invoke_without_command=True)
@click.pass_context
def plans(ctx: click.Context) -> None:
    """Backup plans: list them; `plans add`, `plans run ID`, `plans rm ID`."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    body = fetch(settings, "GET", "/api/backup-plans")
    if settings.as_json:
        return emit_json(body)
    print_table(
        None,
        ("ID", "Name", "Wallet", "Schedule", "Enabled", "Next run", "Last run"),
        [_plan_row(plan) for plan in body.get("plans", [])],
    )


def _plan_row(plan: dict[str, Any]) -> tuple[Any, ...]:
    last = plan.get("last_run") or {}
    per_place = ", ".join(f"{d.get('destination')}: {d.get('status')}" for d in last.get("destinations", []))
    summary = f"{last.get('status')} {last.get('finished_at') or ''} ({per_place})" if last else "never"
    return (
        plan["id"],
        plan.get("name") or "",
        plan.get("wallet_path"),
        plan.get("schedule"),
        _yes(plan.get("enabled")),
        plan.get("next_run_at") or "",
        summary,
    )


@plans.command("add")
@click.argument("wallet")
@click.option("--to", "destinations", multiple=True, required=True, help="A destination folder (1 to 8; repeat).")
@click.option("--schedule", required=True, help="5-field cron ('30 2 * * *') or @daily, @weekly, …")
@click.option("--name", help="A name for people.")
@click.option("--keep-last", type=click.IntRange(min=0))
@click.option("--keep-daily", type=click.IntRange(min=0))
@click.option("--keep-weekly", type=click.IntRange(min=0))
@click.option("--keep-monthly", type=click.IntRange(min=0))
@click.option("--keep-yearly", type=click.IntRange(min=0))
@click.option("--encrypted-only", is_flag=True, help="Never run without a login key.")
@click.option("--disabled", is_flag=True, help="Create it switched off.")
@click.pass_context
def plans_add(
    ctx: click.Context,
    wallet: str,
    destinations: tuple[str, ...],
    schedule: str,
    name: str | None,
    encrypted_only: bool,
    disabled: bool,
    **keep_options: int | None,
) -> None:
    """Create a plan backing up WALLET to every --to on --schedule."""
    settings = settings_of(ctx)
    keep = {key.removeprefix("keep_"): value for key, value in keep_options.items() if value is not None}
    plan = params_of(
        name=name,
        wallet_path=wallet,
        destinations=[absolute(d) for d in destinations],
        schedule=schedule,
        keep=keep or None,
        encrypted_only=encrypted_only,
        enabled=not disabled,
    )
    body = fetch(settings, "POST", "/api/backup-plans", json_body=plan)
    emit_json(body) if settings.as_json else print_fields(body, heading=f"Plan {body.get('id')} created")


@plans.command("run")
@click.argument("plan_id", metavar="ID")
@DETACH
@click.pass_context
def plans_run(ctx: click.Context, plan_id: str, detach: bool) -> None:
    """Run a plan now and follow it (exit 1 unless every destination got its verified archive)."""
    submit_and_follow(
        settings_of(ctx),
        lambda api: api.call("POST", f"/api/backup-plans/{plan_id}/run", json_body={}, headers=ASYNC),
        detach=detach,
        judge=lambda run_record: run_record.get("status") == "completed",
    )


@plans.command("rm")
@click.argument("plan_id", metavar="ID")
@click.pass_context
def plans_rm(ctx: click.Context, plan_id: str) -> None:
    """Remove a plan (its archives stay)."""
    settings = settings_of(ctx)
    run(settings, lambda api: api.call("DELETE", f"/api/backup-plans/{plan_id}"))
    emit_json({"success": True, "id": plan_id}) if settings.as_json else click.echo(f"Plan {plan_id} removed.")


def _yes(value: Any) -> str:
    return "" if value is None else ("yes" if value else "no")


def register(group: click.Group) -> None:
    for command in (backup, verify, restore, backups, plans):
        group.add_command(command)
