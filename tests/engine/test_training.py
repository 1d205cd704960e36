"""Training internals that the end-to-end tests cannot see: transfer strategies, streaming, data commands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recog.data import load_dataset
from recog.engine.config import load_config
from recog.engine.train import train

FAST = {"model": "resnet-micro", "batch_size": 16, "augment": "none", "lr": 5e-3}


def _weights(bundle):
    import recog
    from recog.models.bundle import load_network

    return load_network(recog.load(bundle).manifest).state_dict()


def _initial(labels, seed=0):
    from recog.models import create_model

    torch.manual_seed(seed)
    return create_model("resnet-micro", list(labels), weights="none").model.state_dict()


@pytest.mark.parametrize("strategy, backbone_moves", [("linear", False), ("full", True)])
def test_linear_probe_keeps_the_backbone(digits_tree, tmp_path, strategy, backbone_moves):
    res = train(load_config({"data": str(digits_tree), **FAST, "epochs": 1, "strategy": strategy,
                             "out": str(tmp_path / strategy)}))
    before, after = _initial(["0", "1", "7"]), _weights(res.last)
    backbone = [k for k in before if not k.startswith("classifier") and before[k].is_floating_point()]
    head = [k for k in before if k.startswith("classifier")]
    moved = any(not torch.equal(before[k], after[k]) for k in backbone)
    assert moved is backbone_moves
    assert any(not torch.equal(before[k], after[k]) for k in head)


def test_staged_unfreezes_after_freeze_epochs(digits_tree, tmp_path):
    from recog.engine.train import Reporter, prepare

    cfg = load_config({"data": str(digits_tree), **FAST, "epochs": 2, "strategy": "staged", "freeze_epochs": 1,
                       "backbone_lr_mult": 0.1, "out": str(tmp_path / "s")})
    (tmp_path / "s").mkdir()
    session = prepare(cfg, Reporter(), tmp_path / "s").trainer
    assert session.backbone_frozen(0) and not session.backbone_frozen(1)
    lrs = [g["base_lr"] for g in session.optimizer.param_groups]
    assert lrs == pytest.approx([5e-3, 5e-4])  # head, backbone


def test_balanced_sampler_draws_classes_evenly(digits_tree, tmp_path):
    import shutil

    from recog.engine.train import Reporter, prepare

    data = tmp_path / "d"
    shutil.copytree(digits_tree / "train", data)
    for f in sorted((data / "7").glob("*.png"))[5:]:  # 7 becomes a rare class: 5 of 65
        f.unlink()
    cfg = load_config({"data": str(data), **FAST, "balance": "sampler", "val_split": 0.0, "out": str(tmp_path / "r")})
    (tmp_path / "r").mkdir()
    session = prepare(cfg, Reporter(), tmp_path / "r").trainer
    targets = session.train_data.targets
    draws = np.random.default_rng(0).choice(len(targets), size=30000, p=session.sample_p)
    share = np.bincount(targets[draws], minlength=3) / len(draws)
    assert np.allclose(share, 1 / 3, atol=0.02)


def test_streamed_batches_equal_the_in_memory_ones(digits_tree):
    from recog.data.batches import ImageBatches, StreamingBatches, load_split
    from recog.models import get_preset

    ds = load_dataset(digits_tree)
    samples, prep = ds.split("train"), get_preset("resnet-micro").preprocessing
    ram = load_split(samples, ds.labels, prep, strict=False, threads=2, cache_gb=1.0)
    stream = load_split(samples, ds.labels, prep, strict=False, threads=2, cache_gb=1e-6)
    assert isinstance(ram, ImageBatches) and isinstance(stream, StreamingBatches)
    order = np.random.default_rng(0).permutation(len(samples))
    for (xa, ya), (xb, yb) in zip(ram.batches(16, order=order), stream.batches(16, order=order), strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_progress_lines_go_to_train_log_and_to_a_redirected_stderr(digits_tree, tmp_path, capsys):
    res = train(load_config({"data": str(digits_tree), **FAST, "epochs": 2, "out": str(tmp_path / "p")}))
    log = (res.run_dir / "train.log").read_text().splitlines()
    assert [line.split()[2:4] for line in log] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "val_acc" in log[0] and "train_loss" in log[0]
    err = capsys.readouterr().err  # pytest's captured stderr is not a terminal
    assert "epoch 1/2" in err and "epoch 2/2" in err


def test_pretrained_lite_presets_default_to_their_measured_transfer_options():
    from recog.models.registry import get_preset

    cfg = load_config({"data": "photos/"})  # the default model, pretrained
    assert cfg.model == "efficientnet-lite1" and get_preset(cfg.model).transfer_defaults == {"strategy": "linear"}
    assert (cfg.strategy, cfg.epochs) == ("linear", 1)  # the probe is fitted in one pass
    # the user's strategy brings its own learning rate; from scratch or another task: the plain defaults
    assert (load_config({"data": "p/", "strategy": "full"}).lr, load_config({"data": "p/", "strategy": "full"}).strategy) == (1e-3, "full")
    assert load_config({"data": "p/", "lr": 3e-3}).lr == 3e-3
    for other in ({"weights": "none"}, {"model": "resnet-tiny"}, {"task": "detect"}):
        assert load_config({"data": "p/", **other}).strategy == "full", other
    for task in ("detect", "anomaly"):  # their backbone stays the one they were measured with
        assert load_config({"data": "p/", "task": task}).model == "efficientnet-lite0"


def test_identical_files_in_two_splits_are_reported_before_training(digits_tree, tmp_path, messages):
    import shutil

    data = tmp_path / "leaky"
    shutil.copytree(digits_tree, data)
    leaked = next((data / "train" / "7").glob("*.png"))
    shutil.copy(leaked, data / "test" / "7" / "copy_of_train.png")

    train(load_config({"data": str(data), **FAST, "epochs": 1, "out": str(tmp_path / "run")}), messages)
    warning = [m for m in messages.seen if "two splits" in m]
    assert len(warning) == 1 and "1 image(s)" in warning[0] and "copy_of_train.png" in warning[0]
    assert "recog audit" in warning[0]
    clean = type(messages)()
    train(load_config({"data": str(digits_tree), **FAST, "epochs": 1, "out": str(tmp_path / "clean")}), clean)
    assert not [m for m in clean.seen if "two splits" in m]
