"""A transformers detector (a tiny random YOLOS from a local folder) through the detect task."""

from __future__ import annotations

import numpy as np

import recog


def test_tiny_yolos_trains_saves_and_predicts(shapes_voc, tmp_path):
    import torch
    from transformers import YolosConfig, YolosForObjectDetection

    from recog.engine.config import load_config
    from recog.engine.train import train

    torch.manual_seed(0)
    config = YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         image_size=[64, 64], patch_size=16, num_detection_tokens=8, num_labels=5)
    YolosForObjectDetection(config).save_pretrained(tmp_path / "yolos-tiny")
    result = train(load_config({"data": str(shapes_voc), "task": "detect", "model": str(tmp_path / "yolos-tiny"),
                                "epochs": 1, "batch_size": 8, "out": str(tmp_path / "run"), "workers": 1}))
    model = recog.load(result.best)
    assert model.manifest.task == "detect" and model.manifest.labels == ("disc", "square")
    assert model.manifest.preprocessing.size == (64, 64)
    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[0]
    d = model.predict(image, min_score=0.0, max_detections=5)
    assert 1 <= len(d) <= 5 and d.image_size == (96, 72) and set(d.labels) <= {"disc", "square"}
    assert np.all(d.boxes[:, 2] <= 96) and np.all((d.scores >= 0) & (d.scores <= 1))
