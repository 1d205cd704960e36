"""Fast preprocessing: fused normalize, reduced decode sizes."""

from __future__ import annotations

import numpy as np
import pytest

from recog.data.transforms import normalize, preprocess
from recog.data.decode import decode_size
from recog.types import Preprocessing


def _reference(arr, prep):
    out = (arr.astype(np.float64) / 255.0 - np.array(prep.mean)) / np.array(prep.std)
    return np.moveaxis(out, -1, -3)


@pytest.mark.parametrize("shape", [(224, 224, 3), (7, 9, 3), (4, 32, 32, 3), (2, 3, 16, 16, 3), (0, 8, 8, 3)])
def test_fused_normalize_matches_the_formula(shape):
    prep = Preprocessing()
    arr = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = normalize(arr, prep)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert out.shape == shape[:-3] + (3,) + shape[-3:-1]
    np.testing.assert_allclose(out, _reference(arr, prep), atol=1e-5)


def test_lookup_table_path_matches_when_opencv_is_absent(monkeypatch):
    import recog.data.transforms as t

    monkeypatch.setattr(t, "_normalize_cv2", lambda *a: None)
    prep = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    arr = np.random.default_rng(1).integers(0, 256, size=(3, 10, 12, 3), dtype=np.uint8)
    np.testing.assert_allclose(t.normalize(arr, prep), _reference(arr, prep), atol=1e-5)


def test_float_input_still_works():
    arr = np.full((4, 4, 3), 255.0, dtype=np.float32)
    np.testing.assert_allclose(normalize(arr, Preprocessing(mean=(0, 0, 0), std=(1, 1, 1))), 1.0)


def test_reduced_decode_keeps_enough_pixels_for_the_crop(photos):
    from recog.io import load_image

    prep = Preprocessing(size=(64, 64), crop_pct=0.875)
    w, h = decode_size(prep)
    assert (w, h) == (74, 74)
    img = load_image(photos["astronaut"], reduce_to=(w, h))  # 512x512 JPEG
    assert min(img.size) >= 74 and img.size[0] < 512
    full = preprocess(load_image(photos["astronaut"]), prep)
    reduced = preprocess(img, prep)
    assert np.abs(full - reduced).mean() < 0.05  # same picture, less decode work
