"""The one exception handler: each API error's status, body and headers, on a tiny app."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from api.errors import (
    ApiError,
    Conflict,
    DeliveryFailed,
    DeliveryIncomplete,
    NotFound,
    NotRequeueable,
    NotYetVisible,
    Unauthorized,
    found,
    status_of,
)
from api.main import create_app
from api.models import FlushOutcome


def _client(error: Exception) -> TestClient:
    """An app registered like create_app's, whose one route raises `error`."""
    app = FastAPI()
    errors.install(app)

    @app.get("/raises")
    def raises() -> None:
        raise error

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return TestClient(app)


@pytest.mark.parametrize(
    ("error", "status", "name"),
    [
        (NotFound("batch b1 not found"), 404, "NotFound"),
        (Conflict("batch b1 is completed"), 409, "Conflict"),
        (NotRequeueable("the oldest letter cannot be requeued"), 409, "NotRequeueable"),
        (DeliveryFailed("FlushBatch was not acknowledged"), 503, "DeliveryFailed"),
        (DeliveryIncomplete("clear of q: 1 not acknowledged"), 503, "DeliveryIncomplete"),
    ],
)
def test_error_answers_its_status_with_detail_and_type(error, status, name):
    reply = _client(error).get("/raises")
    assert reply.status_code == status
    assert reply.json() == {"detail": error.detail, "error": name}
    assert "www-authenticate" not in reply.headers
    assert status_of(error) == status


def test_unauthorized_answers_401_asking_for_the_key():
    reply = _client(Unauthorized("invalid API key")).get("/raises")
    assert reply.status_code == 401
    assert reply.json() == {"detail": "invalid API key", "error": "Unauthorized"}
    assert reply.headers["www-authenticate"] == "ApiKey"


def test_not_yet_visible_answers_202_with_the_outcome_it_carries():
    outcome = FlushOutcome(
        status="queued", batch_id="b1", detection_count=3, message="Flush requested"
    )
    reply = _client(NotYetVisible(outcome)).get("/raises")
    assert reply.status_code == 202
    assert reply.json() == {
        "status": "queued",
        "batch_id": "b1",
        "detection_count": 3,
        "message": "Flush requested",
    }


def test_an_error_of_no_kind_is_500():
    reply = _client(ApiError("a bug")).get("/raises")
    assert reply.status_code == 500
    assert reply.json() == {"detail": "a bug", "error": "ApiError"}


def test_fastapi_validation_answers_stay_as_fastapi_makes_them():
    reply = _client(NotFound("unused")).get("/items/seven")
    assert reply.status_code == 422
    [problem] = reply.json()["detail"]
    assert problem["loc"] == ["path", "item_id"]
    assert set(reply.json()) == {"detail"}


def test_unknown_path_stays_starlettes_404():
    reply = _client(NotFound("unused")).get("/nowhere")
    assert (reply.status_code, reply.json()) == (404, {"detail": "Not Found"})


def test_create_app_registers_the_one_handler():
    app = create_app()
    assert app.exception_handlers[ApiError] is errors.answer


def test_found_passes_a_value_and_names_what_is_missing():
    assert found(0, "detection 0") == 0
    with pytest.raises(NotFound) as raised:
        found(None, "detection 7")
    assert raised.value.detail == "detection 7 not found"
