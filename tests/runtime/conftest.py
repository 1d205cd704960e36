"""Fixtures for the inference tests: a tiny model trained on real digits, and its exports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

LABELS = ["0", "1", "7"]


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; two OpenMP threads spin-wait badly on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, digits_tree) -> Path:
    """resnet-micro trained for a few seconds on real MNIST digits 0/1/7 (high test accuracy)."""
    import torch

    from recog.models import create_model, save_bundle
    from recog.data.evalset import load_labelled
    from recog.runtime.prune import finetune

    torch.manual_seed(0)
    created = create_model("resnet-micro", LABELS, weights="none")
    train = load_labelled(digits_tree, LABELS, created.preprocessing, split="train")
    finetune(created.model, {}, train, epochs=10, lr=3e-3, batch_size=16)
    finetune(created.model, {}, train, epochs=10, lr=1e-3, batch_size=16)
    out = tmp_path_factory.mktemp("trained") / "digits"
    return save_bundle(out, created.model, labels=LABELS, preprocessing=created.preprocessing,
                       source_model="resnet-micro")


@pytest.fixture(scope="session")
def exported_bundle(tmp_path_factory, trained_bundle, digits_tree) -> Path:
    """A copy of ``trained_bundle`` with verified onnx and onnx-int8 exports (treat as read-only)."""
    from recog.runtime.export import export_bundle

    out = tmp_path_factory.mktemp("exported") / "digits"
    shutil.copytree(trained_bundle, out)
    export_bundle(out, quantize="int8", calibration=digits_tree, max_drop=5.0, threads=1)
    return out


@pytest.fixture()
def bundle_copy(tmp_path, trained_bundle) -> Path:
    """A private, writable copy of ``trained_bundle``."""
    out = tmp_path / "bundle"
    shutil.copytree(trained_bundle, out)
    return out
