"""The safe image loader: formats, modes, orientation, and refusals."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from recog.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError
from recog.io import load_image, sniff_format


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR is rewritten to claim width x height (CRC fixed)."""
    data = bytearray(_encode(Image.new("RGB", (4, 4)), "PNG"))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(mode):
    arr = (np.arange(32 * 32) % 256).reshape(32, 32).astype(np.uint8)
    if mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 257)
        assert img.mode == "I;16"
    else:
        img = Image.fromarray(arr, "L").convert(mode)
    fmt = "TIFF" if mode in ("I", "F") else "PNG"
    if mode == "CMYK":
        fmt = "JPEG"
    out = load_image(_encode(img, fmt))
    assert out.mode == "RGB" and out.size == (32, 32)
    if mode in ("L", "I;16"):
        np.testing.assert_allclose(np.asarray(out)[..., 0], arr, atol=1)


def test_alpha_composited_on_white():
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert np.asarray(load_image(_encode(img, "PNG")))[0, 0].tolist() == [255, 255, 255]


def test_first_frame_of_animation():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    r, g, b = np.asarray(load_image(data))[5, 5]
    assert r > 200 and b < 50


def test_exif_orientation_applied(photos):
    img = Image.open(photos["chelsea"])
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = _encode(img, "JPEG", exif=exif.tobytes())
    out = load_image(data)
    assert out.size == (img.height, img.width)


@pytest.mark.parametrize("payload, expected", [
    (b"hello, this is text", "plain text"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
    (b"%PDF-1.4 ...", "PDF"),
])
def test_non_images_refused_by_magic_bytes(payload, expected):
    with pytest.raises(UnsupportedFormatError, match=expected):
        load_image(payload)


def test_empty_and_truncated(photos):
    with pytest.raises(CorruptImageError, match="empty"):
        load_image(b"")
    data = photos["astronaut"].read_bytes()
    with pytest.raises(CorruptImageError, match="truncated|decode"):
        load_image(data[: len(data) // 3])


def test_decompression_bomb_refused_before_decoding():
    data = _png_claiming(50_000, 50_000)
    assert sniff_format(data) == "png"
    with pytest.raises(ImageTooLargeError, match="pixel cap"):
        load_image(data)


def test_byte_cap(photos):
    with pytest.raises(ImageTooLargeError):
        load_image(photos["astronaut"], max_bytes=1000)


def test_reduced_jpeg_decode_keeps_orientation_and_size(photos):
    full = load_image(photos["astronaut"])
    small = load_image(photos["astronaut"], reduce_to=(100, 100))
    assert small.width >= 100 and small.width <= full.width // 2


def test_array_and_pil_inputs():
    arr = np.zeros((5, 6, 3), np.uint8)
    assert load_image(arr).size == (6, 5)
    assert load_image(Image.new("L", (3, 2))).mode == "RGB"
    with pytest.raises(UnsupportedFormatError):
        load_image(np.zeros((5, 6), np.float32))
