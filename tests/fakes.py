"""Hand-written fakes behind the project's own interfaces, for fault injection and unit tests.

Each fake plays a script: one entry per call, either the answer to give or the exception
to raise, and records what it was asked.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.commands import Delivered, NotDelivered, Outgoing


class FakeSender:
    """Keeps what it is given; refuses messages with a key in `refuse` or on `refuse_topic`."""

    def __init__(self, refuse: tuple[str, ...] = (), refuse_topic: str = "") -> None:
        self.stored: list[Outgoing] = []
        self.refuse = refuse
        self.refuse_topic = refuse_topic

    def deliver(self, messages: Sequence[Outgoing]) -> list[Delivered | NotDelivered]:
        results: list[Delivered | NotDelivered] = []
        for message in messages:
            if message.key in self.refuse or message.topic == self.refuse_topic:
                results.append(NotDelivered("Local: Message timed out"))
            else:
                self.stored.append(message)
                results.append(Delivered(partition=1, offset=len(self.stored) - 1))
        return results
