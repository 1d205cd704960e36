"""Contract over the task registry: every task builds, runs, saves, reloads and exports the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recog.tasks import get_task, task_names

LABELS = ["cat", "dog", "bird"]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", task_names())
@pytest.mark.parametrize("preset", ["resnet-micro", "vit-micro"])
def test_task_builds_saves_reloads_and_exports(name, preset, tmp_path):
    from recog.models import read_manifest, save_bundle
    from recog.runtime.export import torch_to_onnx
    from recog.runtime.onnx import create_session

    if name == "detect":
        pytest.skip("detect builds detectors only (FCOS presets, transformers detectors); its build, save, reload, "
                    "ONNX export and parity are tests/detect/test_export.py and test_pipeline.py")
    task = get_task(name)
    torch.manual_seed(0)
    created = task.build(preset, LABELS, weights="none")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 3, *created.preprocessing.size))
                         .astype(np.float32))
    created.model.eval()
    with torch.inference_mode():
        out = task.forward(created.model, x).numpy()
    assert out.shape[0] == 4 and out.ndim == 2

    bundle = save_bundle(tmp_path / name, created.model, labels=LABELS, preprocessing=created.preprocessing,
                         task=name, source_model=preset)
    manifest = read_manifest(bundle)
    assert manifest.task == name
    with torch.inference_mode():
        again = task.forward(task.load(manifest), x).numpy()
    np.testing.assert_allclose(again, out, atol=1e-5)

    torch_to_onnx(task.load(manifest), created.preprocessing.size, tmp_path / "m.onnx", task=task)
    onnx_out = create_session(tmp_path / "m.onnx", threads=1).run(None, {"pixel_values": x.numpy()})[0]
    parity = task.parity(out, onnx_out, None)
    assert task.judge(parity, max_drop=0.0, atol_rel=1e-3) is None, parity

    results = task.postprocess(out, manifest, sources=["a", "b", "c", "d"])
    assert len(results) == 4 and all(isinstance(r, task.result) for r in results)
    assert all(r.to_dict()["source"] in "abcd" for r in results)


def test_classify_trains_through_the_task(digits_tree):
    from types import SimpleNamespace

    task = get_task("classify")
    created = task.build("resnet-micro", LABELS, weights="none")
    config = SimpleNamespace(augment="none", hflip=True, label_smoothing=0.1, balance="loss", data=str(digits_tree))
    task.setup_training(config, LABELS, np.array([0, 0, 1, 2]), created.preprocessing, "cpu")
    images = torch.rand(4, 3, *created.preprocessing.size)
    x, y = task.inputs(images, torch.tensor([0, 0, 1, 2]), train=True)
    out = task.loss(created.model, x, y)
    out["loss"].backward()
    assert out["output"].shape == (4, 3) and torch.isfinite(out["loss"])
    assert task.class_weight.tolist() == pytest.approx([4 / 6, 4 / 3, 4 / 3])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in created.model.parameters())


def test_unknown_task_names_the_known_ones():
    from recog.errors import ConfigError

    with pytest.raises(ConfigError, match="classify"):
        get_task("clasify")


def test_embeddings_are_unit_vectors_and_match_for_equal_images(tiny_bundle, photos):
    import recog

    model = recog.load(tiny_bundle)
    vectors = model.embed([photos["coffee"], photos["chelsea"], photos["coffee"]])
    assert vectors.shape[0] == 3 and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[2]) == pytest.approx(1.0, abs=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.9999
    assert model.embed(photos["coffee"]).shape == vectors[0].shape


def test_a_classify_only_command_names_the_task(tmp_path, tiny_bundle, digits_tree):
    from recog.engine.evaluate import evaluate
    from recog.errors import ConfigError
    from recog.models import read_manifest, save_bundle

    task = get_task("embed")
    manifest = read_manifest(tiny_bundle)
    embedder = save_bundle(tmp_path / "emb", task.load(manifest), labels=list(manifest.labels),
                           preprocessing=manifest.preprocessing, task="embed", source_model="resnet-micro")
    with pytest.raises(ConfigError, match="`recog evaluate` does not support 'embed' models"):
        evaluate(embedder, digits_tree)
    from recog.runtime.prune import prune_bundle

    with pytest.raises(ConfigError, match="'embed' model; `recog prune` needs a 'classify' model"):
        prune_bundle(embedder, tmp_path / "pruned", amount=0.5)
