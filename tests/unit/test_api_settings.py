"""The read-your-writes wait: its name, and the former API_FLUSH_WAIT_S still read."""

from __future__ import annotations

import pytest

from vigil.settings import Settings


@pytest.fixture(autouse=True)
def _no_wait_in_the_environment(monkeypatch):
    for name in ("READ_YOUR_WRITES_WAIT_S", "API_FLUSH_WAIT_S"):
        monkeypatch.delenv(name, raising=False)


def test_read_your_writes_wait_defaults_to_ten_seconds():
    assert Settings().read_your_writes_wait_s == 10.0


def test_read_your_writes_wait_from_its_variable(monkeypatch):
    monkeypatch.setenv("READ_YOUR_WRITES_WAIT_S", "2.5")
    assert Settings().read_your_writes_wait_s == 2.5


def test_former_variable_is_still_read(monkeypatch):
    monkeypatch.setenv("API_FLUSH_WAIT_S", "4")
    assert Settings().read_your_writes_wait_s == 4.0


def test_new_variable_wins_over_the_former(monkeypatch):
    monkeypatch.setenv("API_FLUSH_WAIT_S", "4")
    monkeypatch.setenv("READ_YOUR_WRITES_WAIT_S", "1")
    assert Settings().read_your_writes_wait_s == 1.0


def test_read_your_writes_wait_by_name_in_code():
    assert Settings(read_your_writes_wait_s=0.3).read_your_writes_wait_s == 0.3


def test_a_negative_wait_is_refused(monkeypatch):
    monkeypatch.setenv("READ_YOUR_WRITES_WAIT_S", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings()
