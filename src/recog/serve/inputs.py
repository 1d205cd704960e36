"""Images out of a predict request: multipart upload, raw body, or JSON with base64.

Only bytes are accepted, never URLs: the service does not fetch anything on a
caller's behalf. Whether the bytes are an allowed image is decided later, by
magic bytes, in :func:`recog.io.load_image`.

- ``multipart/form-data``: every file part is an image, in order (field name
  ``image`` or ``images`` by convention); a text field ``top_k`` is read.
- ``application/json``: ``{"image": "<base64>"}`` or ``{"images": ["<base64>", ...]}``,
  optionally ``"top_k"``; ``data:image/...;base64,`` prefixes are accepted.
- anything else: the body is one image (``Content-Type: image/jpeg`` by convention).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from recog.errors import BadRequestError, ImageError, PayloadTooLargeError, UrlNotAllowedError
from recog.io import sniff_format
from recog.serve.settings import Settings

if TYPE_CHECKING:
    from recog.serve.decoding import DecodePool

#: Cap on a multipart text field (top_k, ...): text fields are never large.
MAX_FIELD_BYTES = 64 * 1024
_TEXT_FIELDS = {"top_k"}
_URL_PREFIXES = ("http://", "https://", "ftp://", "file://", "s3://", "gs://")


#: OpenAPI request body of the routes that take images (the three forms above).
IMAGES_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "one or more image files"},
            "top_k": {"type": "integer"}}}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "properties": {
            "image": {"type": "string", "description": "base64 image bytes"},
            "images": {"type": "array", "items": {"type": "string"}},
            "top_k": {"type": "integer"}}}},
    },
}


@dataclass(frozen=True)
class Upload:
    """One image's bytes and the name the client gave it (file name), if any."""

    data: bytes
    name: str | None = None


def named_image_error(exc: ImageError, label: str | None) -> ImageError:
    """The same image error with ``label`` (the upload's name, or "image 2 of 3 (b.jpg)") in front
    of its message, instead of the loader's ``<bytes>`` (dropped when there is no label)."""
    message = exc.message.removeprefix("<bytes>: ")
    return type(exc)(f"{label}: {message}" if label else message, hint=exc.hint)


def upload_label(i: int, uploads: list[Upload]) -> str | None:
    """How an error names upload ``i``: its file name, or "image 2 of 3 (b.jpg)" in a batch."""
    up = uploads[i]
    if len(uploads) == 1:
        return up.name
    return f"image {i + 1} of {len(uploads)}" + (f" ({up.name})" if up.name else "")


async def decode_uploads(decoder: "DecodePool", uploads: list[Upload], fn: Callable[..., Any], *args: Any) -> list:
    """``fn(upload.data, *args)`` for every upload in the decode processes; an image error names its upload.

    Cancelling this (the request's deadline) stops the decodes still running.

    Raises:
        ImageError: the first upload that failed, named (``image 2 of 3 (b.jpg): ...``).
    """
    results = await decoder.run_each(fn, [u.data for u in uploads], *args)
    for i, res in enumerate(results):
        if isinstance(res, ImageError):
            raise named_image_error(res, upload_label(i, uploads)) from res
        if isinstance(res, BaseException):
            raise res
    return results


