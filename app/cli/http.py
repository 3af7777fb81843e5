"""The client's only way to the server: JSON calls and a job's event stream over aiohttp's client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

#: Finished statuses of jobs.md: a job in one of them never changes again, its stream ends.
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
#: How often a broken event stream is reopened (with Last-Event-ID) before the client gives up.
RECONNECTS = 5


class CliFailure(Exception):
    """Ends the command: `message` on one line of stderr, then `exit_code` (cli.md's table)."""

    def __init__(self, message: str, exit_code: int, body: Any = None) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, whatever the server sent
        self.exit_code = exit_code
        self.body = body


class Unreachable(CliFailure):
    def __init__(self, server: str, reason: str) -> None:
        super().__init__(
            f"Cannot reach the server at {server} ({reason}). Start it with `cloudcoin-wallet serve` "
            "(or `.venv/bin/python -m app`), or point --server / CLOUDCOIN_SERVER at it.",
            3,
        )


class Refused(CliFailure):
    """A 4xx/5xx answer: exit 4 when refused for want of a token, else 1.

    A 401 is the token's only when it asks for one (`WWW-Authenticate: Bearer`): a login's 401
    "Incorrect password" is an ordinary failure.
    """

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        asks_for_bearer = "bearer" in (headers or {}).get("WWW-Authenticate", "").lower()
        wants_token = status == 403 or (status == 401 and asks_for_bearer)
        super().__init__(f"{error_message(body)} (HTTP {status})", 4 if wants_token else 1, body)
        self.status = status


def error_message(body: Any) -> str:
    """The human text of any of the server's three error shapes (api.md), or the body itself."""
    if isinstance(body, Mapping):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
        if isinstance(body.get("payload"), Mapping):
            return error_message(body["payload"])
    return json.dumps(body, separators=(",", ":")) if body is not None else "No answer body"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


class Api:
    """`async with Api(server, token) as api:` one session for the command; every call raises on failure."""

    def __init__(self, server: str, token: str | None) -> None:
        self.server = server.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with Api(...)`"
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        url = self.server + path
        try:
            async with self.session.request(method, url, params=params, json=json_body, headers=headers) as response:
                text = await response.text()
                body = _decode(text)
                if response.status >= 400:
                    raise Refused(response.status, body, response.headers)
                return Answer(response.status, body, dict(response.headers))
        except aiohttp.ClientConnectionError as exc:
            raise Unreachable(self.server, _reason(exc)) from None
        except aiohttp.InvalidURL:
            raise CliFailure(f"Not a server URL: {self.server!r}", 2) from None

    async def events(self, events_path: str) -> AsyncIterator[dict[str, Any]]:
        """The job JSON of every event until the final one (jobs.md), reopening a broken stream."""
        last_id = ""
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                async with self.session.get(self.server + events_path, headers=headers) as response:
                    if response.status >= 400:
                        raise Refused(response.status, _decode(await response.text()), response.headers)
                    async for event_id, job in _parse_stream(response.content):
                        last_id = event_id or last_id
                        failures = 0
                        yield job
                        if job.get("status") in FINAL_STATUSES:
                            return
            except aiohttp.ClientConnectionError as exc:
                failures += 1
                if failures > RECONNECTS:
                    raise Unreachable(self.server, _reason(exc)) from None
            # The stream ended before the final event (a proxy, a restart): reopen where it stopped.


async def _parse_stream(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event_id, data = "", list[str]()
    async for raw in content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event_id, json.loads("\n".join(data))
            event_id, data = "", list[str]()
        elif line.startswith(":"):
            continue  # keep-alive comment
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                event_id = value
            elif name == "data":
                data.append(value)


def _decode(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"error": text.strip()[:500]}


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "os_error", None) or exc) or type(exc).__name__
