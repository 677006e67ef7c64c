"""The worker's breaker board and the prompt follower's book: their handlers, no services."""

from __future__ import annotations

import pytest

from schemas.analysis import PromptConfig, PromptConfigured
from schemas.system import ResetCircuitBreaker
from schemas.topics import SYSTEM
from streams.breaker import BreakerConfig
from streams.breaker_board import BreakerBoard, change_report
from streams.prompts import DEFAULT_PROMPTS, PromptBook


def _drain(board: BreakerBoard) -> list[tuple[str, str, str, int]]:
    out = []
    while not board.outbox.empty():
        change = board.outbox.get_nowait()
        out.append((change.name, change.previous_state, change.state, change.failure_count))
    return out


def test_every_state_change_is_reported_with_its_counters():
    board = BreakerBoard("w1", BreakerConfig(failure_threshold=2))
    breaker = board.breaker("centernet")
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert _drain(board) == [
        ("centernet", "closed", "closed", 0),
        ("centernet", "closed", "open", 2),
    ]


def test_counters_are_reported_when_they_moved_and_on_the_heartbeat():
    board = BreakerBoard("w1", BreakerConfig(failure_threshold=5))
    breaker = board.breaker("nemotron")
    _drain(board)
    board.report_counters()
    assert _drain(board) == []  # nothing moved
    breaker.before_call()
    breaker.record_failure()
    board.report_counters()
    assert _drain(board) == [("nemotron", "closed", "closed", 1)]
    board.report_counters(heartbeat_s=0)
    assert _drain(board) == [("nemotron", "closed", "closed", 1)]


def test_reset_closes_only_the_named_breaker_and_reports_every_breaker_at_once():
    board = BreakerBoard("w1", BreakerConfig(failure_threshold=1))
    for name in ("centernet", "nemotron"):
        board.breaker(name).before_call()
        board.breaker(name).record_failure()
    _drain(board)
    board.reset(ResetCircuitBreaker(name="centernet"))
    board.reset(ResetCircuitBreaker(name="not-here"))  # another worker's model: nothing
    assert (board.breakers["centernet"].state, board.breakers["nemotron"].state) == (
        "closed",
        "open",
    )
    # The change, then a fresh report of every breaker, so the API sees this worker's answer.
    assert _drain(board) == [
        ("centernet", "open", "closed", 0),
        ("centernet", "closed", "closed", 0),
        ("nemotron", "open", "open", 1),
    ]


def test_a_report_is_published_on_the_system_topic_under_the_breaker_name():
    board = BreakerBoard("w7", BreakerConfig())
    board.breaker("crop-attributes")
    item = change_report(board.outbox.get_nowait())
    assert (item.topic, item.key) == (SYSTEM, "crop-attributes")
    assert (item.message.worker_id, item.message.producer) == ("w7", "w7/breakers")


def _prompt(version: int, text: str) -> PromptConfigured:
    config = PromptConfig(system_prompt=text, temperature=0.2, max_tokens=100)
    return PromptConfigured(model="nemotron", version=version, config=config)


def test_the_book_keeps_the_newest_version_in_any_order():
    book = PromptBook()
    assert book.current("nemotron") == DEFAULT_PROMPTS["nemotron"]
    book.apply(_prompt(3, "third"))
    book.apply(_prompt(2, "second"))  # a replay out of order never goes back
    assert (book.current("nemotron").version, book.current("nemotron").config.system_prompt) == (
        3,
        "third",
    )


def test_a_model_without_any_prompt_is_an_error():
    with pytest.raises(LookupError, match="no prompt configuration for model 'florence-2'"):
        PromptBook().current("florence-2")
