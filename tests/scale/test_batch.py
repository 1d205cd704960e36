"""recog batch-predict on the local path: error rows, shards, file lists, resume after a real kill, refusals."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from recog.cli.main import app
from recog.errors import ConfigError, DatasetError
from recog.scale.batch import batch_predict
from recog.scale.shards import read_job
from tests.scale.conftest import N_PHOTOS


def test_every_input_gets_one_row_and_a_bad_image_an_error_row(tiny_bundle, photo_folder, tmp_path):
    import recog

    inputs = [str(photo_folder / "broken.jpg"), *(str(photo_folder / f"img{i:03d}.jpg") for i in range(10))]
    summary = batch_predict(tiny_bundle, inputs, tmp_path / "out", shard_size=4, top_k=2)
    assert (summary.shards, summary.rows, summary.failures, summary.resumed_shards) == (3, 11, 1, 0)
    table = read_job(tmp_path / "out")
    assert table.column("index").to_pylist() == list(range(11))
    assert table.column("path").to_pylist() == inputs
    bad = table.slice(0, 1).to_pylist()[0]
    assert bad["error_code"] == "corrupt_image" and "broken.jpg" in bad["error"] and bad["label"] is None
    # the rows are the library's predictions for the same files
    expected = recog.load(tiny_bundle).predict(inputs[1:], top_k=2)
    rows = table.slice(1).to_pylist()
    assert [r["label"] for r in rows] == [e.label for e in expected]
    assert [r["top_labels"] for r in rows] == [[t.label for t in e.top] for e in expected]
    assert rows[0]["score"] == pytest.approx(expected[0].score, abs=1e-5)
    assert json.loads(rows[0]["result"])["top"][1]["label"] == expected[0].top[1].label
    assert all(r["error"] is None for r in rows)
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == [
        "_job.json", "part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    only_bad = batch_predict(tiny_bundle, inputs[:1], tmp_path / "bad", top_k=2)  # a shard where every file fails
    assert (only_bad.rows, only_bad.failures) == (1, 1)


def test_file_lists_parquet_and_csv_give_the_same_job(tiny_bundle, photo_folder, tmp_path):
    import pyarrow as pa

    names = [f"img{i:03d}.jpg" for i in (5, 1, 3)]  # a list keeps its own order
    pq.write_table(pa.table({"Path": [str(photo_folder / n) for n in names], "extra": [1, 2, 3]}),
                   tmp_path / "files.parquet")
    lst = photo_folder / "list.csv"  # relative paths are relative to the list's folder
    with open(lst, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "path"], *([i, n] for i, n in enumerate(names))])
    a = batch_predict(tiny_bundle, [str(tmp_path / "files.parquet")], tmp_path / "a", top_k=1)
    b = batch_predict(tiny_bundle, [str(lst)], tmp_path / "b", top_k=1)
    assert a.rows == b.rows == 3
    ta, tb = read_job(tmp_path / "a"), read_job(tmp_path / "b")
    assert [p.rsplit("/", 1)[1] for p in ta.column("path").to_pylist()] == names
    assert ta.column("label").to_pylist() == tb.column("label").to_pylist()


@pytest.mark.slow  # processes that import torch: one killed mid-job, two that resume it
def test_a_killed_job_resumes_from_its_last_complete_shard(tiny_bundle, killed, tmp_path):
    out = killed.copy(tmp_path / "preds")
    total = N_PHOTOS + 1
    assert 3 <= killed.shards_at_kill < total // 2
    # resumed by the local process pool (2 processes, each with its own model)
    summary = batch_predict(tiny_bundle, killed.inputs, out, shard_size=2, top_k=2, workers=2, threads=1)
    # a shard may have been renamed into place between the count and the kill
    assert summary.resumed_shards in (killed.shards_at_kill, killed.shards_at_kill + 1)
    assert summary.rows == total - 2 * summary.resumed_shards
    table = read_job(out)
    assert table.column("index").to_pylist() == list(range(total))  # no duplicate, none missing
    assert not list(out.glob("*.tmp*"))
    again = batch_predict(tiny_bundle, killed.inputs, out, shard_size=2, top_k=2)
    assert (again.rows, again.resumed_shards) == (0, (total + 1) // 2)


def test_an_output_folder_of_another_job_is_refused(tiny_bundle, photo_folder, tmp_path):
    batch_predict(tiny_bundle, [str(photo_folder / "img00*.jpg")], tmp_path / "out", shard_size=4, top_k=2)
    with pytest.raises(ConfigError, match="holds another job: its inputs, inputs_sha256 differ"):
        batch_predict(tiny_bundle, [str(photo_folder / "img01*.jpg"), str(photo_folder / "img002.jpg")],
                      tmp_path / "out", shard_size=4, top_k=2)
    with pytest.raises(ConfigError, match="shard_size"):
        batch_predict(tiny_bundle, [str(photo_folder / "img00*.jpg")], tmp_path / "out", shard_size=5, top_k=2)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        batch_predict(tiny_bundle, [str(photo_folder / "img00*.jpg")], tmp_path / "other")


def test_the_command_line(tiny_bundle, photo_folder, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["batch-predict", str(tiny_bundle), str(photo_folder / "img00*.jpg"),
                              str(photo_folder / "broken.jpg"), "--out", str(tmp_path / "p"), "--shard-size", "3"])
    assert res.exit_code == 0, res.output
    assert "11 rows (1 unreadable)" in res.output
    assert read_job(tmp_path / "p").num_rows == 11
    res = runner.invoke(app, ["batch-predict", str(tiny_bundle), str(tmp_path / "nothing-*.jpg"), "--out",
                              str(tmp_path / "q")])
    assert res.exit_code != 0 and isinstance(res.exception, DatasetError)  # main() maps it to exit code 2
    assert "pattern matched no files" in str(res.exception)
