"""Which files of a folder are images, and thumbnails / contact sheets of them.

:func:`list_images` takes every file with an image extension, and also a file
whose first bytes are an allowed image format under another extension (a JPEG
saved as ``.svg``): duplicates hide behind wrong extensions. Decoding always
goes through the safe loader (:func:`recog.io.load_image`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from recog.errors import DatasetError


def list_images(folder: str | Path, *, sniff: bool = True) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden ones skipped), sorted.

    Raises:
        DatasetError: not a folder, or no image in it.
    """
    from recog.io import IMAGE_EXTENSIONS, sniff_format

    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root.name or root}: expected a folder of images; it is not a folder.")
    out = []
    for f in sorted(root.rglob("*")):
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(root).parts):
            continue
        if f.suffix.lower() in IMAGE_EXTENSIONS:
            out.append(f)
        elif sniff:
            try:
                with open(f, "rb") as fh:
                    head = fh.read(32)
            except OSError:
                continue
            if sniff_format(head) is not None:
                out.append(f)
    if not out:
        raise DatasetError(f"{root.name or root}: no image files in this folder.",
                           hint=f"expected files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}")
    return out


def thumbnail(path: str | Path, size: int = 128):
    """A ``size`` x ``size`` RGB thumbnail (letterboxed), or a grey tile with an X if the file does not decode."""
    from PIL import Image, ImageDraw

    from recog.errors import ImageError
    from recog.io import load_image

    tile = Image.new("RGB", (size, size), (235, 235, 235))
    try:
        img = load_image(path, reduce_to=(size, size))
    except ImageError:
        d = ImageDraw.Draw(tile)
        d.line((0, 0, size, size), fill=(200, 60, 60), width=3)
        d.line((0, size, size, 0), fill=(200, 60, 60), width=3)
        return tile
    img.thumbnail((size, size))
    tile.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return tile


def contact_sheet(rows: Sequence[tuple[str, Sequence[tuple[str | Path, str]]]], *, thumb: int = 128,
                  per_row: int = 8, title: str | None = None):
    """A PNG-ready image: one labelled band per row of ``(path, caption)`` thumbnails.

    Args:
        rows: ``(row label, [(image path, caption), ...])``; a row longer than ``per_row`` wraps.
        thumb: thumbnail side in pixels.

    Returns:
        A ``PIL.Image``.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    cap_h, label_h, pad = 14, 18, 6
    bands = []
    for label, items in rows:
        items = list(items)
        lines = max(1, -(-len(items) // per_row))
        bands.append((label, items, lines))
    width = pad + per_row * (thumb + pad)
    height = (label_h if title else 0) + sum(label_h + lines * (thumb + cap_h + pad) for _, _, lines in bands) + pad
    sheet = Image.new("RGB", (width, max(height, 40)), "white")
    draw = ImageDraw.Draw(sheet)
    y = pad
    if title:
        draw.text((pad, y), title, fill=(0, 0, 0), font=font)
        y += label_h
    for label, items, _ in bands:
        draw.text((pad, y), label, fill=(20, 20, 120), font=font)
        y += label_h
        for i, (path, caption) in enumerate(items):
            col, line = i % per_row, i // per_row
            x, yy = pad + col * (thumb + pad), y + line * (thumb + cap_h + pad)
            sheet.paste(thumbnail(path, thumb), (x, yy))
            text = caption if len(caption) <= thumb // 6 else "…" + caption[-(thumb // 6 - 1):]
            draw.text((x, yy + thumb + 1), text, fill=(60, 60, 60), font=font)
        y += (-(-max(1, len(items)) // per_row)) * (thumb + cap_h + pad)
    return sheet
