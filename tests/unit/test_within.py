"""`within`, the deadline a transactional stage puts on its producer's calls: a cancel is
never lost, not even one that meets the awaited call finishing (where Python 3.11's
`asyncio.wait_for` returns the result and drops the cancel)."""

from __future__ import annotations

import asyncio

import pytest

from streams.transactional import within


async def test_a_cancel_that_meets_the_call_finishing_still_cancels():
    call = asyncio.get_running_loop().create_future()
    went_on = asyncio.Event()

    async def epoch_task() -> None:
        await within(call, 10)
        went_on.set()  # a task the epoch cancelled must not get here
        await asyncio.Event().wait()

    task = asyncio.create_task(epoch_task())
    await asyncio.sleep(0)  # the task waits on the call
    call.set_result("committed")  # the call finishes ...
    task.cancel()  # ... in the same turn of the loop as the epoch cancels the task
    done, _ = await asyncio.wait([task], timeout=1)
    assert done == {task} and task.cancelled()
    assert not went_on.is_set()


async def test_the_result_comes_back_within_the_deadline():
    assert await within(asyncio.sleep(0, "done"), 1) == "done"


async def test_a_call_past_the_deadline_raises_timeout():
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(5), 0.05)
