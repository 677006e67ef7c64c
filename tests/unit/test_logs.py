"""LOG_FORMAT=json: one JSON object per line with the message's trace, camera and image where
known, Python's warnings and exceptions included, in a process of its own (logging's set-up
is process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, logging.config, warnings
    from vigil.logs import logging_config, message_context

    logging.config.dictConfig(logging_config({fmt!r}))

    class Image:
        trace_id, camera_id, image_id = "t-1", "driveway", "img-1"

    class Batch:
        trace_id, camera_id = "t-2", "porch"

    warnings.warn("an old way", DeprecationWarning, stacklevel=1)
    log = logging.getLogger("vigil.test")
    with message_context(Image()):
        log.info("detected %d", 2)
        with message_context(Batch()):
            log.info("batched")
        log.info("back to the image")
    log.warning("named", extra={{"camera_id": "garage"}})
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("failed")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')

    async def handled(message, say):
        with message_context(message):
            await asyncio.sleep(0.01)
            log.info(say)

    async def both():
        await asyncio.gather(handled(Image(), "task one"), handled(Batch(), "task two"))

    asyncio.run(both())
    log.info("nothing known")
    """
)


def _run(fmt: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(fmt=fmt)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == ""
    return done.stderr.splitlines()


def _context(line: dict) -> tuple:
    return tuple(line.get(name) for name in ("trace_id", "camera_id", "image_id"))


def test_json_lines_carry_the_context_of_the_message_being_handled():
    lines = [json.loads(line) for line in _run("json")]
    by_message = {line["message"].split("\n")[0]: line for line in lines}
    assert _context(by_message["detected 2"]) == ("t-1", "driveway", "img-1")
    # An inner message's fields replace the outer's; what it lacks is kept.
    assert _context(by_message["batched"]) == ("t-2", "porch", "img-1")
    assert _context(by_message["back to the image"]) == ("t-1", "driveway", "img-1")
    assert _context(by_message["named"]) == (None, "garage", None)
    assert _context(by_message["task one"]) == ("t-1", "driveway", "img-1")
    assert _context(by_message["task two"]) == ("t-2", "porch", None)
    assert _context(by_message["nothing known"]) == (None, None, None)
    assert by_message["detected 2"]["level"] == "INFO"
    assert by_message["detected 2"]["logger"] == "vigil.test"
    assert by_message["detected 2"]["time"].endswith("+00:00")


def test_warnings_exceptions_and_uvicorns_lines_are_json_too():
    lines = [json.loads(line) for line in _run("json")]
    [warning] = [line for line in lines if line["logger"] == "py.warnings"]
    assert "DeprecationWarning: an old way" in warning["message"]
    [failed] = [line for line in lines if line["message"] == "failed"]
    assert failed["level"] == "ERROR"
    assert failed["exception"].endswith("ZeroDivisionError: division by zero")
    assert any(line["logger"] == "uvicorn.access" for line in lines)


def test_the_text_format_is_for_people():
    lines = _run("text")
    assert any(line.endswith("INFO vigil.test: detected 2") for line in lines)
    assert not any(line.startswith("{") for line in lines)
