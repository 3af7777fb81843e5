"""What the client prints on stdout: JSON bodies for --json, else tables and `name: value` lines for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Fields of a result that say nothing to a person reading it (the JSON has them all).
HIDDEN = frozenset({"success", "command", "message", "links"})


def emit_json(body: Any) -> None:
    """One JSON document on one line: `--follow`/`--watch` print one per event, scripts read line by line."""
    click.echo(json.dumps(body, ensure_ascii=False, separators=(",", ":")))


def console() -> Console:
    # Not a terminal: no wrapping of long paths at 80 columns (the reader is a file or a pipe).
    return Console(width=None if sys.stdout.isatty() else 1000, soft_wrap=not sys.stdout.isatty())


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    grid = Table(title=None if title is None else Text(title), title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, no_wrap=column in ("ID", "Path", "Archive", "Wallet"))
    for row in rows:
        # Names are the user's: rich markup in a wallet name is shown as typed, never interpreted.
        grid.add_row(*(_plain(cell) for cell in row))
    return grid


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    console().print(table(title, columns, rows))


def print_fields(body: dict[str, Any], *, heading: str | None = None) -> None:
    """A result as `name: value` lines, its message first."""
    if heading or body.get("message"):
        click.echo(heading or body["message"])
    for key, value in body.items():
        if key in HIDDEN or value is None:
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        click.echo(f"  {key}: {value}")


def number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _plain(cell: Any) -> Text:
    return Text("" if cell is None else str(cell))
