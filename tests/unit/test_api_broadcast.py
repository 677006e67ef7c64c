"""Which held events the WebSocket feed pushes, keeps waiting for, or drops."""

from __future__ import annotations

from api.broadcast import HeldEvents, once_each
from api.models import EventDetail
from tests.factories import analysed_batch


def _recorded(camera_id: str = "front_door"):
    return analysed_batch(camera_id)[2]


def _shown(event) -> EventDetail:
    return EventDetail.model_construct(batch_id=event.batch_id)


def test_shown_events_leave_in_arrival_order_and_the_rest_wait():
    held = HeldEvents(wait_s=60)
    first, second, third = _recorded(), _recorded(), _recorded()
    for event in (first, second, third):
        held.hold(event, now=0)
    push, drop = held.settle([_shown(first), None, _shown(third)], now=1)
    assert [p.batch_id for p in push] == [first.batch_id, third.batch_id]
    assert drop == []
    assert held.waiting() == [second]


def test_an_event_not_shown_within_the_wait_is_dropped():
    held = HeldEvents(wait_s=5)
    late, fresh = _recorded(), _recorded()
    held.hold(late, now=0)
    held.hold(fresh, now=4)
    assert held.settle([None, None], now=5) == ([], [])
    assert held.settle([None, None], now=5.5) == ([], [late])
    assert held.waiting() == [fresh]


def test_events_held_during_a_lookup_stay_behind_the_ones_kept():
    held = HeldEvents(wait_s=60)
    looked_up, kept = _recorded(), _recorded()
    held.hold(looked_up, now=0)
    held.hold(kept, now=0)
    arrived = _recorded()
    shown = [_shown(looked_up), None]  # looked up before `arrived` came
    held.hold(arrived, now=1)
    push, _ = held.settle(shown, now=1)
    assert [p.batch_id for p in push] == [looked_up.batch_id]
    assert held.waiting() == [kept, arrived]
    assert len(held) == 2


def test_identical_messages_of_one_round_are_pushed_once_in_order():
    started = {"type": "job", "job": {"job_id": "a", "status": "running"}}
    other = {"type": "job", "job": {"job_id": "b", "status": "pending"}}
    assert once_each([started, other, dict(started), other]) == [started, other]
