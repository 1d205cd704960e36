"""16-bit PNG/TIFF keep their range: the DICOM window path (the image's min..max), not a fixed /257."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from recog.io import load_image
from recog.io.dicom import auto_window, window_to_uint8


@pytest.fixture(scope="module")
def twelve_bit() -> np.ndarray:
    """A real photograph (scikit-image's camera, 512x512) as 12-bit values 0..4095, the range of many scanners."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is not installed")
    cam = skimage_data.camera().astype(np.uint16)
    v = cam * 16 + cam // 16
    assert v.min() == 0 and v.max() == 4095
    return v


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_twelve_bit_values_keep_their_contrast(twelve_bit, fmt):
    grey = np.asarray(load_image(_encode(twelve_bit, fmt)))
    assert grey.shape == (512, 512, 3) and (grey[..., 0] == grey[..., 2]).all()
    grey = grey[..., 0]
    assert np.array_equal(grey, window_to_uint8(twelve_bit.astype(np.float64), *auto_window(twelve_bit)))
    # not clipped (all 255), not shifted, not squeezed into the bottom 16 levels as a /257 scaling would
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 200
    assert np.abs(grey.astype(int) - twelve_bit // 16).max() <= 1


def test_same_values_as_dicom_decode_identically(twelve_bit):
    pydicom = pytest.importorskip("pydicom", reason="pydicom is not installed")
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian

    path = get_testdata_file("MR_small.dcm", download=False)
    if path is None:
        pytest.skip("pydicom's MR_small.dcm is not installed")
    ds = pydicom.dcmread(path)
    for key in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
        if key in ds:
            delattr(ds, key)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = "OT"
    ds.Rows, ds.Columns = twelve_bit.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = twelve_bit.astype("<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    dicom = np.asarray(load_image(buf.getvalue()))
    assert np.array_equal(dicom, np.asarray(load_image(_encode(twelve_bit, "PNG"))))


def test_full_range_sixteen_bit_matches_eight_bit():
    arr = (np.arange(64 * 64) % 256).reshape(64, 64).astype(np.uint8)
    out = np.asarray(load_image(_encode(arr.astype(np.uint16) * 257, "PNG")))[..., 0]
    assert np.array_equal(out, arr)
