"""Events about images arriving from cameras."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas.envelope import Message

_IMAGE_NAMESPACE = uuid.UUID("6f1d3c52-4a8e-4c1b-9a57-0d9f0c6b8e21")


def image_id_for(camera_id: str, sha256: str) -> str:
    """The same bytes from the same camera are the same image, however often dropped."""
    return str(uuid.uuid5(_IMAGE_NAMESPACE, f"{camera_id}/{sha256}"))


class ImageReceived(Message):
    event_type: Literal["ImageReceived"] = "ImageReceived"

    image_id: str
    camera_id: str = Field(min_length=1, max_length=128)
    file_path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    file_modified_at: datetime
