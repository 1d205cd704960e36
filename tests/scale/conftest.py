"""Batch and Ray test inputs: real photographs (scikit-image) as small JPEGs, one corrupt file, a killed job."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


N_PHOTOS = 120


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    """:data:`N_PHOTOS` real photographs at 64 px as JPEGs (four scenes, repeated) plus ``broken.jpg`` (a truncated JPEG)."""
    from PIL import Image
    from skimage import data

    out = tmp_path_factory.mktemp("photos")
    scenes = [Image.fromarray(getattr(data, n)()).resize((64, 64)) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    for i in range(N_PHOTOS):
        scenes[i % 4].rotate(i % 90).save(out / f"img{i:03d}.jpg", quality=85)
    good = (out / "img000.jpg").read_bytes()
    (out / "broken.jpg").write_bytes(good[: len(good) // 3])
    return out


def killed_job(bundle: Path, inputs: list[str], out: Path, *, shard_size: int, min_shards: int = 3,
               timeout_s: float = 120.0) -> int:
    """Run ``recog batch-predict`` in a process and SIGKILL it once ``min_shards`` shards are written.

    Returns the number of shard files present at the kill; fails the test if the job finished first.
    """
    proc = subprocess.Popen([sys.executable, "-m", "recog", "batch-predict", str(bundle), *inputs, "--out", str(out),
                             "--shard-size", str(shard_size), "--top-k", "2", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + timeout_s
    try:
        while len(list(out.glob("part-*.parquet"))) < min_shards:
            if proc.poll() is not None:
                pytest.fail(f"the batch job ended before the kill: {proc.stderr.read().decode()[-500:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {min_shards} shards in {timeout_s} s")
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return len(list(out.glob("part-*.parquet")))


@dataclass(frozen=True)
class KilledJob:
    """A ``recog batch-predict`` job (shards of 2) whose process was SIGKILLed after 3 shards or more."""

    inputs: list[str]
    folder: Path
    shards_at_kill: int

    def copy(self, dest: Path) -> Path:
        """A copy of the killed job's folder to resume (each test resumes its own)."""
        shutil.copytree(self.folder, dest)
        return dest


@pytest.fixture(scope="session")
def killed(tiny_bundle, photo_folder, tmp_path_factory) -> KilledJob:
    """One real kill shared by the local and the Ray resume tests (a process start costs 5-25 s here)."""
    inputs = [str(photo_folder / "img*.jpg"), str(photo_folder / "broken.jpg")]
    folder = tmp_path_factory.mktemp("killed") / "preds"
    at_kill = killed_job(tiny_bundle, inputs, folder, shard_size=2)
    return KilledJob(inputs, folder, at_kill)
