"""/api/dlq against a real Kafka broker and Postgres database of this module's own, with a
projector of its own.

Dead letters are real DeadLettered events on the dead-letter topics (originals: a real
ImageReceived, DetectionsProduced or BatchClosed). Requeue and clear act on the oldest
letters of a whole queue, and their events reach every projection of the topics: so this
module runs on services no other module uses, and a test that needs to know the whole
queue empties it first (through the API).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.queries.dlq import QUEUES, list_jobs
from api.queries.health import projector_lag
from projections.tables import DeadLetterAction
from schemas.codec import decode, encode
from schemas.system import DeadLettersCleared
from schemas.topics import BATCHES, DEAD_LETTER_TOPICS, IMAGES, TopicSpec
from tests.factories import (
    apply,
    batch_letter,
    detections_letter,
    ids_of,
    image_letter,
    unrequeueable_letter,
)
from tests.fakes import FakeSender
from tests.support import (
    TopicWatcher,
    fresh_read_models,
    new_camera_id,
    read_back,
    wait_for,
)
from tests.support import collect_about_letters as collect
from tests.support import seed_letters as seed

pytestmark = pytest.mark.usefixtures("projector")

DETECTION = "dlq:detection_queue"
ENRICHMENT = "dlq:enrichment_queue"
ANALYSIS = "dlq:analysis_queue"
JOB_KEYS = {
    "original_job",
    "original_encoding",
    "error",
    "error_type",
    "attempt_count",
    "first_failed_at",
    "last_failed_at",
    "queue_name",
    "dead_letter_id",
    "camera_id",
    "source_topic",
    "source_partition",
    "source_offset",
    "context",
}


@pytest.fixture(scope="module")
def projector(own_stack, own_engine) -> Iterator[str]:
    """A projector with a group of its own, caught up on the dead-letter topics."""
    group = f"dlq-projector-{uuid.uuid4().hex[:8]}"
    process = own_stack.start_app("projector", name=group, PROJECTOR_GROUP=group)

    def caught_up() -> bool:
        try:
            with Session(own_engine) as session:
                lag = projector_lag(admin, session, group, list(DEAD_LETTER_TOPICS.values()))
        except KafkaException:  # topics just created: no leader for a partition yet
            return False
        return not any(lag.values())

    try:
        with AdminClient({"bootstrap.servers": own_stack.kafka_bootstrap}) as admin:
            wait_for(caught_up, timeout=120, what="the projector to catch up on the DLQ topics")
        yield group
    finally:
        process.stop()


# --- API helpers --------------------------------------------------------------------------


def _ok(reply) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    return reply.json()


def _jobs(own_api_client, queue: str, **params) -> dict[str, Any]:
    return _ok(own_api_client.get(f"/api/dlq/jobs/{queue}", params=params))


def _pending(own_api_client, queue: str) -> list[str]:
    return [job["dead_letter_id"] for job in _jobs(own_api_client, queue, limit=1000)["jobs"]]


def _stats(own_api_client) -> dict[str, int]:
    return _ok(own_api_client.get("/api/dlq/stats"))


def _empty(own_api_client, queue: str) -> None:
    """Clear the whole queue, so that the test knows every letter in it."""
    _ok(own_api_client.delete(f"/api/dlq/{queue}"))
    assert _jobs(own_api_client, queue)["count"] == 0


@contextmanager
def _sender(own_api_client, sender: FakeSender, wait_s: float) -> Iterator[None]:
    """The API produces through `sender` (Kafka takes what it takes, nothing reaches the
    projection) and waits `wait_s` for the read model, within the block."""
    services = own_api_client.app.state.services
    saved = services.commands, services.read_your_writes_wait_s
    services.commands, services.read_your_writes_wait_s = sender, wait_s
    try:
        yield
    finally:
        services.commands, services.read_your_writes_wait_s = saved


def _action(own_engine: Engine, dead_letter_id: str) -> DeadLetterAction | None:
    with Session(own_engine) as session:
        return session.get(DeadLetterAction, dead_letter_id)


def _requeued_as(own_stack, own_engine, dead_letter_id: str, topic: TopicSpec) -> tuple[str, Any]:
    """Where the projection says the letter went, read back and decoded."""
    action = _action(own_engine, dead_letter_id)
    assert action is not None and action.action == "requeued"
    key, value = read_back(
        own_stack.kafka_bootstrap, topic.name, action.requeued_partition, action.requeued_offset
    )
    return key, decode(topic, value)


# --- stats and listing --------------------------------------------------------------------


def test_stats_count_pending_letters_per_queue(own_api_client, own_engine, own_producer):
    before = _stats(own_api_client)
    camera = new_camera_id("dlq")
    seed(
        own_producer,
        own_engine,
        *(image_letter(camera, m)[0] for m in (0, 1)),
        detections_letter(camera, 2)[0],
        *(batch_letter(camera, m)[0] for m in (3, 4, 5)),
    )
    added = {
        "detection_queue_count": 2,
        "enrichment_queue_count": 1,
        "analysis_queue_count": 3,
        "total_count": 6,
    }
    assert _stats(own_api_client) == {key: before[key] + added[key] for key in added}


def test_list_jobs_oldest_first_with_every_field(own_api_client, own_engine, own_producer):
    _empty(own_api_client, DETECTION)
    first, second = new_camera_id("dlq"), new_camera_id("dlq")
    (late, _), (oldest, image), (middle, _) = (
        image_letter(first, 2),
        image_letter(second, 0),
        image_letter(first, 1),
    )
    seed(own_producer, own_engine, late, oldest, middle)
    body = _jobs(own_api_client, DETECTION)
    assert (body["queue_name"], body["count"]) == (DETECTION, 3)
    assert [j["dead_letter_id"] for j in body["jobs"]] == ids_of([oldest, middle, late])
    assert all(set(job) == JOB_KEYS for job in body["jobs"])
    assert body["jobs"][0] == {
        "original_job": json.loads(encode(image)),
        "original_encoding": "json",
        "error": "TimeoutError: detector service unavailable",
        "error_type": "TimeoutError",
        "attempt_count": 3,
        "first_failed_at": "2001-01-01T00:00:00Z",
        "last_failed_at": "2001-01-01T00:00:10Z",
        "queue_name": "detection_queue",
        "dead_letter_id": str(oldest.event_id),
        "camera_id": second,
        "source_topic": IMAGES.name,
        "source_partition": 0,
        "source_offset": 0,
        "context": None,
    }


def test_list_jobs_pages_with_start_and_limit(own_api_client, own_engine, own_producer):
    _empty(own_api_client, ANALYSIS)
    camera = new_camera_id("dlq")
    ids = seed(own_producer, own_engine, *(batch_letter(camera, m)[0] for m in range(5)))
    pages = [
        _jobs(own_api_client, ANALYSIS, start=start, limit=limit)
        for start, limit in ((0, 2), (2, 2), (4, 2), (5, 100))
    ]
    assert [[j["dead_letter_id"] for j in p["jobs"]] for p in pages] == [
        ids[0:2],
        ids[2:4],
        ids[4:5],
        [],
    ]
    assert {p["count"] for p in pages} == {5}
    assert len(_jobs(own_api_client, ANALYSIS)["jobs"]) == 5  # default limit 100


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"start": -1}, "start", "greater than or equal to 0"),
        ({"start": "first"}, "start", "valid integer"),
    ],
)
def test_list_jobs_rejects_bad_paging(own_api_client, params, field, message):
    reply = own_api_client.get(f"/api/dlq/jobs/{DETECTION}", params=params)
    assert reply.status_code == 422
    [error] = reply.json()["detail"]
    assert error["loc"] == ["query", field]
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/dlq/jobs/{}"),
        ("POST", "/api/dlq/requeue/{}"),
        ("POST", "/api/dlq/requeue-all/{}"),
        ("DELETE", "/api/dlq/{}"),
    ],
)
@pytest.mark.parametrize("name", ["dlq:nope", "detection_queue"])
def test_unknown_queue_is_404_naming_the_queues(own_api_client, method, path, name):
    reply = own_api_client.request(method, path.format(name))
    assert reply.status_code == 404
    assert reply.json() == {
        "detail": f"unknown queue '{name}': the queues are "
        "dlq:detection_queue, dlq:enrichment_queue, dlq:analysis_queue",
        "error": "NotFound",
    }


# --- requeue ------------------------------------------------------------------------------


def test_requeue_sends_the_oldest_letter_back_to_its_topic(
    own_api_client, own_engine, own_producer, own_stack
):
    _empty(own_api_client, DETECTION)
    first, second = new_camera_id("dlq"), new_camera_id("dlq")
    (middle, _), (oldest, image), (late, _) = (
        image_letter(second, 1),
        image_letter(first, 0),
        image_letter(first, 2),
    )
    seed(own_producer, own_engine, middle, oldest, late)
    before = _stats(own_api_client)
    body = _ok(own_api_client.post(f"/api/dlq/requeue/{DETECTION}"))
    assert body == {
        "queue_name": DETECTION,
        "requeued": 1,
        "dead_letter_ids": [str(oldest.event_id)],
        "remaining": 2,
        "not_requeueable": 0,
        "message": f"requeued 1 letter of {DETECTION}",
    }
    assert _requeued_as(own_stack, own_engine, str(oldest.event_id), IMAGES) == (first, image)
    assert _pending(own_api_client, DETECTION) == ids_of([middle, late])
    after = _stats(own_api_client)
    assert after["detection_queue_count"] == before["detection_queue_count"] - 1
    assert after["total_count"] == before["total_count"] - 1


def test_requeue_an_empty_queue_requeues_nothing(own_api_client):
    _empty(own_api_client, ENRICHMENT)
    for path in ("requeue", "requeue-all"):
        body = _ok(own_api_client.post(f"/api/dlq/{path}/{ENRICHMENT}"))
        assert (body["requeued"], body["dead_letter_ids"], body["remaining"]) == (0, [], 0)
    assert _ok(own_api_client.post(f"/api/dlq/requeue/{ENRICHMENT}"))["message"] == (
        f"queue {ENRICHMENT} is empty: nothing to requeue"
    )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("text", "its original message was not JSON (kept as text), so it is not an event"),
        ("base64", "its original message was not JSON (kept as base64), so it is not an event"),
        ("sourceless", "it was refused before it reached any topic (PermissionError)"),
        ("foreign", "its source topic someone.elses.topic is not a Vigil topic"),
    ],
    ids=["text", "base64", "sourceless", "foreign"],
)
def test_requeue_refuses_a_letter_it_cannot_send(
    own_api_client, own_engine, own_producer, kind, reason
):
    _empty(own_api_client, DETECTION)
    camera = new_camera_id("dlq")
    bad = unrequeueable_letter(kind, "detection", camera, 0)
    good, _ = image_letter(camera, 1)
    seed(own_producer, own_engine, bad, good)
    reply = own_api_client.post(f"/api/dlq/requeue/{DETECTION}")
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"] == "NotRequeueable"
    detail = reply.json()["detail"]
    assert detail.startswith(
        f"the oldest letter of {DETECTION} ({bad.event_id}) cannot be requeued: {reason}"
    )
    assert detail.endswith(". Clear the queue to drop it; requeue-all skips it.")
    assert _pending(own_api_client, DETECTION) == ids_of([bad, good])
    assert _action(own_engine, str(bad.event_id)) is None


def test_requeue_all_empties_the_queue(own_api_client, own_engine, own_producer, own_stack):
    _empty(own_api_client, ANALYSIS)
    first, second = new_camera_id("dlq"), new_camera_id("dlq")
    seeded = [batch_letter(camera, m) for m, camera in enumerate([first, second, second, first])]
    ids = seed(own_producer, own_engine, *(letter for letter, _ in seeded))
    body = _ok(own_api_client.post(f"/api/dlq/requeue-all/{ANALYSIS}"))
    assert body == {
        "queue_name": ANALYSIS,
        "requeued": 4,
        "dead_letter_ids": ids,
        "remaining": 0,
        "not_requeueable": 0,
        "message": f"requeued 4 letters of {ANALYSIS}",
    }
    assert _jobs(own_api_client, ANALYSIS) == {"queue_name": ANALYSIS, "jobs": [], "count": 0}
    for letter, batch in seeded:
        assert _requeued_as(own_stack, own_engine, str(letter.event_id), BATCHES) == (
            letter.camera_id,
            batch,
        )


def test_requeue_all_takes_at_most_the_limit_per_call(
    own_api_client, own_engine, own_producer, monkeypatch
):
    monkeypatch.setattr("api.routes.dlq.REQUEUE_ALL_LIMIT", 2)
    _empty(own_api_client, DETECTION)
    camera = new_camera_id("dlq")
    ids = seed(own_producer, own_engine, *(image_letter(camera, m)[0] for m in range(3)))
    calls = [_ok(own_api_client.post(f"/api/dlq/requeue-all/{DETECTION}")) for _ in range(3)]
    assert [(c["dead_letter_ids"], c["remaining"]) for c in calls] == [
        (ids[:2], 1),
        (ids[2:], 0),
        ([], 0),
    ]


def test_requeue_all_skips_letters_it_cannot_send(own_api_client, own_engine, own_producer):
    _empty(own_api_client, ENRICHMENT)
    camera = new_camera_id("dlq")
    text_letter = unrequeueable_letter("text", "enrichment", camera, 0)
    sourceless = unrequeueable_letter("sourceless", "enrichment", camera, 3)
    good = [detections_letter(camera, m)[0] for m in (1, 2)]
    seed(own_producer, own_engine, text_letter, *good, sourceless)
    body = _ok(own_api_client.post(f"/api/dlq/requeue-all/{ENRICHMENT}"))
    assert (body["requeued"], body["dead_letter_ids"]) == (2, ids_of(good))
    assert (body["remaining"], body["not_requeueable"]) == (2, 2)
    assert _pending(own_api_client, ENRICHMENT) == ids_of([text_letter, sourceless])


def test_concurrent_requeues_take_different_letters(own_api_client, own_engine, own_producer):
    _empty(own_api_client, DETECTION)
    camera = new_camera_id("dlq")
    ids = seed(own_producer, own_engine, *(image_letter(camera, m)[0] for m in range(3)))
    with ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(
            pool.map(lambda _: own_api_client.post(f"/api/dlq/requeue/{DETECTION}"), range(3))
        )
    taken = [i for reply in replies for i in _ok(reply)["dead_letter_ids"]]
    assert sorted(taken) == sorted(ids)
    assert _pending(own_api_client, DETECTION) == []


NOT_CAUGHT_UP = "; the queue had not caught up yet"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            "POST",
            "/api/dlq/requeue/{}",
            lambda ids: {
                "queue_name": ANALYSIS,
                "requeued": 1,
                "dead_letter_ids": ids[:1],
                "remaining": 1,
                "not_requeueable": 0,
                "message": f"requeued 1 letter of {ANALYSIS}{NOT_CAUGHT_UP}",
            },
        ),
        (
            "POST",
            "/api/dlq/requeue-all/{}",
            lambda ids: {
                "queue_name": ANALYSIS,
                "requeued": 2,
                "dead_letter_ids": ids,
                "remaining": 0,
                "not_requeueable": 0,
                "message": f"requeued 2 letters of {ANALYSIS}{NOT_CAUGHT_UP}",
            },
        ),
        (
            "DELETE",
            "/api/dlq/{}",
            lambda ids: {
                "queue_name": ANALYSIS,
                "cleared": 2,
                "message": f"cleared 2 letters of {ANALYSIS}{NOT_CAUGHT_UP}",
            },
        ),
    ],
    ids=["requeue", "requeue-all", "clear"],
)
def test_answers_202_when_the_queue_does_not_show_it_in_time(
    own_api_client, own_engine, own_producer, method, path, expected
):
    _empty(own_api_client, ANALYSIS)
    ids = seed(
        own_producer, own_engine, *(batch_letter(new_camera_id("dlq"), m)[0] for m in (0, 1))
    )
    with _sender(own_api_client, FakeSender(), wait_s=0.3):
        reply = own_api_client.request(method, path.format(ANALYSIS))
    assert reply.status_code == 202, reply.text
    assert reply.json() == expected(ids)
    assert _pending(own_api_client, ANALYSIS) == ids


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        (
            "POST",
            "/api/dlq/requeue/{}",
            "requeue of {queue}: 1 letters, 1 were not acknowledged on their source topic "
            "(Local: Message timed out) and stay in the queue",
        ),
        (
            "DELETE",
            "/api/dlq/{}",
            "clear of {queue}: cleared 0 letters, but 1 DeadLettersCleared were not "
            "acknowledged (Local: Message timed out): their letters stay in the queue",
        ),
    ],
)
def test_answers_503_when_kafka_does_not_take_the_messages(
    own_api_client, own_engine, own_producer, method, path, detail
):
    _empty(own_api_client, ANALYSIS)
    camera = new_camera_id("dlq")
    ids = seed(own_producer, own_engine, batch_letter(camera, 0)[0])
    with _sender(own_api_client, FakeSender(refuse=(camera,)), wait_s=0.3):
        reply = own_api_client.request(method, path.format(ANALYSIS))
    assert reply.status_code == 503, reply.text
    assert reply.json() == {"detail": detail.format(queue=ANALYSIS), "error": "DeliveryIncomplete"}
    assert _pending(own_api_client, ANALYSIS) == ids


# --- clear --------------------------------------------------------------------------------


def test_clear_empties_the_queue_with_one_event_per_camera(
    own_api_client, own_engine, own_producer, own_stack
):
    _empty(own_api_client, ENRICHMENT)
    watcher = TopicWatcher(own_stack.kafka_bootstrap, DEAD_LETTER_TOPICS["enrichment"])
    first, second = new_camera_id("dlq"), new_camera_id("dlq")
    letters = [
        detections_letter(first, 0)[0],
        detections_letter(second, 1)[0],
        detections_letter(first, 2)[0],
        unrequeueable_letter("sourceless", "enrichment", first, 3),
    ]
    seed(own_producer, own_engine, *letters)
    try:
        body = _ok(own_api_client.delete(f"/api/dlq/{ENRICHMENT}"))
        ids = ids_of(letters)
        events = collect(watcher, set(ids), len(letters) + 3)
    finally:
        watcher.close()
    assert body == {
        "queue_name": ENRICHMENT,
        "cleared": 4,
        "message": f"cleared 4 letters of {ENRICHMENT}",
    }
    assert _jobs(own_api_client, ENRICHMENT) == {"queue_name": ENRICHMENT, "jobs": [], "count": 0}
    assert _stats(own_api_client)["enrichment_queue_count"] == 0
    cleared = {
        key: event.dead_letter_ids for key, event in events if isinstance(event, DeadLettersCleared)
    }
    assert cleared == {first: (ids[0], ids[2]), second: (ids[1],), None: (ids[3],)}
    assert {_action(own_engine, i).action for i in ids} == {"cleared"}


# --- replay -------------------------------------------------------------------------------


@pytest.fixture
def fresh_databases(own_stack) -> Iterator[list[Engine]]:
    """Two empty read-model databases (schemas of the test database, migrated to head)."""
    with fresh_read_models(own_stack.database_url, "dlq_replay", 2) as engines:
        yield engines


def _queue_in(fresh: Engine) -> tuple[list[str], dict[str, str]]:
    """The detection queue as this database shows it, and every action by letter."""
    with Session(fresh) as session:
        jobs = list_jobs(session, QUEUES[DETECTION], 0, 1000)
        actions = session.execute(select(DeadLetterAction.dead_letter_id, DeadLetterAction.action))
        return [job.dead_letter_id for job in jobs.jobs], dict(actions.all())


def test_replay_in_any_order_gives_the_same_queue(
    own_api_client, own_engine, own_producer, own_stack, fresh_databases
):
    _empty(own_api_client, DETECTION)
    watcher = TopicWatcher(own_stack.kafka_bootstrap, DEAD_LETTER_TOPICS["detection"])
    first, second = new_camera_id("dlq"), new_camera_id("dlq")
    try:
        early = [image_letter(first, 0)[0], image_letter(second, 1)[0]]
        seed(own_producer, own_engine, *early)
        _ok(own_api_client.post(f"/api/dlq/requeue/{DETECTION}"))  # the first camera's
        _ok(own_api_client.delete(f"/api/dlq/{DETECTION}"))  # the second camera's
        later = [image_letter(first, 2)[0], image_letter(second, 3)[0]]
        seed(own_producer, own_engine, *later)
        _ok(own_api_client.post(f"/api/dlq/requeue/{DETECTION}"))  # the first camera's again
        letters = early + later
        # four letters, two requeued, one cleared
        events = [event for _, event in collect(watcher, set(ids_of(letters)), 7)]
    finally:
        watcher.close()
    pending = _pending(own_api_client, DETECTION)
    assert pending == [str(later[1].event_id)]

    in_order, reversed_twice = fresh_databases
    apply(in_order, *events)
    apply(reversed_twice, *reversed(events))  # every action before its letter
    apply(reversed_twice, *reversed(events))
    expected_actions = {
        str(early[0].event_id): "requeued",
        str(early[1].event_id): "cleared",
        str(later[0].event_id): "requeued",
    }
    assert _queue_in(in_order) == (pending, expected_actions)
    assert _queue_in(reversed_twice) == (pending, expected_actions)
