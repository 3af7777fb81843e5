"""Checking a plan's fields from a JSON body: every rule of plans.md, each refusal a 400 naming the field.

`check_fields` is blocking (canonicalising a destination resolves symlinks on disk): the service runs
it on the thread pool. Destinations are checked exactly as the backup seed checks `destination` and
a refusal there carries the seed's message text, in api.md's error shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.wallet.errors import ApiError
from app.wallet.paths import canonical, control_character, is_inside
from jobs.backup.checks import resolve_destination

from .models import MAX_DESTINATIONS, MAX_NAME_CHARS
from .retention import KeepPolicy, PolicyError
from .schedule import Schedule, ScheduleError

#: what a client may send when creating a plan
CREATE_FIELDS = frozenset(
    {"name", "wallet_path", "destinations", "schedule", "keep", "verify", "encrypted_only", "enabled"}
)
#: what a client may change; the wallet is not among them (a plan follows its wallet, it never moves to another)
CHANGE_FIELDS = CREATE_FIELDS - {"wallet_path"}
#: the order in which fields are checked, so that the same bad body always gets the same answer
ORDER = ("wallet_path", "name", "destinations", "schedule", "keep", "verify", "encrypted_only", "enabled")


def invalid(field: str, reason: str) -> ApiError:
    return ApiError(400, f"Invalid {field}: {reason}", extra={"field": field})


def check_fields(body: Any, *, creating: bool, data_dir: Path) -> dict[str, Any]:
    """The fields present in `body`, checked and normalised; ApiError(400) at the first bad one."""
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object")
    allowed = CREATE_FIELDS if creating else CHANGE_FIELDS
    for key in body:
        if key not in allowed:
            if key == "wallet_path":
                raise invalid(key, "a plan's wallet cannot be changed (make a new plan)")
            raise ApiError(400, f"Unknown field: {key}", extra={"field": key})
    if creating:
        for required in ("destinations", "schedule"):
            if required not in body:
                raise ApiError(400, f"Missing required parameter: {required}", extra={"field": required})
    elif not body:
        raise ApiError(400, "Nothing to change", extra={"field": None})
    checked: dict[str, Any] = {}
    for field in ORDER:
        if field in body:
            checked[field] = _CHECKS[field](body[field], data_dir)
    return checked


def _wallet_path(value: Any, data_dir: Path) -> str | None:
    if value is None:
        return None  # api.md: no wallet named means the active wallet
    if not isinstance(value, str) or not value.strip():
        raise invalid("wallet_path", "must be a non-empty string")
    _no_controls("wallet_path", value)
    return value


def _name(value: Any, data_dir: Path) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("name", "must be a string")
    if len(value) > MAX_NAME_CHARS:
        raise invalid("name", f"at most {MAX_NAME_CHARS} characters")
    _no_controls("name", value)
    return value


def _destinations(value: Any, data_dir: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid("destinations", "must be a list of absolute paths")
    if not 1 <= len(value) <= MAX_DESTINATIONS:
        raise invalid("destinations", f"1 to {MAX_DESTINATIONS} destinations, not {len(value)}")
    root = canonical(data_dir)
    seen: dict[Path, str] = {}
    for raw in value:
        _no_controls("destinations", raw)
        try:
            destination = resolve_destination(raw, data_dir=root)
        except ApiError as error:
            # The seed's own words, in api.md's shape, saying which destination it was.
            raise ApiError(400, error.message, extra={"field": "destinations", "destination": raw}) from None
        if destination in seen:
            raise invalid("destinations", f"'{raw}' and '{seen[destination]}' are the same folder")
        seen[destination] = raw
    return tuple(str(destination) for destination in seen)


def _schedule(value: Any, data_dir: Path) -> Schedule:
    try:
        return Schedule.parse(value)
    except ScheduleError as exc:
        shown = value if isinstance(value, str) else repr(value)
        raise ApiError(400, f"Invalid schedule '{shown}': {exc}", extra={"field": "schedule"}) from None


def _keep(value: Any, data_dir: Path) -> KeepPolicy:
    try:
        return KeepPolicy.from_json(value)
    except PolicyError as exc:
        raise invalid("keep", str(exc)) from None


def _verify(value: Any, data_dir: Path) -> bool:
    if value is not True:
        if value is False:
            raise invalid("verify", "false is not supported: every archive a plan writes is verified")
        raise invalid("verify", "must be true")
    return True


def _flag(field: str) -> Any:
    def check(value: Any, data_dir: Path) -> bool:
        if not isinstance(value, bool):
            raise invalid(field, "must be true or false")
        return value

    return check


def _no_controls(field: str, value: str) -> None:
    if control_character(value):  # the rule of every path parameter (app.wallet.paths)
        raise invalid(field, "contains a control character")


_CHECKS = {
    "wallet_path": _wallet_path,
    "name": _name,
    "destinations": _destinations,
    "schedule": _schedule,
    "keep": _keep,
    "verify": _verify,
    "encrypted_only": _flag("encrypted_only"),
    "enabled": _flag("enabled"),
}


def check_not_inside_wallet(destinations: tuple[str, ...], wallet: Path) -> None:
    """A destination inside the wallet would archive its own archives (refused as the backup refuses it)."""
    for destination in destinations:
        if is_inside(Path(destination), wallet):
            raise ApiError(
                400,
                "Backup destination cannot be inside the wallet being backed up",
                extra={"field": "destinations", "destination": destination},
            )
