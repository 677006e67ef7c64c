"""Configuration from environment variables, with the spec's defaults."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql+psycopg://vigil:vigil@127.0.0.1:5432/vigil"
    triton_url: str = "127.0.0.1:8000"
    # Triton's gRPC endpoint; empty: TRITON_URL's host on port 8001 (Triton's default).
    triton_grpc_url: str = ""
    triton_timeout_s: float = Field(default=30.0, gt=0)

    detector_model: str = "centernet"
    detector_model_version: str = ""

    enricher_model: str = "crop-attributes"
    analyst_model: str = "nemotron"
    # Whose prompt configuration the analyst uses (the API's /prompt-config/{model}).
    analyst_prompt: str = "nemotron"
    analyst_timeout_s: float = Field(default=120.0, gt=0)
    # Which contract the analyst model speaks: `python` (the CPU nemotron's SYSTEM_PROMPT,
    # PROMPT ... over HTTP), `vllm` (Triton's vLLM backend: a rendered prompt and sampling
    # parameters, answered over a gRPC stream), or `auto`: read from the model's configuration.
    analyst_protocol: Literal["auto", "python", "vllm"] = "auto"
    # An evaluation re-runs an analysis this many times (each with its own seed) to measure
    # its consistency, and lets the judge answer in at most this many tokens.
    evaluation_repeats: int = Field(default=2, ge=2, le=10)
    evaluation_max_tokens: int = Field(default=384, ge=64, le=4096)

    # Messages a worker's detection agent keeps in flight through the detector at once (their
    # detections are still published in the order the images came).
    detection_in_flight: int = Field(default=4, ge=1, le=64)
    # The same for the enrichment agent and the vision model.
    enrichment_in_flight: int = Field(default=4, ge=1, le=64)

    batch_window_s: float = Field(default=90.0, gt=0)
    batch_idle_s: float = Field(default=30.0, gt=0)
    batch_max_size: int = Field(default=500, ge=1)
    batch_check_interval_s: float = Field(default=1.0, gt=0)

    camera_root: Path = Path("./cameras")
    watch_interval_s: float = Field(default=1.0, gt=0)
    # A file holding a whole image (JPEG, PNG, GIF, BMP, WebP) is read at once. One whose
    # end its bytes cannot tell (TIFF, or no image) counts as complete once size and mtime
    # have held FILE_STABLE_S; an image cut short (an upload paused between pieces, or a
    # truncated file) only after FILE_INCOMPLETE_S.
    file_stable_s: float = Field(default=2.0, ge=0)
    file_incomplete_s: float = Field(default=30.0, ge=0)
    max_image_bytes: int = Field(default=25 * 1024 * 1024, gt=0)

    circuit_breaker_failure_threshold: int = Field(default=5, ge=1)
    circuit_breaker_recovery_timeout: float = Field(default=30.0, gt=0)
    circuit_breaker_success_threshold: int = Field(default=2, ge=1)
    # A worker's breaker report older than this is stale (the worker is gone).
    circuit_breaker_stale_s: float = Field(default=60.0, gt=0)

    retry_max_attempts: int = Field(default=3, ge=1)
    retry_base_delay_s: float = Field(default=1.0, ge=0)
    retry_max_delay_s: float = Field(default=30.0, ge=0)
    retry_exponential_base: float = Field(default=2.0, ge=1)
    retry_jitter: float = Field(default=0.25, ge=0, le=1)

    # Names this worker in breaker reports and event producers; unique per process.
    worker_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    topic_partitions: int = Field(default=3, ge=1)
    # How long the worker group waits for a worker that stopped heartbeating (killed) before
    # its partitions move to the others.
    worker_session_timeout_s: float = Field(default=60.0, ge=6, le=300)
    # A transactional stage's transaction left open by a killed worker is aborted by Kafka
    # after this long; read-committed consumers of what it wrote wait for that.
    transaction_timeout_s: float = Field(default=10.0, ge=1, le=900)
    # How long a stage after detection lets its transaction take in more outcomes before it
    # commits (the detection stage commits at once: a detection row waits on it). Fewer
    # transactions cost the broker less CPU, which on a small machine the detector gets.
    commit_linger_s: float = Field(default=0.3, ge=0, le=5)
    projector_group: str = "vigil-projector"
    # The same for a projector of the group that stopped heartbeating (Kafka's default 45 s).
    projector_session_timeout_s: float = Field(default=45.0, ge=6, le=300)

    # SHA-256 hex digests of the API keys, comma-separated (`vigil apikey` makes one).
    # Empty: no key is asked for. Set: every mutating endpoint needs X-API-Key.
    api_key_hashes: str = ""
    # Signs the images' URLs (HMAC-SHA256) once API keys are configured; empty: a secret made
    # once and kept in DATA_DIR. A signed URL works for this long (rounded up to 5 minutes).
    image_url_secret: str = ""
    image_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 86400)
    # The projector serves its Prometheus metrics at http://METRICS_HOST:PROJECTOR_METRICS_PORT/
    # (0: not served); the API serves its own at /metrics.
    metrics_host: str = "127.0.0.1"
    projector_metrics_port: int = Field(default=0, ge=0, le=65535)
    # The same for the worker (its stages, model calls, breakers and batches).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    # How every process logs: text, or json (one JSON object per line, see vigil/logs.py).
    log_format: Literal["text", "json"] = "text"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Processes serving the API, each with its own event loop, database pool and feeds (the
    # WebSocket feeds read every partition in each): a sync route holds the GIL while it
    # builds its answer, so one process uses at most one core.
    api_workers: int = Field(default=1, ge=1, le=64)
    # Read-your-writes: how long a write waits for the read model to show its outcome before
    # answering 202 (a flush for the batch to close, a DLQ requeue or clear for the queue, a
    # breaker reset for every worker). API_FLUSH_WAIT_S, its former name, is still read.
    read_your_writes_wait_s: float = Field(
        default=10.0,
        ge=0,
        validation_alias=AliasChoices("read_your_writes_wait_s", "api_flush_wait_s"),
    )
    api_command_ack_timeout_s: float = Field(default=5.0, gt=0)
    # How long a prompt test waits for the analyst's answers before answering 202 (its
    # result is then read at GET /api/ai-audit/prompts/test/{test_id}).
    prompt_test_wait_s: float = Field(default=120.0, ge=0)
    ws_client_queue_size: int = Field(default=100, ge=1)
    ws_partition_check_s: float = Field(default=30.0, gt=0)
    # The API checks Kafka, Postgres, Triton and the lags this often in the background, and
    # /api/system/health answers from the latest check (stale, unhealthy, after 5 of these).
    health_refresh_s: float = Field(default=2.0, gt=0, le=60)
    # How long the WebSocket feed holds an event for the read model to show it; one still
    # not shown then (the projection refused it, or lags that far) is dropped with a warning.
    ws_read_model_wait_s: float = Field(default=60.0, gt=0)

    # The job runner: how many jobs it runs at once, attempts per job (a runner that dies
    # mid-job costs one), where exports are written, and its consumer group.
    job_concurrency: int = Field(default=2, ge=1)
    job_max_attempts: int = Field(default=3, ge=1)
    data_dir: Path = Path("./data")
    job_runner_group: str = "vigil-job-runner"

    @field_validator("camera_root", "data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def api_key_digests(self) -> list[str]:
        return [h.strip().lower() for h in self.api_key_hashes.split(",") if h.strip()]

    @property
    def kafka_url(self) -> str:
        return f"kafka://{self.kafka_bootstrap_servers}"

    @property
    def triton_grpc(self) -> str:
        """Triton's gRPC endpoint (host:port)."""
        if self.triton_grpc_url:
            return self.triton_grpc_url
        host = self.triton_url.split("://", 1)[-1].rsplit(":", 1)[0]
        return f"{host}:8001"


@lru_cache
def get_settings() -> Settings:
    return Settings()
