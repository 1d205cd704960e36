"""Decode bombs: files whose header is small but whose decode work is unbounded.

Every bomb is generated in-process (small bytes) and must be handled in well
under a second, while ordinary multi-page TIFFs and progressive JPEGs still
decode.
"""

from __future__ import annotations

import io
import struct
import time

import numpy as np
import pytest
from PIL import Image

from recog.errors import CorruptImageError, ImageTooLargeError
from recog.io import load_image
from recog.io.image import MAX_JPEG_SCANS, count_jpeg_scans


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _tiff_pages(n: int) -> bytes:
    """A little-endian TIFF of ``n`` 1x1 grey pages (one IFD each, all sharing one pixel byte)."""
    entries = [(256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (277, 3, 1), (278, 3, 1), (279, 4, 1)]
    ifd_size = 2 + 12 * len(entries) + 4
    first = 10
    out = bytearray(b"II*\x00" + struct.pack("<I", first) + b"\x80\x00")
    for i in range(n):
        nxt = first + (i + 1) * ifd_size if i + 1 < n else 0
        out += struct.pack("<H", len(entries))
        for tag, typ, val in entries:
            out += struct.pack("<HHIHH", tag, typ, 1, val, 0) if typ == 3 else struct.pack("<HHII", tag, typ, 1, val)
        out += struct.pack("<I", nxt)
    return bytes(out)


def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, bytes) of each segment after SOI; a scan's entropy-coded data stays with its SOS."""
    pos, out = 2, []
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if marker == 0xDA:
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
        out.append((marker, data[pos:end]))
        pos = end
    return out


def _progressive_bomb(size: int, scans: int) -> bytes:
    """A progressive grey JPEG claiming size x size with ``scans`` empty AC scans (a few bytes each)."""
    src = _encode(Image.new("L", (16, 16), 128), "JPEG", progressive=True)
    segs = _jpeg_segments(src)
    out = bytearray(b"\xff\xd8")
    for marker, seg in segs:
        if marker == 0xC2:
            seg = bytearray(seg)
            seg[5:9] = struct.pack(">HH", size, size)
        if marker != 0xDA:
            out += seg
    sos = [seg for marker, seg in segs if marker == 0xDA]
    out += sos[0]                                   # the DC scan, with its data
    ac_header = sos[1][:2 + struct.unpack(">H", sos[1][2:4])[0]]
    out += ac_header * scans                        # header only: no entropy-coded data at all
    return bytes(out + b"\xff\xd9")


def test_tiff_with_thousands_of_pages_decodes_only_the_first_quickly():
    data = _tiff_pages(6000)                        # 680 KB; walking every IFD took ~2 s here
    start = time.perf_counter()
    img = load_image(data)
    elapsed = time.perf_counter() - start
    assert img.size == (1, 1) and img.mode == "RGB"
    assert elapsed < 0.5, f"decoding the first page took {elapsed:.2f} s: every page was walked"


def test_multi_page_tiff_with_a_few_pages_gives_the_first_page():
    pages = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    img = load_image(data)
    assert img.size == (8, 6)
    assert tuple(np.asarray(img)[0, 0]) == (255, 0, 0)


def test_progressive_jpeg_with_too_many_scans_is_refused_before_decoding():
    data = _progressive_bomb(7000, 300)             # 3 KB; ~3 s of libjpeg work at 49 megapixels
    assert len(data) < 5000
    start = time.perf_counter()
    with pytest.raises(CorruptImageError, match=r"more than 100 scans") as info:
        load_image(data)
    assert time.perf_counter() - start < 0.5
    assert not isinstance(info.value, ImageTooLargeError)


def test_scan_count_walks_segments_not_raw_bytes():
    # An SOS marker's bytes inside an APP segment (e.g. an EXIF thumbnail) are not scans of the image.
    jpeg = _encode(Image.new("RGB", (16, 16), (10, 200, 30)), "JPEG", progressive=True)
    app = b"\xff\xda" * (MAX_JPEG_SCANS + 5)
    padded = jpeg[:2] + b"\xff\xe9" + struct.pack(">H", len(app) + 2) + app + jpeg[2:]
    assert count_jpeg_scans(padded) == count_jpeg_scans(jpeg)
    assert 1 < count_jpeg_scans(jpeg) <= 12
    assert load_image(padded).size == (16, 16)
    bomb = _progressive_bomb(64, 2000)
    assert count_jpeg_scans(bomb) == MAX_JPEG_SCANS + 1     # stops counting once over the limit


@pytest.mark.parametrize("mode", ["L", "RGB", "CMYK"])
def test_normal_progressive_jpegs_still_decode(mode):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (48, 64, len(mode)), dtype=np.uint8)
    src = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    for kw in ({"progressive": True}, {"progressive": True, "optimize": True, "quality": 95}, {}):
        data = _encode(src, "JPEG", **kw)
        img = load_image(data)
        assert img.size == (64, 48) and img.mode == "RGB"


def test_pixel_cap_still_refuses_from_the_header():
    data = _progressive_bomb(7000, 3)
    with pytest.raises(ImageTooLargeError, match="pixel cap"):
        load_image(data, max_pixels=1_000_000)
