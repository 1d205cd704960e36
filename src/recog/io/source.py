"""Untrusted image sources (paths, bytes, file objects) read into bytes under a size cap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recog.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError


def read_bytes(source: Any, max_bytes: int | None) -> tuple[bytes, str]:
    """``(bytes, name)`` of a path, bytes-like or file object; refused above ``max_bytes``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise CorruptImageError(f"{name}: no such file.", hint="check the path")
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise ImageTooLargeError(
                f"{name}: {path.stat().st_size} bytes is over the {max_bytes}-byte cap.",
                hint="resize the image or raise the byte cap")
        data = path.read_bytes()
    elif hasattr(source, "read"):
        name = getattr(source, "name", "<stream>")
        data = source.read(-1 if max_bytes is None else max_bytes + 1)
    else:
        raise UnsupportedFormatError(
            f"expected a path, bytes, a file object, a PIL image or an HxWx3 uint8 array; got {type(source).__name__}.")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageTooLargeError(f"{name}: more than {max_bytes} bytes.", hint="resize the image or raise the byte cap")
    return data, str(name)
