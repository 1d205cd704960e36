"""keep_freed_memory: freed large blocks are reused instead of mapped and faulted in again."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

CHILD = r"""
import ctypes, json, resource
from recog.runtime.allocator import keep_freed_memory
tuned = keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
SIZE = 64 << 20  # a CPU activation tensor's order of size

def use_and_free():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)  # written, as a layer's output is
    libc.free(block)

use_and_free()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    use_and_free()
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

def _run(mode: str) -> dict:
    env = {**os.environ, "RECOG_MALLOC": mode}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_blocks_are_reused_not_faulted_in_again():
    default, kept = _run("default"), _run("keep")
    assert default["tuned"] is False and kept["tuned"] is True
    # 20 x 64 MB = 16,384 pages of 4 KB each time with glibc's defaults; none once the block is kept
    assert default["faults"] > 20 * 8000
    assert kept["faults"] < default["faults"] / 20
