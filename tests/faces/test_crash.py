"""A process killed (SIGKILL) during enrollment leaves a store that opens, is sound, and can be resumed."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from recog.faces import FaceRecognizer, FaceStore

ENROLL = """
import sys
from recog.faces import FaceRecognizer
FaceRecognizer(sys.argv[1]).enroll_folder(sys.argv[2], collection="office")
"""


def _faces_stored(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as conn:
            return conn.execute("SELECT count(*) FROM faces").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet, or a writer holds the lock
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_enrollment_leaves_a_sound_store(tmp_path, face_photos, analyzer):
    staff = tmp_path / "staff"
    variants = ["hopper", "hopper_flip", "hopper_crop", "hopper_bright", "astronaut_face", "astronaut_flip",
                "astronaut_dark"]
    for i in range(24):  # one image per person: every image is a stored face
        person = staff / f"person-{i:02d}"
        person.mkdir(parents=True)
        shutil.copy(face_photos[variants[i % len(variants)]], person / "1.jpg")
    db = tmp_path / "faces.db"
    proc = subprocess.Popen([sys.executable, "-c", ENROLL, str(db), str(staff)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _faces_stored(db) < 2:
            assert proc.poll() is None, f"enrollment ended before it could be killed: {proc.stderr.read()!r}"
            assert time.monotonic() < deadline, "no face was stored within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with FaceStore(db) as store:
        assert store.integrity_check() == "ok"
        stored = store.collection("office").faces
        assert 2 <= stored < 24  # killed mid-way
        assert store.db.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        snap = store.snapshot("office")
        assert len(snap.vectors) == stored and len(snap.person_names) == stored
    with FaceRecognizer(db, analyzer=analyzer) as fr:  # the rerun picks up where it stopped
        report = fr.enroll_folder(staff, collection="office")
        assert len(report.enrolled) == 24 - stored
        assert {s.code for s in report.skipped} == {"already_enrolled"}
        assert fr.collection("office").faces == 24
        assert fr.store.integrity_check() == "ok"
