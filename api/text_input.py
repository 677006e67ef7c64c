"""Text the API takes in must be storable: Postgres text holds no NUL (U+0000) and UTF-8
holds no lone surrogate (a JSON "\\ud800"). Either would fail deep down, in a query (a 500)
or, for a command, in the projector long after the API answered; `storable_text`, a
dependency of every route, refuses it up front with a 422 that names the parameter."""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored, or None if it can."""
    if "\x00" in text:
        return "contains a NUL character (U+0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode text"
    return None


def _refused(loc: list[str | int], reason: str) -> HTTPException:
    return HTTPException(
        status_code=422,
        detail=[{"loc": loc, "msg": f"{loc[-1]} {reason}", "type": "value_error.text"}],
    )


def _walk(value: Any, loc: list[str | int]) -> None:
    """Raise for the first string (key or value) in a decoded JSON body that cannot be stored."""
    if isinstance(value, str):
        if reason := unstorable(value):
            raise _refused(loc, reason)
    elif isinstance(value, dict):
        for key, item in value.items():
            if reason := unstorable(key):
                raise _refused([*loc, key], reason)
            _walk(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, [*loc, index])


async def storable_text(connection: HTTPConnection) -> None:
    """Refuse a path or query parameter, or a JSON body string, that cannot be stored."""
    places = (
        ("path", connection.path_params.items()),
        ("query", connection.query_params.multi_items()),
    )
    for where, items in places:
        for name, value in items:
            if isinstance(value, str) and (reason := unstorable(value)):
                raise _refused([where, name], reason)
    if not isinstance(connection, Request) or "json" not in connection.headers.get(
        "content-type", ""
    ):
        return
    try:
        body = json.loads(await connection.body())
    except ValueError:
        return  # not JSON: FastAPI's own validation answers it
    _walk(body, ["body"])
