"""Stand-ins for the decode jobs the service sends to its decode processes (picklable by reference).

Bytes that start with ``SLOW`` sleep for a minute, as a decode bomb would work;
``CRASH`` ends the worker process, as a decoder segfault would; anything else is
decoded for real.
"""

from __future__ import annotations

import os
import time

from recog.serve import decoding


def _trap(data: bytes) -> None:
    if data.startswith(b"SLOW"):
        time.sleep(60)
    if data.startswith(b"CRASH"):
        os._exit(70)


def preprocess_image(data: bytes, *args):
    _trap(data)
    return decoding.preprocess_image(data, *args)


def check_image(data: bytes, *args):
    _trap(data)
    return decoding.check_image(data, *args)
