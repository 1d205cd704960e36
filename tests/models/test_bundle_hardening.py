"""A bundle is untrusted input: its paths stay inside it, its weights are safetensors, its
network is bounded, its labels fit the network, and its version covers what decides answers."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import time
from pathlib import Path

import pytest

from recog.errors import BundleError, BundleInvalidError, ConfigError, ModelNotFoundError, RecogError
from recog.models import create_model, read_manifest, save_bundle, update_bundle
from recog.models.bundle import load_network, sha256_file
from recog.models.checks import check_network_config

LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def source_bundle(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    created = create_model("resnet-micro", LABELS, weights="none")
    return save_bundle(tmp_path_factory.mktemp("hardening") / "tiny", created.model, labels=LABELS,
                       preprocessing=created.preprocessing, source_model="resnet-micro")


@pytest.fixture()
def bundle(tmp_path, source_bundle) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(source_bundle, out)
    return out


def _edit_manifest(folder: Path, rehash: tuple[str, ...] = (), **changes) -> None:
    """Rewrite recog.json as someone with write access could: change fields, re-record hashes."""
    raw = json.loads((folder / "recog.json").read_text())
    raw.update(changes)
    for name in rehash:
        raw["files"][name] = sha256_file(folder / name)
    (folder / "recog.json").write_text(json.dumps(raw))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


class _Opens:
    """Unpickling this object creates the file at ``path``: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# --------------------------------------------------------------------------- 4. paths stay inside


@pytest.mark.parametrize("entry", ["../secret.txt", "sub/../../secret.txt", "ABSOLUTE"])
def test_manifest_entries_outside_the_bundle_are_refused_before_hashing(bundle, tmp_path, entry):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    name = str(secret) if entry == "ABSOLUTE" else entry
    for digest in (sha256_file(secret), "0" * 64):     # the right and a wrong hash answer the same: no oracle
        raw = json.loads((bundle / "recog.json").read_text())
        raw["files"][name] = digest
        (bundle / "recog.json").write_text(json.dumps(raw))
        with pytest.raises(BundleInvalidError, match="outside the bundle") as info:
            read_manifest(bundle)
        assert info.value.code == "bundle_invalid" and name in _one_line(info.value)
        with pytest.raises(BundleInvalidError):
            read_manifest(bundle, verify=False)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinked_weights_leaving_the_bundle_are_refused(bundle, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(bundle / "model.safetensors", outside)
    (bundle / "model.safetensors").symlink_to(outside)
    with pytest.raises(BundleInvalidError, match="symlink") as info:
        read_manifest(bundle)
    assert "model.safetensors" in _one_line(info.value)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_inside_the_bundle_and_a_symlinked_bundle_folder_are_fine(bundle, tmp_path):
    (bundle / "weights").mkdir()
    shutil.move(bundle / "model.safetensors", bundle / "weights" / "model.safetensors")
    (bundle / "model.safetensors").symlink_to(Path("weights") / "model.safetensors")
    link = tmp_path / "latest"
    link.symlink_to(bundle)
    assert read_manifest(link).labels == tuple(LABELS)


def test_onnx_export_outside_the_bundle_is_refused(bundle, tmp_path):
    evil = tmp_path / "evil.onnx"
    evil.write_bytes(b"not a graph")
    raw = json.loads((bundle / "recog.json").read_text())
    raw["exports"] = {"onnx": {"file": "../evil.onnx", "format": "onnx", "verified": True}}
    raw["files"]["../evil.onnx"] = sha256_file(evil)
    (bundle / "recog.json").write_text(json.dumps(raw))
    with pytest.raises(BundleInvalidError, match="evil.onnx"):
        read_manifest(bundle)
    del raw["files"]["../evil.onnx"]                     # not hashed either: still refused, by the export entry
    raw["exports"]["onnx"]["file"] = str(evil)
    (bundle / "recog.json").write_text(json.dumps(raw))
    with pytest.raises(BundleInvalidError, match="exports"):
        read_manifest(bundle)


def test_update_bundle_refuses_to_record_files_outside(bundle, tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"x")
    with pytest.raises(BundleInvalidError, match="outside the bundle"):
        update_bundle(bundle, add_files=["../x.onnx"])
    assert "../x.onnx" not in read_manifest(bundle).files


# --------------------------------------------------------------------------- 5. what decides answers


def test_version_covers_task_labels_preprocessing_calibration_and_files(bundle):
    base = read_manifest(bundle).version
    original = (bundle / "recog.json").read_text()
    prep = dict(json.loads(original)["preprocessing"], mean=[0.4, 0.5, 0.5])
    edits = {"labels": ["b", "a", "c"], "preprocessing": prep, "calibration": {"temperature": 2.0}, "task": "embed"}
    for key, value in edits.items():
        _edit_manifest(bundle, **{key: value})
        assert read_manifest(bundle).version != base, f"changing {key} kept the version"
        (bundle / "recog.json").write_text(original)
    assert read_manifest(bundle).version == base
    _edit_manifest(bundle, metrics={"acc": 0.99}, created="yesterday")   # changes no answer: same version
    assert read_manifest(bundle).version == base


def test_label_count_must_match_the_network_outputs(bundle):
    _edit_manifest(bundle, labels=["a", "b", "c", "d"])
    with pytest.raises(BundleInvalidError, match=r"4 labels.*3 outputs") as info:
        load_network(read_manifest(bundle))
    _one_line(info.value)


def test_three_million_labels_for_three_outputs_are_refused_quickly(bundle):
    _edit_manifest(bundle, labels=[str(i) for i in range(3_000_000)])
    start = time.perf_counter()
    with pytest.raises(BundleInvalidError, match=r"3,000,000 labels.*3 outputs"):
        load_network(read_manifest(bundle))
    assert time.perf_counter() - start < 5


# --------------------------------------------------------------------------- 6. safetensors only


def test_pickle_named_model_safetensors_is_refused_without_running_it(bundle, tmp_path):
    import recog

    marker = tmp_path / "pwned"
    (bundle / "model.safetensors").write_bytes(pickle.dumps({"w": _Opens(marker)}))
    _edit_manifest(bundle, rehash=("model.safetensors",))
    with pytest.raises(BundleError, match="model.safetensors.*not a safetensors file") as info:
        recog.load(bundle)                                   # predict / serve
    assert "pickle" in _one_line(info.value)
    with pytest.raises(RecogError, match="model.safetensors.*not a safetensors file") as info:
        create_model(str(bundle), ["x", "y"])                # train --model BUNDLE
    _one_line(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("content", ["pickle", "zip", "text", "short", "bad-offsets"])
def test_weights_option_that_is_not_safetensors_is_a_config_error(tmp_path, content):
    marker = tmp_path / "pwned"
    path = tmp_path / "x.bin"
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}).encode()
    path.write_bytes({"pickle": pickle.dumps(_Opens(marker)), "zip": b"PK\x03\x04" + b"\0" * 64,
                      "text": b"hello, these are not weights\n", "short": b"\x01\x02",
                      "bad-offsets": struct.pack("<Q", len(header)) + header + b"\0" * 16}[content])
    with pytest.raises(ConfigError, match="x.bin") as info:
        create_model("resnet-micro", LABELS, weights=str(path))
    assert "safetensors" in _one_line(info.value)
    assert not marker.exists()


