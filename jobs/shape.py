"""The one shape of a job kind: `plan` (the checks, before any job), `run` (the work), `cleanup` (after a crash).

    plan(params, services) -> plan     blocking; every check that needs no job, raising the API's exact
                                       error; the plan names the job's lane and the parameters it stores
    load(job) -> plan                  the plan again from what the job stored (the job may run after a
                                       rename moved its wallet): a classmethod of the plan
    run(plan, context) -> result       the work, its blocking part on the pool; raises JobFailed or JobCancelled
    cleanup(config, job)               a job that a restart interrupted: remove what it left half done

A kind is one module exposing these and one row in `jobs.kinds.JOB_KINDS`; its HTTP endpoint is one
route row whose handler hands the request's parameters to `plan`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
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
    """One row of the table: a kind and its four functions."""

    kind: JobKind
    plan: Callable[[Params, Services], P]
    load: Callable[[JobView], P]
    run: Callable[[P, JobContext], Awaitable[dict[str, Any]]]
    cleanup: Callable[[Config, Job], None] | None = None
