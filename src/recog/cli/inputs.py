"""Expand command-line inputs (files, folders, globs) into image paths."""

from __future__ import annotations

import glob
from pathlib import Path

from recog.io import IMAGE_EXTENSIONS


def expand_inputs(items: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files stay as given; folders are searched recursively for image
    extensions; globs are expanded. Returns ``(paths, missing)`` where
    ``missing`` holds ``(input, reason)`` for inputs that matched nothing."""
    paths: list[Path] = []
    missing: list[tuple[str, str]] = []
    for item in items:
        p = Path(item)
        if p.is_file():
            paths.append(p)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                missing.append((item, "folder has no image files"))
            paths.extend(found)
        elif glob.has_magic(item):
            found = sorted(Path(f) for f in glob.glob(item, recursive=True) if Path(f).is_file())
            if not found:
                missing.append((item, "pattern matched no files"))
            paths.extend(found)
        else:
            missing.append((item, "no such file or folder"))
    return paths, missing
