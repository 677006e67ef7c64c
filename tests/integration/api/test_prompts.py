"""The prompt registry (`/api/ai-audit/prompts...`, `/prompt-config/...`) against a broker
and a database of this module's own, with the real projector (changes are new versions on
`vigil.prompts`, read back from the read model) and, for one test, the real worker."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.tables import AuditRow, EventAnalysisRow
from schemas.analysis import PromptConfigured
from schemas.codec import encode
from schemas.prompts import DEFAULT_PROMPTS
from schemas.topics import BATCHES, PROMPTS
from tests.factories import closed_batch
from tests.support import new_camera_id, publish, read_topic, wait_for

MODEL = "nemotron"
V1 = DEFAULT_PROMPTS[MODEL].config


@pytest.fixture(scope="module")
def api(own_stack, own_api_client):
    projector = own_stack.start_app("projector", name="prompts-projector")
    wait_for(
        lambda: own_api_client.get(f"/api/ai-audit/prompts/{MODEL}").status_code == 200,
        timeout=60,
        what="the seeded prompt projected",
    )
    yield own_api_client
    projector.stop()


def current(api) -> dict:
    reply = api.get(f"/api/ai-audit/prompts/{MODEL}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def config(text: str, temperature: float = 0.2, max_tokens: int = 400, **extra) -> dict:
    return {"system_prompt": text, "temperature": temperature, "max_tokens": max_tokens, **extra}


def test_the_seeded_default_is_version_1_in_the_history(api):
    reply = api.get(f"/api/ai-audit/prompts/history/{MODEL}", params={"limit": 1000})
    assert reply.status_code == 200, reply.text
    oldest = reply.json()["versions"][-1]
    assert (oldest["version"], oldest["system_prompt"]) == (1, V1.system_prompt)
    assert (oldest["temperature"], oldest["max_tokens"]) == (V1.temperature, V1.max_tokens)
    assert reply.json()["total"] == len(reply.json()["versions"])


def test_a_put_makes_the_next_version_and_every_read_shows_it(api, own_stack):
    before = current(api)["version"]
    reply = api.put(
        f"/api/ai-audit/prompts/{MODEL}",
        json=config("Be terse.", 0.3, 300, description="Shorter answers"),
    )
    assert reply.status_code == 200, reply.text
    done = reply.json()
    assert {k: done[k] for k in ("model", "version", "previous_version", "description")} == {
        "model": MODEL,
        "version": before + 1,
        "previous_version": before,
        "description": "Shorter answers",
    }
    assert done["status"] == "applied"
    shown = current(api)
    assert (shown["version"], shown["system_prompt"], shown["temperature"]) == (
        before + 1,
        "Be terse.",
        0.3,
    )
    listed = api.get("/api/ai-audit/prompts").json()["prompts"][MODEL]
    assert (listed["version"], listed["max_tokens"]) == (before + 1, 300)
    as_config = api.get(f"/api/ai-audit/prompt-config/{MODEL}").json()
    assert set(as_config) == {
        "model",
        "system_prompt",
        "temperature",
        "max_tokens",
        "version",
        "created_at",
    }
    assert as_config["version"] == before + 1
    history = api.get(f"/api/ai-audit/prompts/history/{MODEL}", params={"limit": 2}).json()
    assert [v["version"] for v in history["versions"]] == [before + 1, before]
    assert history["total"] == before + 1
    on_topic = [e for e in read_topic(own_stack.kafka_bootstrap, PROMPTS, MODEL)]
    assert [e.version for e in on_topic if e.description == "Shorter answers"] == [before + 1]


def test_two_puts_at_once_get_two_different_versions(api, own_stack):
    before = current(api)["version"]
    start = threading.Barrier(2)

    def put(n: int):
        start.wait()
        return api.put(f"/api/ai-audit/prompts/{MODEL}", json=config(f"Concurrent change {n}"))

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(put, (1, 2)))
    assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
    assert sorted(r.json()["version"] for r in replies) == [before + 1, before + 2]
    history = api.get(f"/api/ai-audit/prompts/history/{MODEL}", params={"limit": 2}).json()
    assert sorted(v["system_prompt"] for v in history["versions"]) == [
        "Concurrent change 1",
        "Concurrent change 2",
    ]
    # Each version has one configuration for every reader: the first proposal of a version
    # on the topic, as the read model shows it.
    first: dict[int, PromptConfigured] = {}
    for event in read_topic(own_stack.kafka_bootstrap, PROMPTS, MODEL):
        first.setdefault(event.version, event)
    for version in history["versions"]:
        assert first[version["version"]].config.system_prompt == version["system_prompt"]


def test_a_put_against_a_stale_version_is_409_and_changes_nothing(api):
    before = current(api)["version"]
    api.put(f"/api/ai-audit/prompts/{MODEL}", json=config("Moved on"))
    reply = api.put(
        f"/api/ai-audit/prompts/{MODEL}", json=config("Too late", expected_version=before)
    )
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"].startswith(f"{MODEL} is at version {before + 1}, not {before}")
    assert current(api)["system_prompt"] == "Moved on"
    fresh = api.put(
        f"/api/ai-audit/prompts/{MODEL}", json=config("In time", expected_version=before + 1)
    )
    assert fresh.status_code == 200 and fresh.json()["version"] == before + 2


def test_restoring_a_version_makes_a_new_one_with_its_configuration(api):
    before = current(api)["version"]
    reply = api.post(
        "/api/ai-audit/prompts/history/1",
        params={"model": MODEL},
        json={"description": "Reverting to version 1"},
    )
    assert reply.status_code == 200, reply.text
    assert {k: v for k, v in reply.json().items() if k not in ("restored_at", "status")} == {
        "model": MODEL,
        "restored_version": 1,
        "new_version": before + 1,
        "description": "Reverting to version 1",
    }
    shown = current(api)
    assert (shown["version"], shown["restored_from"]) == (before + 1, 1)
    assert (shown["system_prompt"], shown["temperature"]) == (V1.system_prompt, V1.temperature)


def test_export_then_import_gives_the_same_configurations(api):
    api.put(f"/api/ai-audit/prompts/{MODEL}", json=config("Exported one", 0.4, 256))
    exported = api.get("/api/ai-audit/prompts/export").json()
    assert exported["version"] == "1.0"
    assert exported["prompts"][MODEL] == config("Exported one", 0.4, 256)
    api.put(f"/api/ai-audit/prompts/{MODEL}", json=config("Changed since"))

    kept = api.post("/api/ai-audit/prompts/import", json={"prompts": exported["prompts"]})
    assert kept.json() == {"imported": [], "skipped": [MODEL], "errors": []}
    assert current(api)["system_prompt"] == "Changed since"

    again = api.post(
        "/api/ai-audit/prompts/import", json={"prompts": exported["prompts"], "overwrite": True}
    )
    assert again.json() == {"imported": [MODEL], "skipped": [], "errors": []}
    assert api.get("/api/ai-audit/prompts/export").json()["prompts"] == exported["prompts"]


def test_an_import_reports_each_bad_model_and_applies_the_good_ones(api):
    before = current(api)["version"]
    reply = api.post(
        "/api/ai-audit/prompts/import",
        json={
            "prompts": {
                "no-such-model": config("x"),
                MODEL: config("Imported well", 0.5, 128),
            },
            "overwrite": True,
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["imported"] == [MODEL]
    assert reply.json()["errors"] == [
        {"model": "no-such-model", "error": "unknown model no-such-model"}
    ]
    assert current(api)["version"] == before + 1

    invalid = api.post(
        "/api/ai-audit/prompts/import",
        json={"prompts": {MODEL: config("Too hot", temperature=5)}, "overwrite": True},
    ).json()
    assert invalid["imported"] == [] and invalid["skipped"] == []
    [error] = invalid["errors"]
    assert error["model"] == MODEL
    assert error["error"].startswith("invalid configuration: temperature: ")
    assert current(api)["version"] == before + 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/ai-audit/prompts/nope"),
        ("put", "/api/ai-audit/prompts/nope"),
        ("get", "/api/ai-audit/prompt-config/nope"),
        ("get", "/api/ai-audit/prompts/history/nope"),
        ("post", "/api/ai-audit/prompts/history/1?model=nope"),
        ("post", f"/api/ai-audit/prompts/history/999999?model={MODEL}"),
    ],
)
def test_an_unknown_model_or_version_is_404(api, method, path):
    kwargs = {"json": config("x")} if method == "put" else {}
    reply = getattr(api, method)(path, **kwargs)
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"] == "NotFound"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (config("x", temperature=2.5), "temperature"),
        (config(""), "system_prompt"),
        (config("x", max_tokens=0), "max_tokens"),
        (config("x", colour="red"), "colour"),
        ({"temperature": 0.1, "max_tokens": 10}, "system_prompt"),
    ],
)
def test_a_bad_configuration_is_422_naming_the_field(api, body, field):
    before = current(api)["version"]
    reply = api.put(f"/api/ai-audit/prompts/{MODEL}", json=body)
    assert reply.status_code == 422, reply.text
    assert [e["loc"][-1] for e in reply.json()["detail"]] == [field]
    assert current(api)["version"] == before


@pytest.mark.parametrize("limit", [0, 101])
def test_history_limit_out_of_range_is_422(api, limit):
    reply = api.get("/api/ai-audit/prompts/history", params={"limit": limit})
    assert reply.status_code == 422


def test_history_of_every_model_gives_each_its_newest_versions(api):
    reply = api.get("/api/ai-audit/prompts/history", params={"limit": 3})
    assert reply.status_code == 200, reply.text
    entry = reply.json()["history"][MODEL]
    versions = [v["version"] for v in entry["versions"]]
    assert versions == sorted(versions, reverse=True) and len(versions) == min(3, entry["total"])
    assert versions[0] == current(api)["version"]


def test_the_next_analysis_uses_the_new_version(api, own_stack, own_producer, own_engine, tmp_path):
    """The version made before the worker starts: the worker's first analysis waits until it
    has read the prompts topic, and uses it (its event and audit records name it)."""
    reply = api.put(
        f"/api/ai-audit/prompts/{MODEL}",
        json=config(V1.system_prompt + " Mention the camera.", 0.0, 256, description="t"),
    )
    version = reply.json()["version"]
    batch = closed_batch(
        ["person"],
        at=datetime.now(UTC),
        camera_id=new_camera_id("prompt"),
        batch_id=f"b_prompt_{version}",
    )
    publish(own_producer, BATCHES.name, batch.camera_id, encode(batch))
    worker = own_stack.start_app("worker", name="prompts-worker", CAMERA_ROOT=str(tmp_path))
    try:

        def analysed():
            with Session(own_engine) as session:
                return session.scalars(
                    select(EventAnalysisRow).where(EventAnalysisRow.batch_id == batch.batch_id)
                ).first()

        event = wait_for(analysed, timeout=120, what="the batch analysed")
        with Session(own_engine) as session:
            audits = session.scalars(
                select(AuditRow.prompt_version).where(AuditRow.batch_id == batch.batch_id)
            ).all()
    finally:
        worker.stop()
    assert event.prompt_version == version
    assert audits and set(audits) == {version}
