"""Fixtures of the API tests: a shorter read-your-writes wait, and playing the consumer of
the commands the API produces (the batch aggregator, a worker)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from schemas.topics import TopicSpec
from tests.support import TopicWatcher

SHORT_WAIT_S = 0.3


@pytest.fixture
def short_wait(api_client) -> Iterator[float]:
    """The API waits only SHORT_WAIT_S for the read model to show a write, for one test."""
    services = api_client.app.state.services
    saved = services.read_your_writes_wait_s
    services.read_your_writes_wait_s = SHORT_WAIT_S
    try:
        yield SHORT_WAIT_S
    finally:
        services.read_your_writes_wait_s = saved


Consumer = Callable[..., Any]


@pytest.fixture
def consumer_of(stack) -> Consumer:
    """`with consumer_of(topic, matches, act) as seen:` while the block runs, a thread plays
    the topic's consumer: it waits for the first command produced from then on for which
    `matches(command)` holds, appends (key, command) to `seen`, then calls `act(command)`."""

    @contextmanager
    def playing(
        topic: TopicSpec, matches: Callable[[Any], bool], act: Callable[[Any], None]
    ) -> Iterator[list[tuple[str | None, Any]]]:
        watcher = TopicWatcher(stack.kafka_bootstrap, topic)
        seen: list[tuple[str | None, Any]] = []

        def play() -> None:
            key, command = watcher.find(matches)
            seen.append((key, command))
            act(command)

        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        try:
            yield seen
        finally:
            thread.join(20)
            watcher.close()

    return playing
