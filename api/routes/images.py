"""GET /api/images/{image_id} and /annotated: the camera's image, by the id the read model
knows it by (never a path from the request); see api/images.py for the signing and the
checks on the file."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from api.deps import ImageLinksDep, SessionDep, SettingsDep
from api.errors import Forbidden, Gone, NotFound, Unauthorized
from api.images import (
    Box,
    FileGone,
    FileOutsideCameras,
    ImageLinks,
    Variant,
    read_recorded,
    render,
)
from api.models import ErrorOut
from api.queries.images import image_boxes, recorded_file
from api.security import key_matches
from vigil.settings import Settings

read = APIRouter(prefix="/api/images", tags=["images"])

# Image ids are UUIDs; this admits any id the topics could carry and nothing path-like.
ImageId = Annotated[
    str,
    Path(
        pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$",
        description="The image's id (as in a detection's image_id)",
    ),
]
MaxWidth = Annotated[
    int | None,
    Query(ge=16, le=8192, description="Shrink to this width in pixels (never enlarged)"),
]
Expires = Annotated[
    int | None,
    Query(ge=0, le=2**53, description="A signed URL's expiry (Unix seconds)"),
]
Signature = Annotated[
    str | None,
    Query(pattern=r"^[0-9a-fA-F]{64}$", description="A signed URL's HMAC-SHA256 (hex)"),
]
ApiKey = Annotated[str | None, Header(description="API key (instead of a signature)")]

_RESPONSES: dict[int | str, dict] = {
    200: {
        "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}, "image/gif": {}},
        "description": "The image",
    },
    304: {"description": "Not modified (If-None-Match)"},
    401: {"model": ErrorOut, "description": "Keys are configured: no key and no signed URL"},
    403: {"model": ErrorOut, "description": "A signed URL that does not match or has expired"},
    404: {"model": ErrorOut, "description": "No image by that id, or none with a file"},
    410: {
        "model": ErrorOut,
        "description": "The image's file is gone, has changed, or is no readable image",
    },
}


def _authorize(
    settings: Settings,
    links: ImageLinks,
    image_id: str,
    variant: Variant,
    expires: int | None,
    signature: str | None,
    x_api_key: str | None,
) -> None:
    digests = settings.api_key_digests
    if not digests:
        return
    if x_api_key:
        if not key_matches(x_api_key, digests):
            raise Unauthorized("invalid API key")
        return
    if expires is None or signature is None:
        raise Unauthorized(
            "images need an X-API-Key header or a signed URL (expires and signature, as the "
            "detection and event answers give them)"
        )
    verdict = links.signed_validly(image_id, variant, expires, signature)
    if verdict == "invalid":
        raise Forbidden(f"the signature does not match image {image_id} ({variant})")
    if verdict == "expired":
        raise Forbidden(f"the signed URL expired at {expires} (Unix seconds): ask for a new one")


def _serve(
    session: SessionDep,
    settings: Settings,
    image_id: str,
    boxes_for: tuple[str, float | None] | None,
    max_width: int | None,
    if_none_match: str | None,
) -> Response:
    recorded = recorded_file(session, image_id)
    if recorded is None:
        raise NotFound(f"image {image_id}")
    boxes: list[Box] | None = None
    if boxes_for is not None:
        boxes = image_boxes(session, image_id, *boxes_for)
    try:
        data = read_recorded(recorded.file_path, recorded.sha256, settings.camera_root)
    except FileOutsideCameras as exc:
        raise Forbidden(str(exc)) from exc
    except FileGone as exc:
        raise Gone(str(exc)) from exc
    # read_recorded has checked the bytes against the recorded hash: it names them.
    content = recorded.sha256 or hashlib.sha256(data).hexdigest()
    tag = hashlib.sha256(repr((content, boxes, max_width)).encode()).hexdigest()[:32]
    etag = f'"{tag}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    try:
        rendered = render(data, boxes, max_width)
    except FileGone as exc:
        raise Gone(f"image {image_id}: {exc}") from exc
    return Response(rendered.data, media_type=rendered.media_type, headers=headers)


@read.get("/{image_id}/annotated", response_class=Response, responses=_RESPONSES)
def annotated_image(
    session: SessionDep,
    settings: SettingsDep,
    links: ImageLinksDep,
    image_id: ImageId,
    max_width: MaxWidth = None,
    min_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    model_name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="The detector whose boxes to draw (default: DETECTOR_MODEL)",
        ),
    ] = None,
    expires: Expires = None,
    signature: Signature = None,
    x_api_key: ApiKey = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The image with its detections drawn: a box and `label confidence` for each."""
    _authorize(settings, links, image_id, "annotated", expires, signature, x_api_key)
    boxes_for = (model_name or settings.detector_model, min_confidence)
    return _serve(session, settings, image_id, boxes_for, max_width, if_none_match)


# After /annotated, and taking any path: an id with a slash is refused (422), not routed.
@read.get("/{image_id:path}", response_class=Response, responses=_RESPONSES)
def image(
    session: SessionDep,
    settings: SettingsDep,
    links: ImageLinksDep,
    image_id: ImageId,
    max_width: MaxWidth = None,
    expires: Expires = None,
    signature: Signature = None,
    x_api_key: ApiKey = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The camera's image as the watcher recorded it (its own bytes unless shrunk)."""
    _authorize(settings, links, image_id, "original", expires, signature, x_api_key)
    return _serve(session, settings, image_id, None, max_width, if_none_match)
