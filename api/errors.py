"""The API's own errors, and the one place that turns them into HTTP answers.

Use cases, queries and routes raise these, never an HTTP exception; `install` registers
the one handler, which answers each with its status and `{"detail": ..., "error": ...}`
(`error` names the type). `NotYetVisible` is no failure: the change is on Kafka and the
read model does not show it yet, so it answers 202 with the outcome it carries.
FastAPI's own 422 answers for bad parameters are left as FastAPI makes them; `invalid_query`
makes one of the same shape for a parameter only the code can check.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

T = TypeVar("T")


class ApiError(Exception):
    """Something the caller is told about; `detail` is the text the answer carries."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiError):
    """No batch, detection, event, enrichment, queue or breaker by that name."""


class Conflict(ApiError):
    """The change does not fit the state the read model shows (a batch no longer aggregating)."""


class NotRequeueable(Conflict):
    """The oldest letter of a queue has no topic or no JSON to go back as."""


class Gone(ApiError):
    """It existed, and is no more: a completed export whose file was removed."""


class DeliveryFailed(ApiError):
    """Kafka did not acknowledge a message in time: the caller may retry."""


class DeliveryIncomplete(DeliveryFailed):
    """Kafka did not acknowledge some of one call's messages; the detail says which went."""


class Unauthorized(ApiError):
    """No API key, or not one of the configured ones."""


class Forbidden(ApiError):
    """A signed URL whose signature does not match, or that has expired; a file the API
    will not serve."""


class NotYetVisible(ApiError):
    """Done on Kafka; the read model does not show it yet. Carries the outcome to answer."""

    def __init__(self, outcome: BaseModel) -> None:
        super().__init__("done on Kafka; the read model does not show it yet")
        self.outcome = outcome


def invalid_query(param: str, message: str, kind: str) -> HTTPException:
    """A 422 shaped as FastAPI's own, for a query parameter only the code can check."""
    return HTTPException(
        status_code=422, detail=[{"loc": ["query", param], "msg": message, "type": kind}]
    )


STATUS_CODES: dict[type[ApiError], int] = {
    NotYetVisible: 202,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    DeliveryFailed: 503,
}


def status_of(error: ApiError) -> int:
    """The status of the nearest kind of error in STATUS_CODES; 500 for one of no kind."""
    for kind in type(error).__mro__:
        if kind in STATUS_CODES:
            return STATUS_CODES[kind]
    return 500


async def answer(_request: Request, error: ApiError) -> JSONResponse:
    """The one exception handler of the app: every ApiError becomes its answer here."""
    if isinstance(error, NotYetVisible):
        return JSONResponse(status_code=202, content=error.outcome.model_dump(mode="json"))
    headers = {"WWW-Authenticate": "ApiKey"} if isinstance(error, Unauthorized) else None
    return JSONResponse(
        status_code=status_of(error),
        content={"detail": error.detail, "error": type(error).__name__},
        headers=headers,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, answer)


def found(value: T | None, what: str) -> T:
    """`value`, unless the read model had none: then NotFound, "<what> not found"."""
    if value is None:
        raise NotFound(f"{what} not found")
    return value
