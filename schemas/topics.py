"""Every topic Vigil owns, declared once: name, key, what it carries and partitions.

Agents, projections, the API and the JSON Schema export all import from here;
no topic name is written anywhere else. A topic carries either events (facts, which
the projector turns into read models) or commands (requests, which only the workers
act on); a dead-letter topic names the stage whose failures it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter

from schemas.analysis import (
    ModelCallAudited,
    PromptConfigured,
    PromptReplayed,
    ReanalyseBatch,
    ReplayPrompt,
    SecurityEventRecorded,
)
from schemas.batches import BatchClosed, BatchOpened, DetectionsBatched, FlushBatch
from schemas.dead_letters import DeadLettered, Stage
from schemas.detections import DetectionsProduced, DetectionsReprocessed, ReprocessDetection
from schemas.enrichments import DetectionsEnriched, EnrichmentReprocessed, ReprocessEnrichment
from schemas.envelope import Message, version_of
from schemas.evaluation import EvaluateEvent, EventEvaluated, PromptTested, TestPrompt
from schemas.images import ImageReceived
from schemas.jobs import JOB_EVENTS
from schemas.system import (
    CircuitBreakerChanged,
    DeadLetterRequeued,
    DeadLettersCleared,
    ResetCircuitBreaker,
)
from vigil.logs import KAFKA_LOGGING


def client_settings(
    bootstrap_servers: str, settings: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A confluent-kafka client's configuration (consumer, producer or admin): its brokers,
    and librdkafka's own log lines through logging (`vigil.logs.KAFKA_LOGGING`)."""
    return {"bootstrap.servers": bootstrap_servers, **KAFKA_LOGGING, **(settings or {})}


