"""train → evaluate → predict through the real command line, on real MNIST digits."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recog.cli.main import main

FAST = ["--model", "resnet-micro", "--batch-size", "16", "--augment", "light", "--no-flip", "--lr", "5e-3"]


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(digits_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    subprocess.run([sys.executable, "-m", "recog", "train", str(digits_tree), *FAST, "--epochs", "3",
                    "--out", str(out)], check=True, capture_output=True, text=True)
    return out


def test_train_writes_run_folder(trained):
    assert (trained / "config.yaml").is_file()
    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(float(r["images_per_s"]) > 0 for r in rows)
    manifest = json.loads((trained / "best" / "recog.json").read_text())
    assert manifest["labels"] == ["0", "1", "7"]
    assert manifest["training"]["epochs"] == 3
    assert len(manifest["dataset"]["fingerprint"]) == 64
    assert "val_accuracy" in manifest["metrics"]
    assert manifest["calibration"]["method"] == "temperature" and manifest["calibration"]["temperature"] > 0
    assert (trained / "last" / "train_state.safetensors").is_file()


def test_evaluate_writes_report(trained, digits_tree, capsys, tmp_path):
    code, out, err = run_cli(["evaluate", trained / "best", digits_tree, "--out", tmp_path / "rep"], capsys)
    assert code == 0, err
    assert "accuracy" in out and "report:" in out
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["num_samples"] == 30
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in html


def test_predict_formats_and_failure_exit_code(trained, digits_tree, capsys, tmp_path):
    images = sorted((digits_tree / "test" / "7").glob("*.png"))[:3]
    code, out, err = run_cli(["predict", trained / "best", *images, "--format", "jsonl", "-k", "2"], capsys)
    assert code == 0, err
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert len(lines) == 3 and all(len(x["top"]) == 2 for x in lines)

    code, out, _ = run_cli(["predict", trained / "best", str(digits_tree / "test" / "*" / "*.png"), "-f", "csv"],
                           capsys)
    assert code == 0 and len(out.strip().splitlines()) == 1 + 30 * 3  # header + 30 images x top 3

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    code, out, err = run_cli(["predict", trained / "best", images[0], bad, tmp_path / "missing.png"], capsys)
    assert code == 1
    assert "2 of 3 input(s) failed" in err and "unsupported_format" in out


def test_corrupt_files_are_skipped_or_fail_with_strict(digits_tree, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(digits_tree / "train", data)
    (data / "0" / "zero.png").write_bytes(b"")
    (data / "1" / "trunc.png").write_bytes(next((data / "1").glob("*.png")).read_bytes()[:50])
    (data / "7" / "fake.png").write_text("hello")
    code, _, err = run_cli(["train", data, *FAST, "--epochs", "1", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    for name in ("zero.png", "trunc.png", "fake.png"):
        assert name in err
    code, _, err = run_cli(["train", data, *FAST, "--epochs", "1", "--out", tmp_path / "strict", "--strict"], capsys)
    assert code == 2 and "3 unreadable file(s)" in err and not (tmp_path / "strict" / "last").exists()


def test_errors_are_one_line_with_exit_codes(tmp_path, capsys, tiny_bundle):
    code, _, err = run_cli(["train", tmp_path / "nothing", "--model", "resnet-micro"], capsys)
    assert code == 2 and err.startswith("error:") and "no such file" in err
    code, _, err = run_cli(["train", tmp_path, "--model", "resnet18"], capsys)
    assert code != 0 and "error:" in err
    code, _, err = run_cli(["predict", tmp_path / "nope", tiny_bundle / "config.json"], capsys)
    assert code == 3 and "no such model bundle" in err


def test_interrupt_saves_last_and_resume_continues(digits_tree, tmp_path):
    out = tmp_path / "run"
    # its own process group, signalled as a whole: what Ctrl-C on a terminal does (data-loader workers included);
    # SIGINT at its default even when the test run itself was started in the background (`cmd &` ignores it)
    proc = subprocess.Popen([sys.executable, "-m", "recog", "train", str(digits_tree), *FAST, "--epochs", "200",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "metrics.csv").is_file() and len((out / "metrics.csv").read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with" in err
    state = json.loads((out / "last" / "train_state.json").read_text())
    done = next(v for k, v in state["__dict__"] if k == "epoch")
    assert done >= 2

    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-m", "recog", "train", "--resume", str(out), "--epochs", str(done + 1)],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(out / "metrics.csv"))]
    assert epochs[-1] == done + 1 and epochs == sorted(set(epochs))


def test_streaming_when_data_exceeds_the_cache(digits_tree, tmp_path, capsys):
    """Over --cache-gb the images are decoded every epoch; a file that breaks mid-run is skipped."""
    import yaml

    data = tmp_path / "data"
    shutil.copytree(digits_tree / "train", data)
    (data / "7" / "fake.png").write_text("hello")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"cache_gb": 0.0001}))
    code, _, err = run_cli(["train", data, *FAST, "--epochs", "2", "--config", config, "--workers", "2", "--out", tmp_path / "run"],
                           capsys)
    assert code == 0, err
    assert err.count("fake.png") >= 1
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) == 2 and float(rows[-1]["train_acc"]) > 0.5


def test_evaluate_skips_unreadable_images(trained, digits_tree, tmp_path, capsys):
    data = tmp_path / "test"
    shutil.copytree(digits_tree / "test", data)
    (data / "7" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run_cli(["evaluate", trained / "best", data, "--out", tmp_path / "rep"], capsys)
    assert code == 0, err
    assert "broken.png" in err and json.loads((tmp_path / "rep" / "metrics.json").read_text())["num_samples"] == 30


def test_evaluate_manifest_with_groups(trained, digits_tree, tmp_path, capsys):
    rows = ["path,label,split,group"]
    for i, p in enumerate(sorted((digits_tree / "test").glob("*/*.png"))):
        rows.append(f"{p},{p.parent.name},test,{'site-a' if i % 3 else 'site-b'}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    code, out, err = run_cli(["evaluate", trained / "best", manifest, "--out", tmp_path / "rep"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert set(metrics["groups"]) == {"site-a", "site-b"}
    assert "largest group gap" in out and (tmp_path / "rep" / "groups.png").is_file()


def test_python_api_train_evaluate_predict(digits_tree, tmp_path):
    import recog

    run = recog.train(digits_tree, model="resnet-micro", epochs=1, batch_size=16, augment="none",
                      out=str(tmp_path / "run"))
    assert run.best.is_dir() and run.epochs_run == 1
    res = recog.evaluate(run.best, digits_tree, out=tmp_path / "rep")
    assert res.split == "test" and res.metrics["num_samples"] == 30
    pred = recog.load(run.best).predict(next((digits_tree / "test" / "7").glob("*.png")), top_k=3)
    assert len(pred.top) == 3 and pred.label in ("0", "1", "7")


def test_unwritable_output_path_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(["api-key", "add", tmp_path / "no-such-folder" / "keys.txt", "--name", "web"], capsys)
    assert code == 1 and err.startswith("error:") and "No such file or directory" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_resume_refuses_flags_it_would_ignore(trained, capsys):
    import re

    code, _, err = run_cli(["train", "--resume", trained, "--lr", "0.1"], capsys)
    text = re.sub(r"[│╭╮╰╯─\s]+", " ", err)  # click/rich draws usage errors in a box
    assert code == 2 and "only --epochs may change (got lr)" in text


def test_data_info_and_preview(digits_tree, tmp_path, capsys):
    from PIL import Image

    data = tmp_path / "d"
    shutil.copytree(digits_tree / "train", data)
    for f in sorted((data / "7").glob("*.png"))[5:]:
        f.unlink()
    code, out, _ = run_cli(["data", "info", data, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["counts"]["all"] == {"0": 30, "1": 30, "7": 5} and info["imbalance"]["all"] == 6.0
    code, out, _ = run_cli(["data", "info", data], capsys)
    assert code == 0 and "6.0x the smallest" in " ".join(out.split())
    (data / "0" / "empty.png").write_bytes(b"")
    code, out, _ = run_cli(["data", "info", data, "--json"], capsys)
    assert code == 1 and [b["path"] for b in json.loads(out)["bad_files"]] == [str(data / "0" / "empty.png")]

    png = tmp_path / "preview.png"
    code, out, err = run_cli(["data", "preview", digits_tree, "--model", "resnet-micro", "--no-flip", "-n", "3",
                              "-o", png], capsys)
    assert code == 0, err
    grid = np.asarray(Image.open(png))
    tile = 32 * 3  # 32 px tiles scaled up to about 96 px
    assert grid.shape[0] == 3 * tile + 2 * 2 * 3 and grid.shape[1] == 4 * tile + 3 * 2 * 3
    first, views = grid[:tile, :tile], [grid[:tile, k * (tile + 6):k * (tile + 6) + tile] for k in (1, 2, 3)]
    assert any(not np.array_equal(first, v) for v in views)  # augmented views differ from the original


def test_evaluate_refuses_labels_the_model_does_not_have(trained, digits_tree, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(digits_tree / "test", data)
    (data / "7").rename(data / "9")
    code, _, err = run_cli(["evaluate", trained / "best", data, "--out", tmp_path / "rep"], capsys)
    assert code == 2 and "labels ['9'] are not among the model's labels (0, 1, 7)" in err
    (data / "9").rename(data / "7")
    shutil.rmtree(data / "1")  # a subset of the model's classes is fine
    code, out, err = run_cli(["evaluate", trained / "best", data, "--out", tmp_path / "rep"], capsys)
    assert code == 0, err


def test_models_lists_which_presets_ship_weights(capsys, monkeypatch):
    """The lite presets carry installed ImageNet weights (and the extra that installs them is named in full)."""
    monkeypatch.setenv("COLUMNS", "250")  # one line per preset
    code, stdout, _ = run_cli(["models"], capsys)
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if line.count("│") > 3}
    assert "ImageNet-1k, installed (recog[pretrained])" in rows["efficientnet-lite0"]
    assert "from scratch" in rows["resnet-micro"] and "microsoft/resnet-18" in rows["resnet-18"]
