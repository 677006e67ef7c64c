"""Request and response models of the prompt registry (`/api/ai-audit/prompts...`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.analysis import PromptConfig


class PromptConfigIn(PromptConfig):
    """A configuration as a PUT sends it; `expected_version` makes the PUT conditional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="The version the change is made against: 409 if the model has moved on",
    )

    def config(self) -> PromptConfig:
        return PromptConfig(
            system_prompt=self.system_prompt,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )


class PromptEntry(BaseModel):
    system_prompt: str
    temperature: float
    max_tokens: int
    version: int
    description: str | None
    restored_from: int | None
    created_at: datetime


class PromptOut(PromptEntry):
    model: str


class PromptList(BaseModel):
    prompts: dict[str, PromptEntry]


class PromptConfigOut(BaseModel):
    """The "database-backed" shape of the spec: the same registry, read from its read model."""

    model: str
    system_prompt: str
    temperature: float
    max_tokens: int
    version: int
    created_at: datetime


class PromptUpdateOut(BaseModel):
    model: str
    version: int
    previous_version: int
    description: str | None
    updated_at: datetime
    # applied: the read model shows this version as this change's; pending (202): the change
    # is on Kafka, and the version it proposed was not confirmed within the wait.
    status: Literal["applied", "pending"] = "applied"


class PromptVersionOut(BaseModel):
    version: int
    system_prompt: str
    temperature: float
    max_tokens: int
    description: str | None
    restored_from: int | None
    created_at: datetime


class PromptHistory(BaseModel):
    model: str
    versions: list[PromptVersionOut]
    total: int


class PromptHistories(BaseModel):
    """Per model, its newest versions (up to `limit`) and how many it has."""

    history: dict[str, PromptHistory]


class PromptRestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=2000)


class PromptRestoreOut(BaseModel):
    model: str
    restored_version: int
    new_version: int
    description: str | None
    restored_at: datetime
    status: Literal["applied", "pending"] = "applied"


class PromptExport(BaseModel):
    prompts: dict[str, PromptConfig]
    exported_at: datetime
    version: Literal["1.0"] = "1.0"


class PromptImportIn(BaseModel):
    """Each model's configuration is checked on its own: a bad one goes to `errors`."""

    model_config = ConfigDict(extra="forbid")

    prompts: dict[str, dict[str, Any]]
    overwrite: bool = False


class PromptImportError(BaseModel):
    model: str
    error: str


class PromptImportOut(BaseModel):
    imported: list[str]
    skipped: list[str]
    errors: list[PromptImportError]


class AuditEntry(BaseModel):
    """One model call as the audit log keeps it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    audit_id: str
    model_name: str
    model_version: str | None
    camera_id: str | None
    batch_id: str | None
    prompt_version: int | None
    input_summary: str
    raw_output: str | None
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: float | None
    outcome: Literal["success", "invalid_output", "error"]
    error: str | None
    attempt: int
    created_at: datetime


class AuditList(BaseModel):
    audits: list[AuditEntry]
    count: int
    limit: int
    offset: int
