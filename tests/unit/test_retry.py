import asyncio

import pytest

from streams.errors import PermanentError
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry


def test_delay_after_doubles_from_base_and_caps():
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=30.0, exponential_base=2.0, jitter=0.0)
    assert [policy.delay_after(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_delay_after_adds_at_most_the_jitter_share():
    policy = RetryPolicy(base_delay_s=1.0, jitter=0.25)
    assert policy.delay_after(3, rand=lambda: 0.0) == 4.0
    assert policy.delay_after(3, rand=lambda: 1.0) == 5.0


def test_call_with_retry_succeeds_after_transient_failures():
    calls, sleeps = [], []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return "ok"

    async def sleep(seconds):
        sleeps.append(seconds)

    policy = RetryPolicy(max_attempts=3, jitter=0.0)
    assert asyncio.run(call_with_retry(flaky, policy, sleep=sleep)) == "ok"
    assert len(calls) == 3
    assert sleeps == [1.0, 2.0]


def test_call_with_retry_exhausts_with_attempt_count_and_times():
    async def down():
        raise ConnectionError("refused")

    async def sleep(_):
        return None

    with pytest.raises(RetryExhausted) as caught:
        asyncio.run(call_with_retry(down, RetryPolicy(max_attempts=3), sleep=sleep))
    assert caught.value.attempts == 3
    assert isinstance(caught.value.last_error, ConnectionError)
    assert caught.value.first_failed_at <= caught.value.last_failed_at


def test_permanent_error_is_not_retried():
    calls = []

    async def corrupt():
        calls.append(1)
        raise PermanentError("corrupt image")

    with pytest.raises(RetryExhausted) as caught:
        asyncio.run(call_with_retry(corrupt, RetryPolicy(max_attempts=3)))
    assert calls == [1]
    assert caught.value.attempts == 1
