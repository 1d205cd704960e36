"""Decode untrusted image bytes into RGB ``PIL.Image`` objects.

The checks, in order: the bytes are not empty; the leading magic bytes are one
of :data:`ALLOWED_FORMATS`; the size declared in the header is under the pixel
cap (so decompression bombs are refused before any pixel is decoded); the
decode completes (truncated files are refused, never half-loaded); the first
frame of an animation is used; EXIF orientation is applied; every mode (L, LA,
P, RGBA, CMYK, I;16, I, F) is converted to 8-bit RGB (16-bit grey, and 32-bit
values outside 0..255, through DICOM's window over the image's own min..max).

The work of a decode is bounded before it starts, not only its output size:

- only the first frame is ever read: the frame count is never asked for,
  because counting walks every IFD of a TIFF (a 9 MB file can hold 90,000
  pages) or every frame of a GIF;
- a JPEG with more than :data:`MAX_JPEG_SCANS` scans is refused: each scan of
  a progressive JPEG makes the decoder pass over the whole coefficient buffer,
  so a 20 KB file of 2,000 empty scans over 7000x7000 pixels costs tens of
  seconds. The scans are counted by walking the marker segments (cheap, no
  decoding).
"""

from __future__ import annotations

import io
import os
from typing import IO, Union

import numpy as np
from PIL import Image, ImageOps

from recog.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError
from recog.io.source import read_bytes

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray]

#: Default cap on decoded pixels (width x height): 50 megapixels.
DEFAULT_MAX_PIXELS = 50_000_000

#: Most scans accepted in one JPEG. Baseline JPEGs have 1 (or one per
#: component, at most 4); libjpeg's standard progressive script writes 10 for
#: colour and 6 for grey, and optimising encoders (mozjpeg, jpegtran) stay
#: well under 64. 100 keeps every real encoder's output while bounding the
#: decode of a 50-megapixel image to about a second. Pillow drives libjpeg
#: with no scan limit at all, and the limits libjpeg-turbo offers as options
#: (500 in the TurboJPEG API, around 1000 elsewhere) still allow tens of
#: seconds of work on such an image.
MAX_JPEG_SCANS = 100

#: Formats accepted, by the name :func:`sniff_format` returns.
ALLOWED_FORMATS = ("jpeg", "png", "gif", "bmp", "webp", "tiff")

#: File extensions treated as images when scanning folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".dcm")

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def sniff_format(head: bytes) -> str | None:
    """Name of the image format from the first bytes, or None if not allowed.

    Example:
        >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n....")
        'png'
    """
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _describe(head: bytes) -> str:
    text = head[:64].lstrip()
    if text.startswith(b"<?xml") or text.startswith(b"<svg") or b"<svg" in head[:256]:
        return "an SVG/XML document"
    if text[:1] in (b"{", b"[") or text.startswith(b"<"):
        return "a text document"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        return "plain text"
    return f"unknown bytes starting {head[:8].hex(' ')}"


# Markers without a length field: TEM, RST0-7, SOI.
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD9)))


def count_jpeg_scans(data: bytes, limit: int = MAX_JPEG_SCANS) -> int:
    """Start-of-scan (SOS) segments in the first image of a JPEG, counted up to ``limit + 1``.

    Walks the marker segments by their lengths (so bytes inside APP segments,
    such as an EXIF thumbnail, are never mistaken for markers) and skips each
    scan's entropy-coded data with one vectorised search (a 6 MB photo takes a
    few milliseconds). Stops at the first EOI (an MPO's later images are never
    decoded), at ``limit + 1`` scans, or where the structure is broken (the
    decoder then reports the damage).

    Example:
        >>> count_jpeg_scans(open("photo.jpg", "rb").read())      # doctest: +SKIP
        1
    """
    n, pos, size = 0, 2, len(data)
    candidates = None
    while pos + 1 < size and n <= limit:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:                      # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:                      # EOI
            break
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > size:
            break
        pos += 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if marker == 0xDA:                      # SOS: skip its entropy-coded data
            n += 1
            if candidates is None:
                candidates = _marker_positions(data)
            i = int(np.searchsorted(candidates, pos))
            if i == len(candidates):
                break
            pos = int(candidates[i])
    return n


def _marker_positions(data: bytes) -> np.ndarray:
    """Sorted offsets of every 0xFF that starts a marker as entropy-coded data reads it.

    Inside a scan 0xFF is followed by a stuffed 0x00, a restart marker
    (RST0-7) or a fill byte 0xFF; anything else begins the next segment.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    ff = np.flatnonzero(arr[:-1] == 0xFF)
    nxt = arr[ff + 1]
    real = (nxt != 0x00) & (nxt != 0xFF) & ((nxt < 0xD0) | (nxt > 0xD7))
    return ff[real]


def _check_jpeg_scans(data: bytes, name: str) -> None:
    scans = count_jpeg_scans(data, MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        raise CorruptImageError(
            f"{name}: the JPEG has more than {MAX_JPEG_SCANS} scans (more than any encoder writes; a "
            "progressive JPEG normally has about 10); each scan re-walks the whole image, so it was refused "
            "before decoding.",
            hint="re-encode the image (a baseline or standard progressive JPEG, or PNG)")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; alpha is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (arr.size and (arr.max() > 255 or arr.min() < 0)):
            # DICOM's path without a header window (the image's min..max), so a 12-bit scan saved as a
            # 16-bit PNG/TIFF keeps its contrast instead of landing in the bottom 16 grey levels
            from recog.io.dicom import auto_window, window_to_uint8

            gray = window_to_uint8(arr, *auto_window(arr))
        else:
            gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([gray] * 3, axis=-1), "RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int | None = None,
               reduce_to: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image safely into an RGB ``PIL.Image``.

    Args:
        source: a path, raw bytes, a binary file object, a PIL image or an
            ``HxWx3`` uint8 RGB array.
        max_pixels: largest accepted width x height, checked from the header
            before decoding.
        max_bytes: largest accepted encoded size, or None for no cap.
        reduce_to: (width, height) the caller will resize to; JPEGs are then
            decoded at the smallest power-of-two reduction still at least this
            large (``PIL.Image.draft``), which is several times faster for big
            photos. The result is not exactly this size.

    Returns:
        An RGB image, EXIF orientation applied, first frame of animations.

    Raises:
        UnsupportedFormatError: not an allowed image format (by magic bytes).
        CorruptImageError: empty, truncated or undecodable.
        ImageTooLargeError: above the pixel or byte cap.

    Example:
        >>> img = load_image("photo.jpg")          # doctest: +SKIP
        >>> img.mode
        'RGB'
    """
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels, "<image>")
        return _to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3:
            raise UnsupportedFormatError(
                f"expected an HxWx3 uint8 RGB array, got shape {source.shape} dtype {source.dtype}.")
        _check_pixels((source.shape[1], source.shape[0]), max_pixels, "<array>")
        return Image.fromarray(source, "RGB")

    data, name = read_bytes(source, max_bytes)
    if not data:
        raise CorruptImageError(f"{name}: the file is empty (0 bytes).", hint="re-export or re-download the image")
    if data[128:132] == b"DICM":    # DICOM Part 10 (its preamble may itself look like a TIFF): recog.io.dicom
        from recog.io.dicom import decode_dicom

        return decode_dicom(data, name, max_pixels=max_pixels)
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise UnsupportedFormatError(
            f"{name}: expected an image in one of {', '.join(ALLOWED_FORMATS)}, got {_describe(data[:256])}.",
            hint="convert the file to JPEG or PNG")
    if fmt == "jpeg":
        _check_jpeg_scans(data, name)
    try:
        # Image.open leaves the first frame current; the frame count is never asked for
        # (n_frames walks every page of a TIFF / every frame of a GIF: unbounded work).
        img = Image.open(io.BytesIO(data))
        _check_pixels(img.size, max_pixels, name)
        if reduce_to is not None and fmt == "jpeg":
            img.draft("RGB", reduce_to)
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except (ImageTooLargeError,):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: the image is over the {max_pixels:,}-pixel cap ({exc}).",
                                 hint="resize the image or raise the pixel cap") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise CorruptImageError(f"{name}: cannot decode {fmt.upper()} data ({exc}).",
                                hint="the file is truncated or damaged; re-export it") from exc


def image_size(source: ImageSource) -> tuple[int, int]:
    """(width, height) as declared by the header, without decoding pixels."""
    data, name = read_bytes(source, None)
    if data[128:132] == b"DICM":
        from recog.io.dicom import dicom_size

        return dicom_size(data, name)
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(f"{name}: cannot read the image header ({exc}).") from exc


def _check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise CorruptImageError(f"{name}: the header declares an empty image ({w}x{h}).")
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {w}x{h} = {w * h:,} pixels is over the {max_pixels:,}-pixel cap.",
            hint="resize the image or raise the pixel cap (max_pixels / --max-pixels)")
