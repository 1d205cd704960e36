"""``recog features --out FILE.parquet``: the file holds what :func:`recog.features.extract` computes; without
pyarrow the error names the install command and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("skimage", reason="scikit-image is not installed")

from recog.cli.main import app  # noqa: E402
from recog.features import extract  # noqa: E402
from recog.io import load_image  # noqa: E402


def test_parquet_rows_are_the_extracted_vectors(digits_tree, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install 'recog[parquet]')")
    folder = digits_tree / "test" / "7"
    (folder.parent / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")   # skipped and listed
    out = tmp_path / "feats.parquet"
    res = CliRunner().invoke(app, ["features", str(folder.parent), "--kind", "color", "--size", "64", "--out", str(out)])
    (folder.parent / "broken.png").unlink()
    assert res.exit_code == 1 and "broken.png" in res.output                        # one unreadable image
    table = pq.read_table(out)
    assert table.column_names == ["path", "kind", "features"] and table.num_rows == 30
    rows = table.to_pylist()
    assert {r["kind"] for r in rows} == {"color"}
    first = next(r for r in rows if Path(r["path"]).parent == folder)
    expected = extract(load_image(first["path"]), "color", size=64)
    np.testing.assert_allclose(np.asarray(first["features"], np.float32), expected, rtol=1e-6)


def test_without_pyarrow_the_error_names_the_install_command(digits_tree, tmp_path):
    out = tmp_path / "feats.parquet"
    code = ("import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
            "from recog.cli.main import main\n"
            f"sys.argv = ['recog', 'features', {str(digits_tree / 'test' / '0')!r}, '--kind', 'lbp', '--out', {str(out)!r}]\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "pip install 'recog[parquet]'" in proc.stderr + proc.stdout, proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
