"""Monitor fixtures: one small classifier trained on real MNIST digits (with its reference), shared."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def digits_model(digits_tree, tmp_path_factory) -> Path:
    """resnet-micro trained 3 epochs on 3 MNIST classes: ``best/`` carries a reference."""
    from recog.engine.config import load_config
    from recog.engine.train import train

    out = tmp_path_factory.mktemp("monitor-run") / "digits"
    res = train(load_config({"data": str(digits_tree / "train"), "model": "resnet-micro", "epochs": 3,
                             "batch_size": 16, "augment": "none", "lr": 5e-3, "val_split": 0.3,
                             "test_split": 0.0, "out": str(out)}))
    return res.best
