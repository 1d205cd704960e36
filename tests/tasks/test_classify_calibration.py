"""Temperature scaling: fitted on validation logits, stored in the bundle, applied by the predictor."""

from __future__ import annotations

import json

import numpy as np

from recog.metrics.temperature import fit_temperature


def _sample(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose true-class margin makes softmax(logits) calibrated at scale 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    logits = rng.normal(size=(n, 5))
    logits[np.arange(n), y] += 1.5
    # draw labels from the calibrated model so that T = 1 is right for scale 1
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in p])
    return logits * scale, y


def test_temperature_undoes_over_and_under_confidence():
    for scale in (0.5, 1.0, 3.0):
        logits, y = _sample(4000, scale)
        assert abs(fit_temperature(logits, y) - scale) / scale < 0.15


def test_bundle_records_temperature_and_predictor_applies_it(tiny_bundle, tmp_path, photos):
    import shutil

    import recog
    from recog.tasks.classify import probabilities, softmax

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    raw = json.loads((copy / "recog.json").read_text())
    raw["calibration"] = {"method": "temperature", "temperature": 0.25}
    (copy / "recog.json").write_text(json.dumps(raw))
    model = recog.load(copy)
    x = model.preprocess(photos["coffee"])[None]
    logits = model.infer(x)
    expected = softmax(logits.astype(np.float64) / 0.25)[0]
    assert abs(model.postprocess(logits, top_k=1)[0].score - expected.max()) < 1e-9
    np.testing.assert_allclose(probabilities(logits, model.manifest.temperature)[0], expected)
