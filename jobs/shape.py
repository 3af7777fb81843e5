"""The one shape of a job kind: `plan` (the checks, before any job), `run` (the work), `cleanup` (after a crash).

    plan(params, services) -> plan     blocking; every check that needs no job, raising the API's exact
                                       error; the plan names the job's lane and the parameters it stores
    load(job) -> plan                  the plan again from what the job stored (the job may run after a
                                       rename moved its wallet): a classmethod of the plan
    run(plan, context) -> result       the work, its blocking part on the pool; raises JobFailed or JobCancelled
    cleanup(config, job) -> result?    a job that a restart interrupted, settled by what really happened:
                                       work that had finished gives its result (`recovered(...)`: marked
                                       "recovered": true) and the job completes; anything else is undone
                                       and None makes it fail "Interrupted by server restart"
    places(config) -> folders          where its temporary `.cloudcoin-*.tmp` names may lie, swept at
                                       start whatever the store says (jobs.sweep)
    follows_wallet                     a queued job moves with its wallet when a rename moves it (a
                                       rename does not: it names one folder)

A kind is one module exposing these and one row in `jobs.kinds.JOB_KINDS`; its HTTP endpoint is one
route row whose handler hands the request's parameters to `plan`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from app.wallet.config import Config
from jobs.context import JobContext, JobView
from jobs.models import Job, JobKind
from jobs.services import Services

#: the request's parameters as the HTTP side read them (query, form or JSON, all strings)
Params = Mapping[str, str]


class Plan(Protocol):
    """What every plan tells the queue: the lane (a wallet path) and the parameters the job stores."""

    @property
    def lane(self) -> str: ...

    def params(self) -> dict[str, Any]: ...


P = TypeVar("P", bound=Plan)


@dataclass(frozen=True, slots=True)
class JobSpec(Generic[P]):
    """One row of the table: a kind, its functions, and whether it follows a renamed wallet."""

    kind: JobKind
    plan: Callable[[Params, Services], P]
    load: Callable[[JobView], P]
    run: Callable[[P, JobContext], Awaitable[dict[str, Any]]]
    cleanup: Callable[[Config, Job], dict[str, Any] | None] | None = None
    places: Callable[[Config], Iterable[Path]] | None = None
    follows_wallet: bool = True


def recovered(result: dict[str, Any]) -> dict[str, Any]:
    """The result of work a restart found finished, marked as such (jobs.md)."""
    return {**result, "recovered": True}
