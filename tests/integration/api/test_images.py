"""GET /api/images/{id} and /annotated: the recorded file by id, its boxes drawn where the
detections say, shrunk on request, cached by ETag; refused for ids that name no image or
look like paths, gone when the file is; with API keys configured, only with the key or a
signed URL that has not expired."""

from __future__ import annotations

import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageColor

from api.images import ImageLinks, box_colour
from api.main import create_app
from api.security import new_api_key
from schemas.detections import BoundingBox, DetectionsProduced
from tests.factories import (
    apply,
    closed,
    detection,
    detections_event,
    image_event,
    image_file_bytes,
    members,
    opened,
    recorded,
)
from tests.support import new_camera_id

GREY = (128, 128, 128)
# The person's box, in the image's pixels (200x100).
X1, Y1, X2, Y2 = 20, 10, 120, 80


def _png(size: tuple[int, int] = (200, 100), colour: tuple[int, int, int] = GREY) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def _recorded(
    engine,
    camera_root: Path,
    name: str,
    data: bytes,
    camera_id: str | None = None,
    at: datetime | None = None,
) -> DetectionsProduced:
    """An image file under the camera root, received and detected (a person at 0.9 and a
    dog at 0.5, `at`); its detections."""
    camera_id = camera_id or new_camera_id("img")
    path = camera_root / camera_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    image = image_event(
        camera_id,
        digest=hashlib.sha256(data).hexdigest(),
        file_path=str(path),
        size_bytes=len(data),
    )
    produced = detections_event(image, []).model_copy(
        update={
            "detections": (
                detection("person", 0, bbox=BoundingBox(x1=X1, y1=Y1, x2=X2, y2=Y2)),
                detection("dog", 1, confidence=0.5, bbox=BoundingBox(x1=150, y1=5, x2=190, y2=95)),
            ),
            "image_width": 200,
            "image_height": 100,
            **({"occurred_at": at} if at is not None else {}),
        }
    )
    apply(engine, image, produced)
    return produced


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cameras").resolve()


