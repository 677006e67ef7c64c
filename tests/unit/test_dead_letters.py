import base64

from streams.dead_letters import dead_letter, original_payload


def test_original_payload_prefers_json_then_text_then_base64():
    assert original_payload(b'{"a": 1}') == ({"a": 1}, "json")
    assert original_payload(b"plain words") == ("plain words", "text")
    assert original_payload(b"\xff\x00") == (base64.b64encode(b"\xff\x00").decode(), "base64")
    assert original_payload(None) == ("", "text")


def test_dead_letter_takes_error_type_from_the_exception():
    class InvalidImage(Exception):
        error_type = "InvalidImage"

    letter = dead_letter(
        stage="detection",
        raw=b'{"image_id": "x"}',
        error=InvalidImage("invalid image: truncated"),
        producer="test",
        source_topic="vigil.images",
        source_partition=2,
        source_offset=41,
        attempt_count=1,
    )
    assert letter.error_type == "InvalidImage"
    assert letter.error == "invalid image: truncated"
    assert letter.original == {"image_id": "x"}
    assert (letter.source_partition, letter.source_offset) == (2, 41)
