"""Dataset checks: decode every file once and report the ones that fail, with the reason."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from recog.data.dataset import Sample
from recog.errors import ImageError
from recog.io import load_image


def find_bad_files(samples: Sequence[Sample], *, threads: int = 4,
                   progress: Callable[[int], None] | None = None) -> list[tuple[str, str]]:
    """``(path, reason)`` for every sample the safe loader refuses (empty,
    truncated, not an image, too large...)."""

    def check(s: Sample) -> tuple[str, str] | None:
        try:
            load_image(s.path, reduce_to=(64, 64))
        except ImageError as exc:
            return str(s.path), str(exc)
        return None

    bad = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for res in pool.map(check, samples, chunksize=16):
            if res:
                bad.append(res)
            if progress:
                progress(1)
    return bad