def _shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: a 4,000-digit number is not echoed back whole."""
    if isinstance(value, int) and value.bit_length() > 3 * limit:  # repr() of a huge int is slow, or refused
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_top_k(value: object) -> int | None:
    if value is None or value == "":
        return None
    bad = BadRequestError(f"top_k must be a whole number between 1 and 1000, got {_shown(value)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad
    if isinstance(value, str):
        text = value.strip()
        if not (text.isdigit() and len(text) <= 6):  # digits only, and never a 5,000-digit int() call
            raise bad
        value = int(text)
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):  # 1e400 is inf; int(inf) would overflow
            raise bad
        value = int(value)
    if not 1 <= value <= 1000:
        raise bad
    return value


def _too_many(n: int, settings: Settings) -> BadRequestError:
    return BadRequestError(f"{n} images in one request; the limit is {settings.max_images_per_request}.",
                           hint="split the images over several requests")


async def read_multipart(request, settings: Settings) -> tuple[list[Upload], int | None]:
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    try:
        form = await request.form(max_files=settings.max_images_per_request, max_fields=16,
                                  max_part_size=MAX_FIELD_BYTES)
    except HTTPException as exc:
        detail = str(exc.detail)
        if "maximum size" in detail:
            raise PayloadTooLargeError(f"a multipart text field is over the {MAX_FIELD_BYTES:,}-byte limit "
                                       "for non-file fields.",
                                       hint="send images as file parts (curl -F image=@photo.jpg)") from None
        if "Too many files" in detail:
            raise _too_many(settings.max_images_per_request + 1, settings) from None
        raise BadRequestError(f"the multipart body cannot be parsed: {detail}") from None
    try:
        uploads: list[Upload] = []
        top_k = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads.append(Upload(await value.read(), value.filename or key))
            elif key == "top_k":
                top_k = _parse_top_k(value)
            elif key in ("image", "images"):
                raise BadRequestError(f"form field {key!r} is text, not a file upload.",
                                      hint=f"with curl, put @ before the path: -F {key}=@photo.jpg")
            elif key not in _TEXT_FIELDS:
                raise BadRequestError(f"unexpected form field {key!r}; expected file parts and optionally top_k.")
    finally:
        await form.close()
    if not uploads:
        raise BadRequestError("the multipart body holds no file part.",
                              hint="send the image as a file: curl -F image=@photo.jpg URL")
    return uploads, top_k


def _url_refused(what: str) -> UrlNotAllowedError:
    return UrlNotAllowedError(f"{what} is a URL; this service never fetches URLs.",
                              hint="download the image yourself and send its bytes (upload, raw body, or base64)")


def _decode_b64(value: object, index: int) -> bytes:
    if not isinstance(value, str):
        raise BadRequestError(f"images[{index}] must be a base64 string, got {type(value).__name__}.")
    text = value.strip()
    if text.lower().startswith(_URL_PREFIXES):
        raise _url_refused(f"images[{index}]")
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or ";base64" not in header:
            raise BadRequestError(f"images[{index}] is a data URL without base64 data.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"images[{index}] is not valid base64.",
                              hint="encode the file bytes with standard base64 (RFC 4648)") from None


def parse_json(body: bytes) -> Any:
    """JSON from an untrusted body; every way it can fail is a 400, never a 500.

    ``json.loads`` raises more than ``JSONDecodeError``: RecursionError on deep
    nesting (``[[[[...`` 100,000 levels), ValueError on an integer of more than
    4,300 digits, UnicodeDecodeError on bytes that are not UTF-8.

    Raises:
        BadRequestError: the body is not JSON this service can read.
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise BadRequestError("the JSON body is nested too deeply.",
                              hint="send a flat object such as {\"images\": [\"<base64>\"]}") from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the JSON body cannot be parsed ({exc}).") from None
    except (ValueError, UnicodeDecodeError) as exc:  # e.g. an integer too long to convert
        raise BadRequestError(f"the JSON body cannot be read ({str(exc)[:160]}).") from None


async def read_json_object(request) -> dict[str, Any]:
    """The request's body as a JSON object (routes that take JSON settings, not images).

    Read by the route itself, after its dependencies: API keys are checked
    before a byte of the body is parsed.

    Raises:
        BadRequestError: not JSON, or not an object.
    """
    doc = parse_json(await request.body())
    if not isinstance(doc, dict):
        raise BadRequestError(f"expected a JSON object, got {type(doc).__name__}.")
    return doc


async def read_json(request, settings: Settings) -> tuple[list[Upload], int | None]:
    doc = parse_json(await request.body())
    if not isinstance(doc, dict):
        raise BadRequestError('expected a JSON object like {"images": ["<base64>"]}.')
    unknown = set(doc) - {"image", "images", "top_k"}
    if unknown:
        raise BadRequestError(f"unexpected JSON keys {sorted(unknown)}; expected image or images, and top_k.")
    if ("image" in doc) == ("images" in doc):
        raise BadRequestError('the JSON body needs exactly one of "image" (a base64 string) or "images" (a list).')
    items = [doc["image"]] if "image" in doc else doc["images"]
    if not isinstance(items, list) or not items:
        raise BadRequestError('"images" must be a non-empty list of base64 strings.')
    if len(items) > settings.max_images_per_request:
        raise _too_many(len(items), settings)
    return [Upload(_decode_b64(v, i), f"images[{i}]" if len(items) > 1 else None)
            for i, v in enumerate(items)], _parse_top_k(doc.get("top_k"))


async def read_images(request, settings: Settings) -> tuple[list[Upload], int | None]:
    """The request's images (bytes, never decoded here) and the ``top_k`` the body asked for.

    Raises:
        BadRequestError: malformed body, no image, a URL instead of bytes, too many images.
        PayloadTooLargeError: body or a text field over its cap.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await read_multipart(request, settings)
    if ctype == "application/json" or ctype.endswith("+json"):
        return await read_json(request, settings)
    body = await request.body()
    if not body:
        raise BadRequestError("the request body is empty; expected image bytes.",
                              hint="e.g. curl -F image=@photo.jpg URL, or --data-binary @photo.jpg "
                                   "-H 'Content-Type: image/jpeg'")
    if len(body) < 4096 and body.lstrip().lower().startswith(tuple(p.encode() for p in _URL_PREFIXES)):
        raise _url_refused("the request body")
    if ctype == "application/x-www-form-urlencoded" and sniff_format(body[:16]) is None:
        # curl -d/--data-binary sends this type; image bytes are fine, form fields are a mistake
        raise BadRequestError("the body is a URL-encoded form, not image bytes.",
                              hint="upload the file with curl -F image=@photo.jpg, or send raw bytes with "
                                   "--data-binary @photo.jpg -H 'Content-Type: image/jpeg'")
    return [Upload(body, None)], None
