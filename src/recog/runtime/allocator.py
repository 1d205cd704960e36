"""Keep freed tensor memory in the process: glibc's allocator tuned for PyTorch on a CPU.

By default glibc serves a large block (past its dynamic mmap threshold, at most
32 MB) with a fresh ``mmap`` and gives it back with ``munmap`` when it is freed,
and trims the heap's free top back to the kernel past 128 KB. A forward pass on
a CPU allocates activations of tens of megabytes per layer and frees them a
moment later, so every batch maps new pages that the kernel faults in and
zeroes: on EfficientNet-Lite0 at 224 px, batch 32, two cores, the process spent
more time in the kernel (page faults) than computing. Raising both thresholds
to 1 GiB keeps those blocks for the next layer and the next batch; the same
thing PyTorch's CPU tuning guide gets from jemalloc or tcmalloc, with no
library to install. Measured (``benchmarks/allocator.py``): see
docs/fast-inference.md.

The cost: up to 1 GiB of freed memory stays with the process instead of
returning to the system, and its resident size stays near its peak.
``RECOG_MALLOC=default`` leaves glibc as it is. On other C libraries (musl,
macOS, Windows) :func:`keep_freed_memory` does nothing.

The ``recog`` command calls it at start-up, and so do :func:`recog.train` and
:func:`recog.load` (the first time): a program that uses recog gets the same
speed without asking, and ``RECOG_MALLOC=default`` is the one switch for both.
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
LIMIT = 1 << 30
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds to :data:`LIMIT` (once); True when the allocator was tuned."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("RECOG_MALLOC", "").lower() == "default":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only: mallopt elsewhere takes other parameters, or none
    except (OSError, AttributeError):
        return False
    _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, LIMIT)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, LIMIT))
    return _done
