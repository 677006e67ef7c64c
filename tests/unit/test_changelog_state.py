"""A transactional stage's state: what is written counts at once for the stage, and is kept
only once its transaction commits; a restore rebuilds a partition from its changelog."""

from __future__ import annotations

import json

from streams.batching import CameraBatches
from streams.transactional import ChangelogState


def test_a_write_is_seen_at_once_and_kept_only_when_committed():
    state = ChangelogState("g-state-changelog")
    key, value = state.write("img-1", True, 2)
    assert (key, json.loads(value), state.get("img-1")) == (b"img-1", True, True)
    state.abort()
    assert state.get("img-1") is None
    state.write("img-1", True, 2)
    state.commit()
    state.abort()  # a later transaction's abort keeps what was committed
    assert state.get("img-1") is True


def test_a_model_is_kept_as_its_json():
    state = ChangelogState("g-state-changelog")
    _, value = state.write("cam", CameraBatches(), 0)
    assert state.get("cam") == json.loads(value) == CameraBatches().model_dump(mode="json")


def test_restore_applies_records_in_order_tombstones_included_and_forget_drops_a_partition():
    state = ChangelogState("g-state-changelog")
    state.restore(0, [(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"b", None)])
    state.restore(1, [(b"c", b"4")])
    assert (state.get("a"), state.get("b"), state.get("c")) == (3, None, 4)
    assert sorted(state.values()) == [3, 4]
    state.forget({0})
    assert (state.get("a"), state.get("c")) == (None, 4)
