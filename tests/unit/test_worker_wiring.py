"""The worker is put together without connecting to anything: every consuming stage is a
transactional stage in its own group, on the inputs the health endpoint reports the lag of."""

from __future__ import annotations

from schemas.topics import STAGE_INPUTS, WORKER_GROUP
from streams.app import wire_worker
from streams.models import Models
from tests.fakes import FakeAnalyst, FakeDetector, FakeEnricher
from vigil.settings import Settings


def test_every_consuming_stage_runs_in_its_group_on_its_inputs():
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", worker_id="w1")
    wiring = wire_worker(
        settings,
        Models(
            FakeDetector(RuntimeError()), FakeEnricher(RuntimeError()), FakeAnalyst(RuntimeError())
        ),
    )
    assert wiring.app.conf.id == WORKER_GROUP
    assert {stage.group: stage.inputs for stage in wiring.stages} == STAGE_INPUTS
    assert [stage.stage.producer for stage in wiring.stages] == [
        "w1/detection",
        "w1/enrichment",
        "w1/batches",
        "w1/analysis",
        "w1/evaluator",
    ]