def test_model_folder_without_safetensors_weights_says_so(source_bundle, tmp_path):
    folder = tmp_path / "hf-folder"
    folder.mkdir()
    shutil.copy(source_bundle / "config.json", folder / "config.json")
    with pytest.raises(ModelNotFoundError, match="no model.safetensors") as info:
        create_model(str(folder), LABELS)
    assert "local cache" not in _one_line(info.value)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Opens(tmp_path / "pwned")))
    with pytest.raises(ModelNotFoundError, match="pytorch_model.bin"):
        create_model(str(folder), LABELS)
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- 7. bounded configs


def test_oversized_config_json_is_refused_before_parsing(bundle):
    config = json.loads((bundle / "config.json").read_text())
    config["notes"] = "x" * (2 << 20)
    (bundle / "config.json").write_text(json.dumps(config))
    _edit_manifest(bundle, rehash=("config.json",))
    with pytest.raises(BundleInvalidError, match=r"config.json.*1,048,576-byte cap"):
        load_network(read_manifest(bundle))


def test_huge_hidden_sizes_are_refused_from_a_parameter_estimate(bundle):
    config = json.loads((bundle / "config.json").read_text())
    config["hidden_sizes"] = [65536, 65536]
    (bundle / "config.json").write_text(json.dumps(config))
    _edit_manifest(bundle, rehash=("config.json",))
    start = time.perf_counter()
    with pytest.raises(BundleInvalidError, match=r"parameters.*2,000,000,000") as info:
        load_network(read_manifest(bundle))
    assert time.perf_counter() - start < 5
    _one_line(info.value)


def test_absurd_layer_counts_are_refused_before_building(bundle):
    config = json.loads((bundle / "config.json").read_text())
    config["depths"] = [100_000, 100_000]
    (bundle / "config.json").write_text(json.dumps(config))
    _edit_manifest(bundle, rehash=("config.json",))
    start = time.perf_counter()
    with pytest.raises(BundleInvalidError, match="layers"):
        load_network(read_manifest(bundle))
    assert time.perf_counter() - start < 2


def test_native_config_keys_are_validated(tmp_path):
    from recog.models import native

    model = native.build({native.CONFIG_KEY: "efficientnet-lite", "variant": "lite0", "num_classes": 3})
    folder = save_bundle(tmp_path / "native", model, labels=LABELS, preprocessing=create_model(
        "resnet-micro", LABELS, weights="none").preprocessing)
    assert load_network(read_manifest(folder)).classifier.out_features == 3
    original = json.loads((folder / "config.json").read_text())
    for change, pattern in (({"evil": 1}, "unknown key 'evil'"), ({"num_classes": "3"}, "num_classes"),
                            ({"num_classes": 10 ** 9}, "1,000,000,000 outputs")):
        (folder / "config.json").write_text(json.dumps({**original, **change}))
        _edit_manifest(folder, rehash=("config.json",))
        with pytest.raises(BundleInvalidError, match=pattern) as info:
            load_network(read_manifest(folder))
        _one_line(info.value)
    with pytest.raises(BundleInvalidError, match=r"1,281,\d+,\d+,\d+ parameters, over the cap"):
        check_network_config({**original, "num_classes": 10 ** 9}, where="config.json")


def test_an_ordinary_bundle_still_loads(bundle):
    model = load_network(read_manifest(bundle))
    assert model.config.num_labels == 3
