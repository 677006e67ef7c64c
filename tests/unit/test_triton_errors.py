"""Sorting Triton's errors by status: refused input is permanent, the rest may pass later."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from streams.triton import input_refused


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        ("400", True),  # INVALID_ARG, and what HTTP folds into it
        ("501", True),  # UNSUPPORTED
        ("StatusCode.INVALID_ARGUMENT", True),
        ("StatusCode.UNIMPLEMENTED", True),
        ("404", False),  # no such model or version loaded: it may be loaded again
        ("500", False),  # INTERNAL: the model failed
        ("503", False),  # UNAVAILABLE
        ("StatusCode.UNAVAILABLE", False),
        ("StatusCode.INTERNAL", False),
        (None, False),  # the client failed before any answer
    ],
)
def test_only_refused_input_is_permanent(status, refused):
    error = InferenceServerException("PROMPT is empty", status=status)
    assert input_refused(error) is refused
