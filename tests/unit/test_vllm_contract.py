"""The analyst's side of the vLLM backend's contract, without a server: what it reads from the
model's configuration, how it renders the messages and what sampling parameters it sends."""

from __future__ import annotations

import json

import pytest

from streams.analyst import AnalystRequest, AnalystUnavailable, VllmContract

# Llama 3.1's template, as Nemotron Nano's tokenizer carries it (abridged: no tools).
LLAMA_31 = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
REQUEST = AnalystRequest(
    system_prompt="You assess risk.",
    prompt="Camera: porch\nDetections: person",
    temperature=0.2,
    max_tokens=256,
    json_schema={"type": "object", "properties": {"risk_score": {"type": "integer"}}},
    seed=7,
)


def _config(**parameters: str) -> dict:
    return {
        "backend": "vllm",
        "parameters": {key: {"string_value": value} for key, value in parameters.items()},
    }


def test_the_messages_are_rendered_with_the_models_template_and_the_assistants_turn_opened():
    contract = VllmContract.of(
        _config(chat_template=LLAMA_31, bos_token="<|begin_of_text|>"), "nemotron"
    )
    assert contract.render(REQUEST) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou assess risk.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nCamera: porch\nDetections: person<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize("key", ["structured_outputs", "guided_decoding"])
def test_the_schema_goes_under_the_key_the_configuration_names_as_a_json_string(key):
    constraint = json.dumps({"json": REQUEST.json_schema})
    contract = VllmContract.of(_config(chat_template="x", json_schema_parameter=key), "nemotron")
    assert json.loads(contract.sampling_parameters(REQUEST)) == {
        "temperature": 0.2,
        "max_tokens": 256,
        "seed": 7,
        key: constraint,
    }


def test_without_a_schema_or_seed_none_is_sent():
    contract = VllmContract.of(_config(chat_template="x"), "nemotron")
    bare = AnalystRequest("s", "p", temperature=0.0, max_tokens=8)
    assert json.loads(contract.sampling_parameters(bare)) == {"temperature": 0.0, "max_tokens": 8}
    assert contract.schema_parameter == "structured_outputs"  # the default: Triton 25.11 on


def test_a_configuration_without_a_template_is_refused_naming_what_is_missing():
    with pytest.raises(AnalystUnavailable, match=r"nemotron .* no chat_template parameter"):
        VllmContract.of(_config(), "nemotron")


def test_an_unknown_schema_key_is_refused():
    with pytest.raises(AnalystUnavailable, match="'guided_json' is neither"):
        VllmContract.of(_config(chat_template="x", json_schema_parameter="guided_json"), "m")


def test_a_template_that_fails_is_the_configurations_fault():
    contract = VllmContract.of(_config(chat_template="{{ messages[5]['content'] }}"), "nemotron")
    with pytest.raises(AnalystUnavailable, match="the chat template does not render"):
        contract.render(REQUEST)
