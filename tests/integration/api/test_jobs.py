"""/api/jobs reads: list, search, stats, status, detail, history and logs, against the real
Postgres. Every test makes job types of its own, so other jobs in the database do not count."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.tables import JobRow
from schemas.envelope import utcnow
from schemas.jobs import FINISHED, JOB_STATUSES, JobLogged
from tests.factories import apply, job_requested, job_run

BASE = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
LIST_KEYS = {"job_id", "job_type", "status", "progress", "created_at", "started_at", "metadata"}


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def seeded(engine) -> dict:
    """Six jobs of two types of their own; durations are from first start to finish.

    a: export, completed, created BASE, started +2s, finished +8s (6 s)
    b: export, failed, created +1min, started +1s, finished +4s (3 s), "disk full"
    c: cleanup, pending, created +2min
    d: cleanup, running, created +3min, started +1s
    e: export, completed after a retried attempt, created +4min, started +2s, finished +12s
       (10 s), its error message kept from the first attempt
    f: cleanup, aborted, created +5min, started +1s, finished +4s (3 s)
    """
    marker = uuid.uuid4().hex
    export, cleanup = unique("export"), unique("cleanup")

    def request(job_type: str, minutes: int):
        return job_requested(
            job_type,
            at=BASE + timedelta(minutes=minutes),
            params={"format": "csv", "tag": marker},
        )

    a, b, e = request(export, 0), request(export, 1), request(export, 4)
    c, d, f = request(cleanup, 2), request(cleanup, 3), request(cleanup, 5)
    apply(
        engine,
        a,
        *job_run(a, "completed", steps=2, seconds=8),
        b,
        *job_run(b, "failed", steps=2, seconds=4),
        c,
        d,
        *job_run(d, "running", steps=2, seconds=4),
        e,
        *job_run(e, "completed", steps=1, attempts=2, seconds=12),
        f,
        *job_run(f, "aborted", steps=2, seconds=4),
    )
    jobs = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}
    return {
        "marker": marker,
        "export": export,
        "cleanup": cleanup,
        "ids": {name: job.job_id for name, job in jobs.items()},
        "types": f"{export},{cleanup}",
    }


def _ids(seeded: dict, *names: str) -> list[str]:
    return [seeded["ids"][name] for name in names]


def _search(api_client, seeded: dict, **params) -> dict:
    params = {"job_type": seeded["types"], **params}
    response = api_client.get("/api/jobs/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- list ------------------------------------------------------------------------------------


def test_list_filters_by_type_and_status_newest_first(api_client, seeded):
    export = seeded["export"]
    body = api_client.get("/api/jobs", params={"job_type": export}).json()
    assert (body["count"], body["limit"], body["offset"]) == (3, 50, 0)
    assert [job["job_id"] for job in body["jobs"]] == _ids(seeded, "e", "b", "a")
    assert all(set(job) == LIST_KEYS for job in body["jobs"])

    done = api_client.get("/api/jobs", params={"job_type": export, "status": "completed"})
    assert [job["job_id"] for job in done.json()["jobs"]] == _ids(seeded, "e", "a")
    assert done.json()["count"] == 2

    nothing = api_client.get(
        "/api/jobs", params={"job_type": seeded["cleanup"], "status": "completed"}
    ).json()
    assert (nothing["jobs"], nothing["count"]) == ([], 0)


def test_list_count_is_every_match_not_the_page(api_client, seeded):
    body = api_client.get(
        "/api/jobs", params={"job_type": seeded["export"], "limit": 1, "offset": 1}
    ).json()
    assert (body["count"], body["limit"], body["offset"]) == (3, 1, 1)
    assert [job["job_id"] for job in body["jobs"]] == _ids(seeded, "b")


def test_list_item_carries_params_and_progress_as_metadata(api_client, seeded):
    body = api_client.get(
        "/api/jobs", params={"job_type": seeded["export"], "status": "completed", "limit": 1}
    ).json()
    (job,) = body["jobs"]
    assert job == {
        "job_id": seeded["ids"]["e"],
        "job_type": seeded["export"],
        "status": "completed",
        "progress": 100,
        "created_at": iso(BASE + timedelta(minutes=4)),
        "started_at": iso(BASE + timedelta(minutes=4, seconds=2)),
        "metadata": {
            "format": "csv",
            "tag": seeded["marker"],
            "processed": 10,
            "total": 20,
            "message": "Completed",
        },
    }
    pending = api_client.get(
        "/api/jobs", params={"job_type": seeded["cleanup"], "status": "pending"}
    ).json()["jobs"]
    assert [(j["started_at"], j["progress"], j["metadata"]) for j in pending] == [
        (None, 0, {"format": "csv", "tag": seeded["marker"]})
    ]


@pytest.mark.parametrize(
    "params",
    [{"status": "done"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}],
)
def test_list_rejects_bad_parameters(api_client, params):
    assert api_client.get("/api/jobs", params=params).status_code == 422


# --- search ----------------------------------------------------------------------------------


def test_search_aggregates_over_every_match_not_the_page(api_client, seeded):
    body = _search(api_client, seeded, limit=2)
    assert (body["count"], body["limit"], body["offset"]) == (6, 2, 0)
    assert [job["job_id"] for job in body["jobs"]] == _ids(seeded, "f", "e")
    assert all(set(job) == LIST_KEYS for job in body["jobs"])
    assert body["aggregations"] == {
        "by_status": {"completed": 2, "failed": 1, "pending": 1, "running": 1, "aborted": 1},
        "by_type": {seeded["export"]: 3, seeded["cleanup"]: 3},
    }


def test_search_aggregates_over_the_filtered_set(api_client, seeded):
    body = _search(api_client, seeded, status="completed, failed", limit=1, offset=1)
    assert body["count"] == 3
    assert [job["job_id"] for job in body["jobs"]] == _ids(seeded, "b")
    assert body["aggregations"] == {
        "by_status": {"completed": 2, "failed": 1},
        "by_type": {seeded["export"]: 3},
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"job_type_only": "cleanup"}, ["f", "d", "c"]),
        ({"queue": "cleanup"}, ["f", "d", "c"]),
        ({"has_error": "true"}, ["e", "b"]),
        ({"has_error": "false"}, ["f", "d", "c", "a"]),
        ({"q": "DISK FULL"}, ["b"]),
        ({"q": "ROWS"}, ["e", "a"]),
        ({"q": "CLEANUP-"}, ["f", "d", "c"]),
        ({"created_after": BASE + timedelta(minutes=1)}, ["f", "e", "d", "c", "b"]),
        (
            {
                "created_after": BASE + timedelta(minutes=1),
                "created_before": BASE + timedelta(minutes=3),
            },
            ["d", "c", "b"],
        ),
        ({"completed_after": BASE + timedelta(minutes=1)}, ["f", "e", "b"]),
        ({"completed_before": BASE + timedelta(minutes=1)}, ["a"]),
        ({"min_duration": 5}, ["e", "a"]),
        ({"max_duration": 3}, ["f", "b"]),
        ({"min_duration": 4, "max_duration": 8}, ["a"]),
        ({"min_duration": 0}, ["f", "e", "b", "a"]),
        ({}, ["f", "e", "d", "c", "b", "a"]),
    ],
)
def test_search_filters(api_client, seeded, params, expected):
    params = dict(params)
    if params.pop("job_type_only", None):
        params["job_type"] = seeded["cleanup"]
    if params.get("queue") == "cleanup":
        params["queue"] = seeded["cleanup"]
    if params.get("q") == "CLEANUP-":
        params["q"] = seeded["cleanup"].upper()
    params = {k: iso(v) if isinstance(v, datetime) else v for k, v in params.items()}
    body = _search(api_client, seeded, **params)
    assert [job["job_id"] for job in body["jobs"]] == _ids(seeded, *expected)
    assert body["count"] == len(expected)
    assert sum(body["aggregations"]["by_status"].values()) == len(expected)


def test_search_q_matches_params_case_insensitively(api_client, seeded):
    response = api_client.get("/api/jobs/search", params={"q": seeded["marker"].upper()})
    body = response.json()
    assert body["count"] == 6
    assert sorted(job["job_id"] for job in body["jobs"]) == sorted(seeded["ids"].values())


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("created_at", "asc", ["a", "b", "c", "d", "e", "f"]),
        ("created_at", "desc", ["f", "e", "d", "c", "b", "a"]),
        # Jobs without a value come last either way.
        ("started_at", "asc", ["a", "b", "d", "e", "f", "c"]),
        ("started_at", "desc", ["f", "e", "d", "b", "a", "c"]),
    ],
)
def test_search_sorts(api_client, seeded, sort, order, expected):
    body = _search(api_client, seeded, sort=sort, order=order)
    assert [job["job_id"] for job in body["jobs"]] == _ids(seeded, *expected)


def test_search_sorts_unfinished_jobs_last_by_completion(api_client, seeded):
    for order, finished in (("asc", ["a", "b", "e", "f"]), ("desc", ["f", "e", "b", "a"])):
        ids = [
            job["job_id"]
            for job in _search(api_client, seeded, sort="completed_at", order=order)["jobs"]
        ]
        assert ids[:4] == _ids(seeded, *finished)
        assert set(ids[4:]) == set(_ids(seeded, "c", "d"))


def test_search_sorts_by_type_and_progress(api_client, seeded):
    by_type = _search(api_client, seeded, sort="job_type", order="asc")["jobs"]
    assert [job["job_type"] for job in by_type] == [seeded["cleanup"]] * 3 + [seeded["export"]] * 3
    by_progress = _search(api_client, seeded, sort="progress", order="desc")["jobs"]
    assert [job["progress"] for job in by_progress] == [100, 100, 66, 66, 66, 0]


def test_search_unknown_status_is_422_naming_it(api_client):
    response = api_client.get("/api/jobs/search", params={"status": "running,done,lost"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "status"]
    assert error["msg"].startswith("unknown status done, lost:")


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "job_id"},
        {"order": "up"},
        {"limit": 0},
        {"limit": 1001},
        {"has_error": "maybe"},
        {"min_duration": -1},
        {"created_after": "yesterday"},
    ],
)
def test_search_rejects_bad_parameters(api_client, params):
    assert api_client.get("/api/jobs/search", params=params).status_code == 422


# --- stats -----------------------------------------------------------------------------------


def test_stats_count_new_jobs_by_status_type_and_recency(api_client, engine):
    job_type = unique("stats")
    before = api_client.get("/api/jobs/stats").json()
    assert set(before["by_status"]) == set(JOB_STATUSES)

    now = utcnow()
    recent = job_requested(job_type, at=now - timedelta(seconds=30))
    earlier = job_requested(job_type, at=now - timedelta(hours=2))
    old = job_requested(job_type, at=BASE)
    apply(
        engine,
        recent,
        earlier,
        *job_run(earlier, "completed", seconds=8),
        old,
        *job_run(old, "failed", seconds=4),
    )
    after = api_client.get("/api/jobs/stats").json()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = sum(1 for job in (recent, earlier) if job.occurred_at >= midnight)

    assert after["total_jobs"] - before["total_jobs"] == 3
    assert after["total_jobs"] == sum(after["by_status"].values())
    assert {
        status: after["by_status"][status] - before["by_status"][status] for status in JOB_STATUSES
    } == {
        "pending": 1,
        "running": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "aborted": 0,
    }
    assert after["by_type"][job_type] == 3
    assert job_type not in before["by_type"]
    assert after["jobs_this_hour"] - before["jobs_this_hour"] == 1
    assert after["jobs_today"] - before["jobs_today"] == today

    # The mean, worked out here from every finished job that started.
    with Session(engine) as session:
        rows = session.execute(
            select(JobRow.started_at, JobRow.completed_at).where(JobRow.status.in_(FINISHED))
        ).all()
    durations = [
        (done - start).total_seconds() for start, done in rows if start and done is not None
    ]
    assert after["avg_duration_seconds"] == pytest.approx(sum(durations) / len(durations))


# --- one job ---------------------------------------------------------------------------------


def test_status_of_a_retried_job(api_client, seeded):
    job_id = seeded["ids"]["e"]
    body = api_client.get(f"/api/jobs/{job_id}").json()
    assert body == {
        "job_id": job_id,
        "job_type": seeded["export"],
        "status": "completed",
        "progress": 100,
        "created_at": iso(BASE + timedelta(minutes=4)),
        "started_at": iso(BASE + timedelta(minutes=4, seconds=2)),
        "completed_at": iso(BASE + timedelta(minutes=4, seconds=12)),
        "error_message": "connection reset",
        "result": {"rows": 30},
        "metadata": {
            "format": "csv",
            "tag": seeded["marker"],
            "processed": 10,
            "total": 20,
            "message": "Completed",
        },
    }


def test_status_of_a_failed_job(api_client, seeded):
    body = api_client.get(f"/api/jobs/{seeded['ids']['b']}").json()
    assert (body["status"], body["error_message"], body["result"], body["completed_at"]) == (
        "failed",
        "disk full",
        None,
        iso(BASE + timedelta(minutes=1, seconds=4)),
    )


def test_detail_of_a_retried_job(api_client, seeded):
    job_id = seeded["ids"]["e"]
    start = BASE + timedelta(minutes=4)
    body = api_client.get(f"/api/jobs/{job_id}/detail").json()
    assert body == {
        "job_id": job_id,
        "job_type": seeded["export"],
        "status": "completed",
        "progress": 100,
        "progress_history": [
            {
                "timestamp": iso(start + timedelta(seconds=4)),
                "progress": 50,
                "message": "Processed 10 rows",
            },
            {
                "timestamp": iso(start + timedelta(seconds=10)),
                "progress": 50,
                "message": "Processed 10 rows",
            },
        ],
        "timing": {
            "created_at": iso(start),
            "started_at": iso(start + timedelta(seconds=2)),
            "queue_wait_seconds": 2.0,
            "running_seconds": 10.0,
        },
        "retry_info": {
            "attempt": 2,
            "max_attempts": 3,
            "last_error": "OperationalError: connection reset",
        },
        "metadata": {
            "format": "csv",
            "tag": seeded["marker"],
            "processed": 10,
            "total": 20,
            "message": "Completed",
        },
    }


def test_detail_of_a_first_time_success_has_no_last_error(api_client, seeded):
    body = api_client.get(f"/api/jobs/{seeded['ids']['a']}/detail").json()
    assert body["timing"] == {
        "created_at": iso(BASE),
        "started_at": iso(BASE + timedelta(seconds=2)),
        "queue_wait_seconds": 2.0,
        "running_seconds": 6.0,
    }
    assert body["retry_info"] == {"attempt": 1, "max_attempts": 3, "last_error": None}
    assert [(s["progress"], s["message"]) for s in body["progress_history"]] == [
        (33, "Processed 10 rows"),
        (66, "Processed 20 rows"),
    ]


def test_detail_of_a_pending_job_has_no_timing_yet(api_client, seeded):
    body = api_client.get(f"/api/jobs/{seeded['ids']['c']}/detail").json()
    assert body["timing"] == {
        "created_at": iso(BASE + timedelta(minutes=2)),
        "started_at": None,
        "queue_wait_seconds": None,
        "running_seconds": None,
    }
    assert body["retry_info"] == {"attempt": 0, "max_attempts": 3, "last_error": None}
    assert body["progress_history"] == []


def test_detail_of_a_running_job_runs_until_now(api_client, seeded):
    started = BASE + timedelta(minutes=3, seconds=1)
    low = (utcnow() - started).total_seconds()
    body = api_client.get(f"/api/jobs/{seeded['ids']['d']}/detail").json()
    high = (utcnow() - started).total_seconds()
    assert body["timing"]["queue_wait_seconds"] == 1.0
    assert low <= body["timing"]["running_seconds"] <= high


def test_history_of_a_retried_job(api_client, seeded):
    job_id = seeded["ids"]["e"]
    start = BASE + timedelta(minutes=4)
    body = api_client.get(f"/api/jobs/{job_id}/history").json()
    assert body["job_id"] == job_id
    assert body["transitions"] == [
        {
            "from_status": None,
            "to_status": "pending",
            "timestamp": iso(start),
            "reason": "Job created by api",
        },
        {
            "from_status": "pending",
            "to_status": "running",
            "timestamp": iso(start + timedelta(seconds=2)),
            "reason": "Worker runner-1 picked up job (attempt 1 of 3)",
        },
        {
            "from_status": "running",
            "to_status": "pending",
            "timestamp": iso(start + timedelta(seconds=6)),
            "reason": "Attempt 1 failed (OperationalError: connection reset); retrying",
        },
        {
            "from_status": "pending",
            "to_status": "running",
            "timestamp": iso(start + timedelta(seconds=8)),
            "reason": "Worker runner-1 picked up job (attempt 2 of 3)",
        },
        {
            "from_status": "running",
            "to_status": "completed",
            "timestamp": iso(start + timedelta(seconds=12)),
            "reason": "Completed",
        },
    ]
    assert body["attempts"] == [
        {
            "attempt": 1,
            "started_at": iso(start + timedelta(seconds=2)),
            "ended_at": iso(start + timedelta(seconds=6)),
            "status": "failed",
            "worker_id": "runner-1",
            "error": "OperationalError: connection reset",
        },
        {
            "attempt": 2,
            "started_at": iso(start + timedelta(seconds=8)),
            "ended_at": iso(start + timedelta(seconds=12)),
            "status": "completed",
            "worker_id": "runner-1",
            "error": None,
        },
    ]


def test_history_of_a_pending_job(api_client, seeded):
    body = api_client.get(f"/api/jobs/{seeded['ids']['c']}/history").json()
    assert [(t["from_status"], t["to_status"]) for t in body["transitions"]] == [(None, "pending")]
    assert body["attempts"] == []


# --- logs ------------------------------------------------------------------------------------


@pytest.fixture
def logged(engine) -> dict:
    """A job with one line per level, a second apart, after its runner's two INFO lines."""
    requested = job_requested(unique("logs"), at=BASE)
    run = job_run(requested, "completed", steps=2, seconds=8)  # INFO at +4s and +6s
    lines = [
        JobLogged(
            job_id=requested.job_id,
            attempt=1,
            level=level,
            message=f"{level.lower()} line",
            occurred_at=BASE + timedelta(seconds=10 + index),
        )
        for index, level in enumerate(("DEBUG", "INFO", "WARNING", "ERROR"))
    ]
    apply(engine, requested, *run, *lines)
    return {"job_id": requested.job_id}


