"""No input makes the API answer 5xx or break its documented shape.

schemathesis generates requests for every operation of the app's own OpenAPI document (valid
ones and ones that break it: out-of-range integers, odd Unicode, overlong strings, wrong
types) and sends them over HTTP to the app served by uvicorn, with the API key, on a broker
and a database of this module's own that hold one camera's projected history. Every answer
must be below 500 and match the schema documented for its status.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.main import create_app
from api.security import new_api_key
from tests.factories import apply, camera_history
from tests.support import live_api_of, new_camera_id

# schemathesis's own strategies use `random`, which Hypothesis warns about.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

# Hypothesis examples per operation: ~60 operations, so the module takes about a minute.
EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed_api(own_stack, own_engine) -> Iterator[tuple[str, str]]:
    """The app on a free port, (its http base URL, an API key it accepts)."""
    at = datetime.now(UTC) - timedelta(hours=1)
    for minute in range(3):
        camera = new_camera_id("fuzz")
        path = f"/cameras/{camera}/a.jpg"
        apply(
            own_engine,
            *(m for _, m in camera_history(camera, at + timedelta(minutes=minute), path)),
        )
    key, digest = new_api_key()
    # Commands answer at once: nothing here consumes them, and a wait for the read model
    # to show them would only slow the fuzz down.
    app_settings = own_stack.settings(
        api_key_hashes=digest, read_your_writes_wait_s=0, prompt_test_wait_s=0
    )
    with live_api_of(app_settings) as live:
        yield live.base_url.replace("ws://", "http://", 1), key


# The document the app serves; the operations are known without a running app.
schema = schemathesis.openapi.from_dict(create_app().openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_input_answers_5xx_or_an_undocumented_shape(case, fuzzed_api):
    base_url, key = fuzzed_api
    case.call_and_validate(
        base_url=base_url,
        headers={"X-API-Key": key},
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )
