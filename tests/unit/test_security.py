"""API keys: stored as SHA-256 digests, matched in constant time; `vigil apikey` makes one."""

from __future__ import annotations

import hashlib

from typer.testing import CliRunner

from api.security import hash_api_key, key_matches, new_api_key
from vigil.cli import app


def test_hash_api_key_is_the_sha256_hex_digest():
    assert hash_api_key("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert hash_api_key("vigil_ü") == hashlib.sha256("vigil_ü".encode()).hexdigest()


def test_key_matches_any_configured_digest():
    digests = [hash_api_key("first"), hash_api_key("second")]
    assert key_matches("first", digests)
    assert key_matches("second", digests)


def test_key_matches_refuses_other_keys():
    digests = [hash_api_key("first")]
    assert not key_matches("First", digests)
    assert not key_matches("", digests)
    assert not key_matches(hash_api_key("first"), digests)  # the digest is not the key
    assert not key_matches("first", [])


def test_new_api_key_is_random_and_comes_with_its_digest():
    (key, digest), (other, _) = new_api_key(), new_api_key()
    assert key.startswith("vigil_") and len(key) > 40
    assert key != other
    assert digest == hash_api_key(key)
    assert key_matches(key, [digest])


def test_cli_apikey_prints_a_key_and_the_digest_to_configure():
    result = CliRunner().invoke(app, ["apikey"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    key, digest = lines["key"].strip(), lines["digest"].strip()
    assert hash_api_key(key) == digest
    assert "API_KEY_HASHES" in result.output