@pytest.fixture(scope="module")
def open_client(stack, camera_root, tmp_path_factory):
    """An app with no API keys, serving from `camera_root`."""
    settings = stack.settings(
        camera_root=camera_root,
        data_dir=tmp_path_factory.mktemp("data"),
        detector_model="centernet",
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def keyed(stack, camera_root, tmp_path_factory):
    """An app with an API key configured, and the key."""
    key, digest = new_api_key()
    settings = stack.settings(
        camera_root=camera_root,
        data_dir=tmp_path_factory.mktemp("data"),
        detector_model="centernet",
        api_key_hashes=digest,
    )
    with TestClient(create_app(settings)) as client:
        yield client, key


@pytest.fixture(scope="module")
def png_id(engine, camera_root) -> str:
    return _recorded(engine, camera_root, "a.png", _png()).image_id


def _pixels(reply) -> Image.Image:
    assert reply.status_code == 200, reply.text
    return Image.open(io.BytesIO(reply.content)).convert("RGB")


def test_the_original_is_the_files_own_bytes_with_an_etag(open_client, png_id):
    reply = open_client.get(f"/api/images/{png_id}")
    assert reply.status_code == 200, reply.text
    assert reply.content == _png()
    assert reply.headers["content-type"] == "image/png"
    assert reply.headers["cache-control"] == "private, max-age=300"
    etag = reply.headers["etag"]
    again = open_client.get(f"/api/images/{png_id}", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")


def test_max_width_shrinks_keeping_the_aspect_ratio_and_never_enlarges(open_client, png_id):
    assert _pixels(open_client.get(f"/api/images/{png_id}", params={"max_width": 50})).size == (
        50,
        25,
    )
    assert open_client.get(f"/api/images/{png_id}", params={"max_width": 400}).content == _png()


def test_annotated_draws_each_box_where_its_detection_says(open_client, png_id):
    pixels = _pixels(open_client.get(f"/api/images/{png_id}/annotated"))
    assert pixels.size == (200, 100)
    person, dog = ImageColor.getrgb(box_colour("person")), ImageColor.getrgb(box_colour("dog"))
    # The box's edges, below the caption drawn at its top.
    assert pixels.getpixel((X1, 60)) == person
    assert pixels.getpixel((X2, 60)) == person
    assert pixels.getpixel((70, Y2)) == person
    assert pixels.getpixel((70, 60)) == GREY  # inside the box
    assert pixels.getpixel((X2 + 10, 60)) == GREY  # between the boxes
    assert pixels.getpixel((190, 60)) == dog


def test_annotated_leaves_out_detections_under_min_confidence_and_other_models(open_client, png_id):
    strong = _pixels(open_client.get(f"/api/images/{png_id}/annotated?min_confidence=0.6"))
    assert strong.getpixel((X1, 60)) == ImageColor.getrgb(box_colour("person"))
    assert strong.getpixel((190, 60)) == GREY
    other = _pixels(open_client.get(f"/api/images/{png_id}/annotated?model_name=yolo26"))
    assert other.getpixel((X1, 60)) == GREY


def test_an_annotated_thumbnail_is_shrunk_after_drawing(open_client, png_id):
    thumbnail = _pixels(open_client.get(f"/api/images/{png_id}/annotated?max_width=100"))
    assert thumbnail.size == (100, 50)
    assert thumbnail.getpixel((X1 // 2, 30)) != GREY


def test_a_jpeg_is_served_as_jpeg(open_client, engine, camera_root):
    data = image_file_bytes("JPEG", size=(64, 48), seed=3)
    image_id = _recorded(engine, camera_root, "b.jpg", data).image_id
    original = open_client.get(f"/api/images/{image_id}")
    assert (original.headers["content-type"], original.content) == ("image/jpeg", data)
    annotated = open_client.get(f"/api/images/{image_id}/annotated")
    assert annotated.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(annotated.content)).size == (64, 48)


def test_unknown_id_is_404_and_a_path_like_id_is_422(open_client):
    reply = open_client.get("/api/images/0b6c2f3e-9d6a-5f1e-8a3c-000000000000")
    assert reply.status_code == 404
    assert reply.json()["error"] == "NotFound"
    for path_like in ("..%2F..%2Fetc%2Fpasswd", "etc%2Fpasswd", "a.jpg", "%2Fetc%2Fhostname"):
        reply = open_client.get(f"/api/images/{path_like}")
        assert reply.status_code == 422, (path_like, reply.text)
        assert reply.json()["detail"][0]["loc"] == ["path", "image_id"]
    reply = open_client.get("/api/images/..%2Fx/annotated")
    assert reply.status_code == 422


def test_bad_parameters_are_422_naming_them(open_client, png_id):
    for params, name in (
        ({"max_width": 0}, "max_width"),
        ({"max_width": 10**30}, "max_width"),
        ({"min_confidence": 2}, "min_confidence"),
        ({"signature": "not hex"}, "signature"),
        ({"expires": -1}, "expires"),
    ):
        reply = open_client.get(f"/api/images/{png_id}/annotated", params=params)
        assert reply.status_code == 422, (params, reply.text)
        assert reply.json()["detail"][0]["loc"] == ["query", name]


def test_a_removed_or_replaced_file_is_gone(open_client, engine, camera_root):
    removed = _recorded(engine, camera_root, "c.png", _png(colour=(1, 2, 3))).image_id
    (next(camera_root.glob("*/c.png"))).unlink()
    for path in (f"/api/images/{removed}", f"/api/images/{removed}/annotated"):
        reply = open_client.get(path)
        assert reply.status_code == 410, reply.text
        assert reply.json()["error"] == "Gone"
    replaced = _recorded(engine, camera_root, "d.png", _png(colour=(4, 5, 6))).image_id
    next(camera_root.glob("*/d.png")).write_bytes(_png(colour=(7, 8, 9)))
    reply = open_client.get(f"/api/images/{replaced}")
    assert reply.status_code == 410
    assert "no longer this image" in reply.json()["detail"]


def test_a_recorded_file_outside_the_camera_root_is_never_served(open_client, engine, tmp_path):
    image_id = _recorded(engine, tmp_path, "secret.png", _png(colour=(9, 9, 9))).image_id
    assert next(tmp_path.glob("*/secret.png")).is_file()
    reply = open_client.get(f"/api/images/{image_id}")
    assert reply.status_code == 403
    assert "outside CAMERA_ROOT" in reply.json()["detail"]


def test_detections_carry_plain_urls_without_keys(open_client, png_id):
    listed = _detection_of(open_client, png_id)
    assert listed["image_url"] == f"/api/images/{png_id}"
    assert listed["annotated_image_url"] == f"/api/images/{png_id}/annotated"
    assert open_client.get(listed["annotated_image_url"]).status_code == 200


def _detection_of(client: TestClient, image_id: str) -> dict:
    detections = client.get(
        "/api/detections", params={"model_name": "centernet", "limit": 1000}
    ).json()["detections"]
    return next(d for d in detections if d["image_id"] == image_id)


def test_with_keys_an_image_needs_the_key_or_a_signed_url(keyed, png_id):
    client, key = keyed
    reply = client.get(f"/api/images/{png_id}")
    assert reply.status_code == 401
    assert "signed URL" in reply.json()["detail"]
    assert client.get(f"/api/images/{png_id}", headers={"X-API-Key": key + "x"}).status_code == 401
    assert client.get(f"/api/images/{png_id}", headers={"X-API-Key": key}).content == _png()
    listed = _detection_of(client, png_id)
    assert "expires=" in listed["image_url"] and "signature=" in listed["image_url"]
    assert client.get(listed["image_url"]).content == _png()
    assert client.get(listed["annotated_image_url"]).status_code == 200


def test_a_signed_url_is_refused_when_tampered_with_for_another_variant_or_expired(
    keyed, png_id, engine, camera_root
):
    client, _ = keyed
    listed = _detection_of(client, png_id)
    tampered = listed["image_url"][:-1] + ("0" if listed["image_url"][-1] != "0" else "1")
    assert client.get(tampered).status_code == 403
    # The original's signature does not open the annotated image.
    query = listed["image_url"].split("?", 1)[1]
    assert client.get(f"/api/images/{png_id}/annotated?{query}").status_code == 403
    # Nor another image (one of this test's own: the database may hold no other).
    other = _recorded(engine, camera_root, "b.png", _png(colour=(0, 0, 200))).image_id
    assert other != png_id
    assert client.get(f"/api/images/{other}?{query}").status_code == 403


def test_an_expired_signed_url_is_403_and_says_so(keyed, png_id):
    client, _ = keyed
    links: ImageLinks = client.app.state.services.image_links
    stale = links.url(png_id, "original", now=time.time() - links.ttl_s - 600)
    reply = client.get(stale)
    assert reply.status_code == 403
    assert "expired" in reply.json()["detail"]


def test_the_signing_secret_is_kept_in_the_data_dir_and_shared(stack, tmp_path, camera_root):
    _, digest = new_api_key()
    settings = stack.settings(camera_root=camera_root, data_dir=tmp_path, api_key_hashes=digest)
    first, second = ImageLinks.from_settings(settings), ImageLinks.from_settings(settings)
    assert first.secret == second.secret == (tmp_path / "image-url.secret").read_bytes()
    assert (tmp_path / "image-url.secret").stat().st_mode & 0o077 == 0
    assert first.url("x", "original", now=0) == second.url("x", "original", now=0)
    configured = ImageLinks.from_settings(settings.model_copy(update={"image_url_secret": "s"}))
    assert configured.url("x", "original", now=0) != first.url("x", "original", now=0)


def _analysed_pair(engine, camera_root: Path) -> tuple[DetectionsProduced, str]:
    """Two images of one camera a minute apart, batched (the later one listed first) and
    analysed; the earlier one's detections and the camera."""
    at = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)
    first = _recorded(engine, camera_root, "t1.png", _png(colour=(10, 20, 30)), at=at)
    later = _recorded(
        engine,
        camera_root,
        "t2.png",
        _png(colour=(40, 50, 60)),
        camera_id=first.camera_id,
        at=at + timedelta(minutes=1),
    )
    batch = opened(first.camera_id, at)
    done = closed(batch, members(later, first), "idle_timeout", 90)
    apply(engine, batch, done, recorded(done, 40))
    return first, first.camera_id


def test_an_events_thumbnail_is_its_batchs_first_image_with_its_boxes(
    open_client, engine, camera_root
):
    first, camera_id = _analysed_pair(engine, camera_root)
    [event] = open_client.get("/api/events", params={"camera_id": camera_id}).json()["events"]
    assert event["thumbnail_url"] == f"/api/images/{first.image_id}/annotated?max_width=320"
    detail = open_client.get(f"/api/events/{event['id']}").json()
    assert detail["thumbnail_url"] == event["thumbnail_url"]
    thumbnail = _pixels(open_client.get(event["thumbnail_url"]))
    assert thumbnail.size == (200, 100)  # narrower than 320: not enlarged
    assert thumbnail.getpixel((100, 90)) == (10, 20, 30)  # the earlier image, off its boxes
    assert thumbnail.getpixel((X1, 60)) == ImageColor.getrgb(box_colour("person"))


def test_with_keys_an_events_thumbnail_is_signed(keyed, engine, camera_root):
    client, _ = keyed
    first, camera_id = _analysed_pair(engine, camera_root)
    [event] = client.get("/api/events", params={"camera_id": camera_id}).json()["events"]
    url = event["thumbnail_url"]
    assert url.startswith(f"/api/images/{first.image_id}/annotated?expires=")
    assert "&signature=" in url and url.endswith("&max_width=320")
    assert _pixels(client.get(url)).getpixel((100, 90)) == (10, 20, 30)
