"""Decode dataset images into model-sized uint8 arrays, reporting bad files.

Bad files (unreadable, truncated, zero-byte, not an image) are never fatal
mid-run: they are collected with their reason and skipped, or, with
``strict=True``, the whole run stops before training starts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

from recog.data.dataset import Sample
from recog.errors import DatasetError, ImageError
from recog.io import load_image
from recog.types import Preprocessing


def decode_one(path, prep: Preprocessing) -> np.ndarray:
    """One file → ``(H, W, 3)`` uint8 at the model's input size."""
    from recog.data.transforms import resize_to_input

    h, w = prep.size
    return resize_to_input(load_image(path, reduce_to=(w, h)), prep)


def decode_samples(samples: Sequence[Sample], prep: Preprocessing, *, threads: int = 4, strict: bool = False,
                   progress: Callable[[int], None] | None = None, pool: ThreadPoolExecutor | None = None
                   ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode every sample (in a thread pool: Pillow releases the GIL).

    Args:
        pool: an executor to reuse (else one of ``threads`` workers is made).

    Returns:
        ``(images, kept, failures)``: images ``(M, H, W, 3)`` uint8 for the
        ``kept`` sample indices, and ``(path, reason)`` for each skipped file.

    Raises:
        DatasetError: with ``strict=True`` when any file fails, listing them.
    """
    h, w = prep.size
    out = np.empty((len(samples), h, w, 3), dtype=np.uint8)
    ok = np.zeros(len(samples), dtype=bool)
    failures: list[tuple[str, str]] = []

    def work(i: int) -> str | None:
        try:
            out[i] = decode_one(samples[i].path, prep)
            return None
        except ImageError as exc:
            return str(exc)

    own = pool is None
    pool = pool or ThreadPoolExecutor(max_workers=max(1, threads))
    try:
        for i, err in enumerate(pool.map(work, range(len(samples)), chunksize=16)):
            if err is None:
                ok[i] = True
            else:
                failures.append((str(samples[i].path), err))
            if progress:
                progress(1)
    finally:
        if own:
            pool.shutdown()
    if failures and strict:
        raise unreadable_error(failures)
    kept = np.flatnonzero(ok).tolist()
    return (out if not failures else out[ok]), kept, failures  # no copy of the whole set when all decoded


def unreadable_error(failures: Sequence[tuple[str, str]]) -> DatasetError:
    """The ``--strict`` refusal, listing up to 20 ``(path, reason)`` pairs."""
    listing = "\n".join(f"  {p}: {r}" for p, r in failures[:20])
    more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
    return DatasetError(f"{len(failures)} unreadable file(s) (--strict):\n{listing}{more}",
                        hint="remove or fix them, or drop --strict to skip them")
