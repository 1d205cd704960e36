"""Collections on a real SQLite file: enroll, identify, delete (hard), export/import, index freshness."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from recog.errors import ConflictError, InvalidInputError, MultipleFacesError, NoFaceError, NotFoundError
from recog.faces import FaceRecognizer, FaceStore


@pytest.fixture
def fr(tmp_path, analyzer):
    with FaceRecognizer(tmp_path / "faces.db", analyzer=analyzer) as rec:
        yield rec


def test_store_pragmas_and_schema(tmp_path):
    with FaceStore(tmp_path / "s.db") as store:
        conn = store.db.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert store.integrity_check() == "ok"


def test_enroll_folder_reports_instead_of_guessing(fr, staff):
    report = fr.enroll_folder(staff, collection="office")
    assert report.people == ["Eileen Collins", "Grace Hopper"]
    assert len(report.enrolled) == 3
    codes = {s.source.rsplit("/", 1)[-1]: s.code for s in report.skipped}
    assert codes == {"coffee.jpg": "no_face", "full.jpg": "multiple_faces", "broken.jpg": "corrupt_image"}
    info = fr.collection("office")
    assert (info.people, info.faces, info.threshold, info.store_images) == (2, 3, 0.6, False)
    again = fr.enroll_folder(staff, collection="office")  # a rerun (after a crash) adds nothing twice
    assert not again.enrolled and {s.code for s in again.skipped} >= {"already_enrolled"}
    assert fr.collection("office").faces == 3


def test_identify_then_delete_then_unknown(fr, staff, face_photos):
    fr.enroll_folder(staff, collection="office")
    result = fr.identify(face_photos["hopper_flip"], collection="office", top_k=2)
    assert len(result) == 1 and result[0].person == "Grace Hopper"
    assert result[0].matches[0].distance <= 0.6
    eileen = fr.identify(face_photos["astronaut_flip"], collection="office")
    assert eileen[0].person == "Eileen Collins"
    assert len(fr.identify(face_photos["coffee"], collection="office")) == 0

    stored = fr.store.snapshot("office")
    hopper_vectors = stored.vectors[[i for i, n in enumerate(np.repeat(
        stored.person_names, np.diff(np.r_[stored.person_starts, len(stored.vectors)]))) if n == "Grace Hopper"]]
    assert fr.delete_person("office", "Grace Hopper") == 2
    gone = fr.identify(face_photos["hopper_flip"], collection="office", top_k=2)
    assert gone[0].unknown and gone[0].person is None and gone[0].to_dict()["person"] is None
    assert all(m.person != "Grace Hopper" for m in gone[0].matches)
    # hard delete: the vectors' bytes are in neither the database file nor its WAL
    raw = b"".join(p.read_bytes() for p in fr.store.path.parent.glob("faces.db*"))
    for v in hopper_vectors:
        assert v.tobytes() not in raw
    with sqlite3.connect(fr.store.path) as conn:
        assert conn.execute("SELECT count(*) FROM people WHERE name='Grace Hopper'").fetchone()[0] == 0
    with pytest.raises(NotFoundError):
        fr.delete_person("office", "Grace Hopper")


def test_top_k_and_per_collection_threshold(fr, face_photos, embedded):
    fr.create_collection("strict", threshold=0.05)
    fr.enroll(face_photos["hopper"], person="Grace Hopper", collection="strict")
    fr.enroll(face_photos["astronaut_face"], person="Eileen Collins", collection="strict")
    r = fr.identify(face_photos["hopper_flip"], collection="strict", top_k=2)
    assert r.threshold == 0.05 and r[0].unknown and 0 < r[0].nearest_distance < 0.6
    loose = fr.identify(face_photos["hopper_flip"], collection="strict", top_k=2, threshold=2.0)
    assert [m.person for m in loose[0].matches] == ["Grace Hopper", "Eileen Collins"]
    assert loose[0].matches[0].distance < loose[0].matches[1].distance
    fr.store.update_collection("strict", threshold=0.6)
    assert fr.identify(face_photos["hopper_flip"], collection="strict")[0].person == "Grace Hopper"
    assert fr.verify(face_photos["hopper"], face_photos["hopper_flip"], collection="strict").threshold == 0.6


def test_single_image_enroll_needs_exactly_one_face(fr, face_photos):
    with pytest.raises(NoFaceError):
        fr.enroll(face_photos["rocket"], person="Nobody", collection="c")
    with pytest.raises(MultipleFacesError):
        fr.enroll(face_photos["astronaut"], person="Eileen Collins", collection="c")
    assert fr.collection("c").faces == 0


def test_delete_face_and_collection(fr, staff, face_photos):
    report = fr.enroll_folder(staff, collection="office")
    hopper_ids = [e.face_id for e in report.enrolled if e.person == "Grace Hopper"]
    assert fr.delete_face("office", hopper_ids[0]) == "Grace Hopper"
    assert fr.identify(face_photos["hopper_flip"], collection="office")[0].person == "Grace Hopper"  # one left
    fr.delete_face("office", hopper_ids[1])
    assert [p.name for p in fr.people("office")] == ["Eileen Collins"]  # no faces left: person gone
    with pytest.raises(NotFoundError):
        fr.delete_face("office", hopper_ids[1])
    assert fr.delete_collection("office") == 1
    with pytest.raises(NotFoundError, match="office"):
        fr.identify(face_photos["hopper_flip"], collection="office")
    assert fr.store.integrity_check() == "ok"


def test_index_follows_writes_from_another_process(tmp_path, analyzer, staff, face_photos):
    db = tmp_path / "shared.db"
    with FaceRecognizer(db, analyzer=analyzer) as a, FaceRecognizer(db, analyzer=analyzer) as b:
        a.enroll_folder(staff, collection="office")
        assert a.identify(face_photos["hopper_flip"], collection="office")[0].person == "Grace Hopper"
        builds = a.indexes.builds
        a.identify(face_photos["hopper_crop"], collection="office")
        assert a.indexes.builds == builds  # unchanged store: the index is reused
        b.delete_person("office", "Grace Hopper")  # a's in-memory index now disagrees with the store
        assert a.identify(face_photos["hopper_flip"], collection="office")[0].unknown
        assert a.indexes.builds == builds + 1
        b.enroll(face_photos["hopper_crop"], person="Grace Hopper", collection="office")
        assert a.identify(face_photos["hopper_flip"], collection="office")[0].person == "Grace Hopper"


def test_images_stored_only_when_the_collection_opts_in(fr, face_photos):
    fr.enroll(face_photos["hopper"], person="Grace Hopper", collection="private")
    fr.create_collection("with-crops", store_images=True)
    done = fr.enroll(face_photos["hopper"], person="Grace Hopper", collection="with-crops")
    with sqlite3.connect(fr.store.path) as conn:
        rows = dict(conn.execute("SELECT c.name, count(f.image) FROM faces f JOIN collections c "
                                 "ON c.id=f.collection_id GROUP BY c.name").fetchall())
    assert rows == {"private": 0, "with-crops": 1}
    crop = fr.store.face_image("with-crops", done.face_id)
    assert crop[:3] == b"\xff\xd8\xff"


def test_export_import_roundtrip(fr, staff, face_photos, tmp_path):
    fr.enroll_folder(staff, collection="office")
    doc = json.loads(json.dumps(fr.export_collection("office")))
    assert doc["format"] == "recog.faces.collection" and len(doc["people"]) == 2
    with FaceRecognizer(tmp_path / "other.db", analyzer=fr.analyzer) as other:
        info = other.import_collection(doc)
        assert (info.name, info.people, info.faces) == ("office", 2, 3)
        a = fr.identify(face_photos["hopper_flip"], collection="office")[0]
        b = other.identify(face_photos["hopper_flip"], collection="office")[0]
        assert a.person == b.person == "Grace Hopper" and a.matches[0].distance == pytest.approx(b.matches[0].distance)
        with pytest.raises(ConflictError):
            other.import_collection(doc)
        assert other.import_collection(doc, name="office-copy").faces == 3
        bad = dict(doc, collection=dict(doc["collection"], embedder="some-other-model"))
        with pytest.raises(InvalidInputError, match="embedder|embeddings"):
            other.import_collection(bad, name="x")
        broken = dict(doc, people=[{"name": "A", "faces": [{"embedding": "AAAA"}]}])
        with pytest.raises(InvalidInputError):
            other.import_collection(broken, name="y")
        with pytest.raises(NotFoundError):
            other.collection("y")  # nothing half-imported


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x:identify", "-dash-first"])
def test_collection_names_are_url_safe(fr, name):
    with pytest.raises(InvalidInputError):
        fr.create_collection(name)


def test_person_names_are_checked(fr, random_gallery):
    fr.create_collection("c")
    for bad in ("", " padded", "a/b", "tab\there"):
        with pytest.raises(InvalidInputError):
            fr.store.add_faces("c", bad, random_gallery[1][:1])
    with pytest.raises(InvalidInputError):
        fr.store.add_faces("c", "Ada", np.zeros((1, 64)))
