"""DICOM through the one safe loader: real files, windowing, errors, and no patient data anywhere."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="pydicom is not installed")

from typer.testing import CliRunner  # noqa: E402

from recog.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError  # noqa: E402
from recog.io import IMAGE_EXTENSIONS, image_size, load_image  # noqa: E402
from recog.io.dicom import dicom_info, supported_transfer_syntaxes, window_to_uint8  # noqa: E402

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data/dicom")
CANARY = ("CANARYxNAME^SECRET", "CANARYID4711", "19010203")


def pydicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return Path(path)


def shared(name: str) -> Path:
    if not (SHARED / name).is_file():
        pytest.skip(f"{SHARED / name} is absent (the shared DICOM data set)")
    return SHARED / name


@pytest.mark.parametrize("name,size", [
    ("CT_small.dcm", (128, 128)), ("MR_small.dcm", (64, 64)), ("MR_small_RLE.dcm", (64, 64)),
    ("MR_small_jp2klossless.dcm", (64, 64)), ("examples_overlay.dcm", (484, 300)),
    ("ExplVR_BigEnd.dcm", (80, 60)), ("examples_rgb_color.dcm", (320, 240)),
    ("examples_ybr_color.dcm", (320, 240)), ("SC_rgb_jpeg.dcm", (256, 256)),
])
def test_shared_files_decode_to_rgb(name, size):
    img = load_image(shared(name))
    assert img.mode == "RGB" and img.size == size
    assert image_size(shared(name)) == size
    a = np.asarray(img)
    assert a.max() > a.min()                                     # windowed into a visible range


def test_compressed_syntaxes_match_the_raw_pixels():
    raw = np.asarray(load_image(shared("MR_small.dcm")))
    assert np.array_equal(raw, np.asarray(load_image(shared("MR_small_RLE.dcm"))))
    assert np.array_equal(raw, np.asarray(load_image(shared("MR_small_jp2klossless.dcm"))))
    names = set(supported_transfer_syntaxes().values())
    assert {"RLE Lossless", "JPEG Baseline (Process 1)", "JPEG 2000 Image Compression (Lossless Only)"} <= names


def test_truncated_pixel_data_is_a_corrupt_image_naming_the_file():
    with pytest.raises(CorruptImageError, match="MR_truncated.dcm: cannot decode the DICOM pixel data"):
        load_image(shared("MR_truncated.dcm"))


def test_rescale_and_window_follow_the_header():
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    center, width = (float(ds.WindowCenter), float(ds.WindowWidth)) if "WindowCenter" in ds else (40.0, 400.0)
    expected = window_to_uint8(hu, center, width)
    assert np.array_equal(np.asarray(load_image(pydicom_file("CT_small.dcm")))[..., 0], expected)
    assert window_to_uint8(np.array([[-1000.0, 40.0, 1000.0]]), 40, 400).tolist() == [[0, 128, 255]]


def _bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_monochrome1_is_inverted_and_first_frame_only():
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    normal = np.asarray(load_image(_bytes(ds)))
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert np.array_equal(np.asarray(load_image(_bytes(ds))), 255 - normal)
    multi = dicom_info(pydicom_file("examples_ybr_color.dcm"))
    assert multi["frames"] == 30 and multi["photometric"] == "YBR_FULL_422"


def test_errors_pixel_cap_no_pixels_syntax_header():
    ct = pydicom_file("CT_small.dcm")
    with pytest.raises(ImageTooLargeError, match="128x128"):
        load_image(ct, max_pixels=100)
    ds = pydicom.dcmread(ct)
    del ds.PixelData
    with pytest.raises(CorruptImageError, match="no pixel data"):
        load_image(_bytes(ds))
    ds = pydicom.dcmread(ct)
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"      # MPEG2 video
    data = _bytes(ds)
    with pytest.raises(UnsupportedFormatError, match="MPEG2"):
        load_image(data)
    with pytest.raises(CorruptImageError, match="DICOM header"):
        load_image(b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00")
    assert ".dcm" in IMAGE_EXTENSIONS


def _canary(src: Path, dst: Path, *, truncate: bool = False) -> Path:
    ds = pydicom.dcmread(src)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = CANARY
    ds.InstitutionName = "CANARY HOSPITAL"
    data = _bytes(ds)
    dst.write_bytes(data[:-2000] if truncate else data)
    return dst


def _no_canary(text: str | bytes) -> None:
    blob = text if isinstance(text, bytes) else text.encode()
    for c in (*CANARY, "CANARY"):
        assert c.encode() not in blob, f"{c!r} leaked"


def test_no_phi_in_errors_info_anonymize_training_and_predict(tmp_path, caplog):
    from recog.cli.main import app
    from recog.data.decode import find_bad_files

    bad = _canary(pydicom_file("MR_small.dcm"), tmp_path / "bad.dcm", truncate=True)
    with pytest.raises(CorruptImageError) as exc:
        load_image(bad)
    _no_canary(str(exc.value))
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    ds.PatientName = CANARY[0]
    ds.SpecificCharacterSet = "CANARY-CHARSET"       # an invalid value pydicom warns about, quoting it
    with caplog.at_level(logging.DEBUG):
        load_image(_bytes(ds))
    _no_canary(caplog.text)
    _no_canary(repr(find_bad_files([bad])))

    # a small two-class DICOM data set (MR vs CT, noisy copies), one file carrying the canary
    rng = np.random.default_rng(0)
    for label, src in (("mr", pydicom_file("MR_small.dcm")), ("ct", pydicom_file("CT_small.dcm"))):
        (tmp_path / "scans" / label).mkdir(parents=True)
        for i in range(8):
            ds = pydicom.dcmread(src)
            arr = ds.pixel_array.astype(np.int32) + rng.integers(-20, 20, ds.pixel_array.shape)
            ds.PixelData = arr.clip(0, 4000).astype(ds.pixel_array.dtype).tobytes()
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = CANARY
            ds.save_as(tmp_path / "scans" / label / f"{i}.dcm", enforce_file_format=True)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "info", str(tmp_path / "scans"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert {d["modality"] for d in info["dicom"]} == {"MR", "CT"}
    _no_canary(res.output)
    res = runner.invoke(app, ["dicom", "info", str(tmp_path / "scans"), str(bad), "--json"])
    _no_canary(res.output)

    res = runner.invoke(app, ["train", str(tmp_path / "scans"), "--model", "hog-svm", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    _no_canary(res.output)
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            _no_canary(f.read_bytes())
    probe = _canary(pydicom_file("CT_small.dcm"), tmp_path / "probe.dcm")
    res = runner.invoke(app, ["predict", str(tmp_path / "run" / "best"), str(probe), str(bad), "-f", "jsonl"])
    _no_canary(res.output)
    assert json.loads(res.stdout.splitlines()[0])["top"][0]["label"] == "ct"

    res = runner.invoke(app, ["dicom", "anonymize", str(tmp_path / "scans"), str(tmp_path / "anon")])
    assert res.exit_code == 0, res.output
    out = sorted((tmp_path / "anon").rglob("*.dcm"))
    assert len(out) == 16
    for f in out:
        _no_canary(f.read_bytes())
    before, after = pydicom.dcmread(tmp_path / "scans" / "ct" / "0.dcm"), pydicom.dcmread(out[0])
    assert after.PatientIdentityRemoved == "YES" and after.PixelData == before.PixelData
    assert after.SOPInstanceUID != before.SOPInstanceUID
    assert np.array_equal(np.asarray(load_image(out[0])), np.asarray(load_image(tmp_path / "scans" / "ct" / "0.dcm")))
