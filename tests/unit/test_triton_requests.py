"""vigil_triton.requests.answer_each: which exception answers which code, request by request.

`triton_python_backend_utils` exists only inside Triton, so a stand-in of the few names
the module uses is put in its place here.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class TritonError:
    message: str
    code: str
    INVALID_ARG = "INVALID_ARG"
    INTERNAL = "INTERNAL"


@dataclass
class InferenceResponse:
    output_tensors: Any = None
    error: TritonError | None = None


class Refused(ValueError):
    pass


class RefusedToo(Refused):
    pass


@pytest.fixture
def requests_module(monkeypatch):
    stub = types.ModuleType("triton_python_backend_utils")
    stub.TritonError = TritonError
    stub.InferenceResponse = InferenceResponse
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stub)
    monkeypatch.delitem(sys.modules, "vigil_triton.requests", raising=False)
    module = importlib.import_module("vigil_triton.requests")
    yield module
    sys.modules.pop("vigil_triton.requests", None)


def answer(request: str) -> list[str]:
    if request == "boom":
        raise RuntimeError("kaput")
    if request == "bad":
        raise Refused("no boxes")
    if request == "worse":
        raise RefusedToo("PROMPT is empty")
    return [f"tensor of {request}"]


def test_each_request_gets_its_own_answer(requests_module):
    responses = requests_module.answer_each(
        ["a", "bad", "boom", "b"], answer, refused={Refused: "invalid request"}, failure="detection"
    )
    assert [(r.output_tensors, r.error) for r in responses] == [
        (["tensor of a"], None),
        (None, TritonError("invalid request: no boxes", "INVALID_ARG")),
        (None, TritonError("detection failed: RuntimeError: kaput", "INTERNAL")),
        (["tensor of b"], None),
    ]


def test_the_first_matching_kind_names_the_refusal_and_none_keeps_the_message(requests_module):
    refused = {RefusedToo: None, Refused: "invalid image"}
    bad, worse = requests_module.answer_each(["bad", "worse"], answer, refused=refused, failure="x")
    assert bad.error == TritonError("invalid image: no boxes", "INVALID_ARG")
    assert worse.error == TritonError("PROMPT is empty", "INVALID_ARG")


def test_with_nothing_refused_every_exception_is_internal(requests_module):
    (response,) = requests_module.answer_each(["bad"], answer, refused={}, failure="postprocess")
    assert response.error == TritonError("postprocess failed: Refused: no boxes", "INTERNAL")