def _logs(api_client, job_id: str, **params) -> dict:
    response = api_client.get(f"/api/jobs/{job_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_logs_oldest_first(api_client, logged):
    body = _logs(api_client, logged["job_id"])
    assert body["job_id"] == logged["job_id"]
    assert body["count"] == 6
    assert body["logs"][:2] == [
        {
            "timestamp": iso(BASE + timedelta(seconds=4)),
            "level": "INFO",
            "message": "Processed 10 rows",
            "attempt": 1,
        },
        {
            "timestamp": iso(BASE + timedelta(seconds=6)),
            "level": "INFO",
            "message": "Processed 20 rows",
            "attempt": 1,
        },
    ]
    assert [line["level"] for line in body["logs"][2:]] == ["DEBUG", "INFO", "WARNING", "ERROR"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("DEBUG", ["info", "info", "debug", "info", "warning", "error"]),
        ("info", ["info", "info", "info", "warning", "error"]),
        ("Warning", ["warning", "error"]),
        ("ERROR", ["error"]),
    ],
)
def test_logs_from_a_minimum_level(api_client, logged, level, expected):
    body = _logs(api_client, logged["job_id"], level=level)
    assert [line["level"].lower() for line in body["logs"]] == expected
    assert body["count"] == len(expected)


def test_logs_since_and_limit(api_client, logged):
    since = _logs(api_client, logged["job_id"], since=iso(BASE + timedelta(seconds=11)))
    assert [line["message"] for line in since["logs"]] == [
        "info line",
        "warning line",
        "error line",
    ]
    limited = _logs(api_client, logged["job_id"], limit=2, level="INFO")
    assert [line["message"] for line in limited["logs"]] == [
        "Processed 10 rows",
        "Processed 20 rows",
    ]
    assert limited["count"] == 5


@pytest.mark.parametrize("params", [{"level": "TRACE"}, {"limit": 0}, {"limit": 1001}])
def test_logs_reject_bad_parameters(api_client, logged, params):
    response = api_client.get(f"/api/jobs/{logged['job_id']}/logs", params=params)
    assert response.status_code == 422


def test_bad_level_names_the_levels(api_client, logged):
    response = api_client.get(f"/api/jobs/{logged['job_id']}/logs", params={"level": "trace"})
    (error,) = response.json()["detail"]
    assert (error["loc"], error["msg"]) == (
        ["query", "level"],
        "unknown level trace: the levels are DEBUG, INFO, WARNING, ERROR",
    )


# --- unknown jobs ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/detail", "/history", "/logs"])
def test_unknown_job_is_404(api_client, suffix):
    job_id = f"job_missing_{uuid.uuid4().hex[:8]}"
    response = api_client.get(f"/api/jobs/{job_id}{suffix}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"job {job_id} not found", "error": "NotFound"}
