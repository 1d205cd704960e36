"""The one place batches of untrusted images are decoded: one thread-pool loop, one failure report.

Training, evaluation, prediction, export checks and the dataset audit all
turn many files (or byte strings) into arrays through :func:`decode_many`;
every file the safe loader (:mod:`recog.io`) refuses becomes a
``(source, reason)`` failure instead of an exception, so nothing stops
mid-run. With ``strict=True`` the caller gets one :class:`DatasetError`
listing them all.

Pillow and OpenCV release the GIL while decoding, so threads give real
parallelism here.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from recog.errors import DatasetError, ImageError
from recog.io import load_image
from recog.types import Preprocessing

T = TypeVar("T")
Progress = Callable[[int], None]


@dataclass
class Decoded:
    """What :func:`decode_many` returns.

    Attributes:
        items: the decoded values, in source order, for the sources in ``kept``.
        kept: indices (into the sources) that decoded.
        failures: ``(index, error)`` for every source the safe loader refused.
    """

    items: list[Any] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    failures: list[tuple[int, ImageError]] = field(default_factory=list)

    def report(self, sources: Sequence[Any]) -> list[tuple[str, str]]:
        """``(source, reason)`` per failure: the form every command prints and records."""
        return [(str(sources[i]), str(exc)) for i, exc in self.failures]


def decode_many(sources: Sequence[Any], fn: Callable[[Any], T], *, threads: int = 4,
                pool: Executor | None = None, progress: Progress | None = None) -> Decoded:
    """Apply ``fn`` (decode one source; raises :class:`ImageError` on bad input) to every source.

    A single source runs inline (no pool to start: the common interactive
    call); more run in ``pool``, or in a pool of ``threads`` workers made here.

    Args:
        sources: paths, bytes, PIL images or arrays (whatever ``fn`` takes).
        fn: one source → one decoded value.
        pool: an executor to reuse across calls (e.g. one per epoch).
        progress: called with 1 after each source.

    Example:
        >>> decode_many([1, 2], lambda s: s * 2).items
        [2, 4]
    """
    def guarded(src: Any) -> Any:
        try:
            return fn(src)
        except ImageError as exc:
            return exc

    out = Decoded()
    own = pool is None and len(sources) > 1
    executor = ThreadPoolExecutor(max_workers=max(1, threads)) if own else pool
    mapper = (lambda f, xs: executor.map(f, xs)) if executor is not None and len(sources) > 1 else map
    with (executor if own else contextlib.nullcontext()):
        for i, value in enumerate(mapper(guarded, sources)):
            if isinstance(value, ImageError):
                out.failures.append((i, value))
            else:
                out.kept.append(i)
                out.items.append(value)
            if progress:
                progress(1)
    return out


def decode_to_input(source: Any, prep: Preprocessing, *, max_pixels: int | None = None) -> np.ndarray:
    """One image → ``(H, W, 3)`` uint8 at the model's input size (reduced JPEG decode where possible)."""
    from recog.data.transforms import resize_to_input
    from recog.io import DEFAULT_MAX_PIXELS

    return resize_to_input(load_image(source, max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
                                      reduce_to=decode_size(prep)), prep)


def decode_size(prep: Preprocessing) -> tuple[int, int]:
    """(width, height) a reduced JPEG decode must keep for ``prep``'s resize to lose no detail.

    ``shorter_crop`` first resizes the shorter side to ``size / crop_pct``
    (256 for a 224 crop at 0.875), so the decode must stay at least that large.

    Example:
        >>> decode_size(Preprocessing(size=(224, 224), crop_pct=0.875))
        (256, 256)
    """
    h, w = prep.size
    if prep.resize == "shorter_crop":
        side = int(-(-max(h, w) // prep.crop_pct))
        return side, side
    return w, h


def decode_images(paths: Sequence[Any], prep: Preprocessing, *, threads: int = 4, strict: bool = False,
                  progress: Progress | None = None, pool: Executor | None = None
                  ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode files into one ``(M, H, W, 3)`` uint8 array at the model's input size.

    Returns:
        ``(images, kept, failures)``: images for the ``kept`` indices, and
        ``(path, reason)`` for each skipped file.

    Raises:
        DatasetError: with ``strict=True`` when any file fails, listing them.
    """
    h, w = prep.size
    out = np.empty((len(paths), h, w, 3), dtype=np.uint8)

    def into(i: int) -> int:
        out[i] = decode_to_input(paths[i], prep)
        return i

    done = decode_many(range(len(paths)), into, threads=threads, pool=pool, progress=progress)
    failures = [(str(paths[i]), str(exc)) for i, exc in done.failures]
    if failures and strict:
        raise unreadable_error(failures)
    # no copy of the whole set when every file decoded
    return (out if not failures else out[done.kept]), done.kept, failures


def find_bad_files(paths: Sequence[Any], *, threads: int = 4, progress: Progress | None = None
                   ) -> list[tuple[str, str]]:
    """``(path, reason)`` for every file the safe loader refuses (empty, truncated, not an image, too large...)."""
    return decode_many(paths, lambda p: load_image(p, reduce_to=(64, 64)), threads=threads,
                       progress=progress).report(paths)


def unreadable_error(failures: Sequence[tuple[str, str]]) -> DatasetError:
    """The ``--strict`` refusal, listing up to 20 ``(path, reason)`` pairs."""
    listing = "\n".join(f"  {p}: {r}" for p, r in failures[:20])
    more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
    return DatasetError(f"{len(failures)} unreadable file(s) (--strict):\n{listing}{more}",
                        hint="remove or fix them, or drop --strict to skip them")
