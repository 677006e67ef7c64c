"""API keys for mutating endpoints: stored as SHA-256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException

from api.deps import SettingsDep


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


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[
        str | None, Header(description="API key (once keys are configured)")
    ] = None,
) -> None:
    digests = settings.api_key_digests
    if not digests:
        return
    if not x_api_key:
        raise HTTPException(
            status_code=401,
            detail="missing X-API-Key header: this endpoint changes state and needs an API key",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    if not key_matches(x_api_key, digests):
        raise HTTPException(
            status_code=401, detail="invalid API key", headers={"WWW-Authenticate": "ApiKey"}
        )


ApiKeyDep = Depends(require_api_key)