def producer_settings(
    bootstrap_servers: str, settings: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A confluent-kafka producer's configuration with our keys' partitioning: Kafka's Java
    client's murmur2, as the workers' Faust (aiokafka) producer does. librdkafka's own default
    (CRC32) would put a camera's commands from the API or a job on another partition than its
    events, where a worker other than the one holding the camera's state would act on them."""
    return client_settings(bootstrap_servers, {"partitioner": "murmur2_random", **(settings or {})})


def partition_for(key: str, partitions: int) -> int:
    """The partition a keyed message goes to (what `producer_settings` and Faust both use)."""
    from aiokafka.partitioner import murmur2

    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# The worker's Faust app id, which is also its Kafka consumer group.
WORKER_GROUP = "vigil-worker"
# The consumer groups of the transactional stages (streams.transactional), apart from the
# Faust app's group.
DETECTION_GROUP = "vigil-detection"
ENRICHMENT_GROUP = "vigil-enrichment"
BATCH_GROUP = "vigil-batches"
ANALYSIS_GROUP = "vigil-analysis"
EVALUATION_GROUP = "vigil-evaluation"

Carries = Literal["events", "commands"]


@dataclass(frozen=True, eq=False)
class TopicSpec:
    name: str
    key: str
    value_types: tuple[type[Message], ...]
    description: str
    carries: Carries = "events"
    # None means "the configured default" (TOPIC_PARTITIONS).
    partitions: int | None = None
    # Set on a dead-letter topic: the stage whose failures it holds.
    dead_letters_of: Stage | None = None

    def encode(self, message: Message) -> bytes:
        """The message as this topic's value; a type the topic does not carry is refused."""
        if not isinstance(message, self.value_types):
            raise TypeError(f"{type(message).__name__} is not carried by {self.name}")
        return message.model_dump_json().encode()

    @cached_property
    def versions(self) -> dict[str, int]:
        """The `schema_version` of each `event_type` the topic carries, as this code reads it."""
        return {m.model_fields["event_type"].default: version_of(m) for m in self.value_types}

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        if len(self.value_types) == 1:
            return TypeAdapter(self.value_types[0])
        union = Union[self.value_types]  # noqa: UP007 - built at run time
        return TypeAdapter(Annotated[union, Field(discriminator="event_type")])


# A dead-letter topic carries the letters and what became of them (requeued, cleared).
DEAD_LETTER_EVENTS: tuple[type[Message], ...] = (
    DeadLettered,
    DeadLetterRequeued,
    DeadLettersCleared,
)

IMAGES = TopicSpec(
    name="vigil.images",
    key="camera_id",
    value_types=(ImageReceived,),
    description="An image file arrived complete in a camera folder.",
)
DETECTIONS = TopicSpec(
    name="vigil.detections",
    key="camera_id",
    value_types=(DetectionsProduced, DetectionsReprocessed),
    description=(
        "The object detector's answer for one image; another model's answer for a reprocess "
        "job, kept beside it."
    ),
)
DETECTION_COMMANDS = TopicSpec(
    name="vigil.commands.detection",
    key="camera_id",
    value_types=(ReprocessDetection,),
    description="Commands to the detection stage (run an image through a given detector).",
    carries="commands",
)
DLQ_DETECTION = TopicSpec(
    name="vigil.dlq.detection",
    key="camera_id",
    value_types=DEAD_LETTER_EVENTS,
    description=(
        "Images the detection stage gave up on, with the reason; then requeued or cleared."
    ),
    dead_letters_of="detection",
)

ENRICHMENTS = TopicSpec(
    name="vigil.enrichments",
    key="camera_id",
    value_types=(DetectionsEnriched, EnrichmentReprocessed),
    description="Detections with the vision model's descriptions; reprocessed enrichments.",
)
ENRICHMENT_COMMANDS = TopicSpec(
    name="vigil.commands.enrichment",
    key="camera_id",
    value_types=(ReprocessEnrichment,),
    description="Commands to the enrichment stage.",
    carries="commands",
)
DLQ_ENRICHMENT = TopicSpec(
    name="vigil.dlq.enrichment",
    key="camera_id",
    value_types=DEAD_LETTER_EVENTS,
    description=(
        "Enrichments the vision stage gave up on, with the reason; then requeued or cleared."
    ),
    dead_letters_of="enrichment",
)
BATCHES = TopicSpec(
    name="vigil.batches",
    key="camera_id",
    value_types=(BatchOpened, DetectionsBatched, BatchClosed),
    description="The batch lifecycle per camera: opened, detections added, closed with trigger.",
)
BATCH_COMMANDS = TopicSpec(
    name="vigil.commands.batch",
    key="camera_id",
    value_types=(FlushBatch,),
    description="Commands to the batch aggregator (flush).",
    carries="commands",
)
ANALYSIS_COMMANDS = TopicSpec(
    name="vigil.commands.analysis",
    key="camera_id",
    value_types=(ReanalyseBatch, ReplayPrompt),
    description=(
        "Commands to the analysis stage: analyse a closed batch again, or with a candidate "
        "prompt (without publishing an event)."
    ),
    carries="commands",
)
SECURITY_EVENTS = TopicSpec(
    name="vigil.events",
    key="camera_id",
    value_types=(SecurityEventRecorded,),
    description="Risk-assessed security events, one analysis version per message.",
)
AI_AUDIT = TopicSpec(
    name="vigil.ai-audit",
    key="camera_id",
    value_types=(ModelCallAudited, PromptReplayed, EventEvaluated, PromptTested),
    description=(
        "Every model call: input summary, raw output, tokens, latency, outcome; a prompt "
        "replay's comparison of the current and a candidate prompt on one batch; an "
        "evaluation of a security event's analysis, its figures with their evidence; the "
        "results of a prompt test on an event's input."
    ),
)
EVALUATION_COMMANDS = TopicSpec(
    name="vigil.commands.evaluation",
    key="camera_id",
    value_types=(EvaluateEvent, TestPrompt),
    description=(
        "Commands to the evaluator: evaluate one analysis of a security event, or run an "
        "event's analysis input through prompt configurations under test."
    ),
    carries="commands",
)
DLQ_ANALYSIS = TopicSpec(
    name="vigil.dlq.analysis",
    key="camera_id",
    value_types=DEAD_LETTER_EVENTS,
    description=(
        "Batches the analysis stage gave up on, with the model's raw answer; "
        "then requeued or cleared."
    ),
    dead_letters_of="analysis",
)
PROMPTS = TopicSpec(
    name="vigil.prompts",
    key="model",
    value_types=(PromptConfigured,),
    description="Versioned prompt configurations per model.",
    partitions=1,
)

SYSTEM = TopicSpec(
    name="vigil.system",
    key="name",
    value_types=(CircuitBreakerChanged,),
    description="Circuit breaker state changes and counters, per worker and model.",
    partitions=1,
)
SYSTEM_COMMANDS = TopicSpec(
    name="vigil.commands.system",
    key="name",
    value_types=(ResetCircuitBreaker,),
    description="Commands every worker obeys (reset a circuit breaker).",
    carries="commands",
    partitions=1,
)

JOBS = TopicSpec(
    name="vigil.jobs",
    key="job_id",
    value_types=JOB_EVENTS,
    description=(
        "Background jobs, one stream per job: requested, started, progressed, logged, "
        "completed or failed per attempt, cancel and abort requested and done."
    ),
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    IMAGES,
    DETECTIONS,
    DETECTION_COMMANDS,
    DLQ_DETECTION,
    ENRICHMENTS,
    ENRICHMENT_COMMANDS,
    DLQ_ENRICHMENT,
    BATCHES,
    BATCH_COMMANDS,
    ANALYSIS_COMMANDS,
    SECURITY_EVENTS,
    AI_AUDIT,
    EVALUATION_COMMANDS,
    DLQ_ANALYSIS,
    PROMPTS,
    SYSTEM,
    SYSTEM_COMMANDS,
    JOBS,
)

TOPICS_BY_NAME: dict[str, TopicSpec] = {topic.name: topic for topic in ALL_TOPICS}

# The projector reads every event topic; the command topics are for the workers alone.
# Kafka is the system of record: topics keep every event (no time or size retention).
TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}

EVENT_TOPICS: tuple[TopicSpec, ...] = tuple(t for t in ALL_TOPICS if t.carries == "events")

DEAD_LETTER_TOPICS: dict[Stage, TopicSpec] = {
    topic.dead_letters_of: topic for topic in ALL_TOPICS if topic.dead_letters_of is not None
}


# What each transactional stage consumes, by its consumer group (co-partitioned inputs).
STAGE_INPUTS: dict[str, tuple[TopicSpec, ...]] = {
    DETECTION_GROUP: (IMAGES, DETECTION_COMMANDS),
    ENRICHMENT_GROUP: (DETECTIONS, ENRICHMENT_COMMANDS),
    BATCH_GROUP: (ENRICHMENTS, BATCH_COMMANDS),
    ANALYSIS_GROUP: (BATCHES, ANALYSIS_COMMANDS),
    EVALUATION_GROUP: (EVALUATION_COMMANDS,),
}
