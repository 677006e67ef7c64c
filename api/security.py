"""API keys for mutating endpoints: stored as SHA-256 digests, compared in constant time.

Every resource gets its routers from `resource_routers`: one for reads, open to all, and
one for writes, on which every route needs the key (once keys are configured).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header

from api.deps import SettingsDep
from api.errors import Unauthorized
from api.models import ErrorOut


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """A fresh key and the digest to configure (API_KEY_HASHES) in its place."""
    key = f"vigil_{secrets.token_urlsafe(32)}"
    return key, hash_api_key(key)


def key_matches(key: str, digests: list[str]) -> bool:
    candidate = hash_api_key(key)
    # Compare against every digest, so the time taken says nothing about which one matched.
    matches = [hmac.compare_digest(candidate, digest) for digest in digests]
    return any(matches)


async def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[
        str | None, Header(description="API key (once keys are configured)")
    ] = None,
) -> None:
    digests = settings.api_key_digests
    if not digests:
        return
    if not x_api_key:
        raise Unauthorized(
            "missing X-API-Key header: this endpoint changes state and needs an API key"
        )
    if not key_matches(x_api_key, digests):
        raise Unauthorized("invalid API key")


def resource_routers(prefix: str, tag: str) -> tuple[APIRouter, APIRouter]:
    """The resource's read router, and its write router, whose routes need the API key.

    Every write produces to Kafka, so the write router documents the 503 of an
    unacknowledged message as well as the 401.
    """
    read = APIRouter(prefix=prefix, tags=[tag])
    write = APIRouter(
        prefix=prefix,
        tags=[tag],
        dependencies=[Depends(require_api_key)],
        responses={
            401: {
                "model": ErrorOut,
                "description": "Missing or invalid X-API-Key (once keys are configured)",
            },
            503: {
                "model": ErrorOut,
                "description": "Kafka did not acknowledge every message; the detail says which",
            },
        },
    )
    return read, write
