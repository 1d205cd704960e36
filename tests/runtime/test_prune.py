"""Magnitude pruning: the sparsity asked for is the sparsity delivered, and the report is honest."""

from __future__ import annotations

import pytest
import torch

from recog.errors import ConfigError
from recog.models.bundle import load_network, read_manifest
from recog.runtime.prune import apply_masks, magnitude_masks, prunable_parameters, prune_bundle, sparsity


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.8])
def test_unstructured_sparsity_is_as_asked(trained_bundle, amount):
    model = load_network(read_manifest(trained_bundle))
    params = prunable_parameters(model)
    apply_masks(params, magnitude_masks(params, amount, "unstructured"))
    assert sparsity(model)["prunable"] == pytest.approx(amount, abs=1e-3)
    assert "classifier.1.weight" not in params  # the head stays dense


def test_unstructured_removes_the_smallest_weights(trained_bundle):
    model = load_network(read_manifest(trained_bundle))
    params = prunable_parameters(model)
    before = torch.cat([p.detach().abs().flatten() for p in params.values()])
    masks = magnitude_masks(params, 0.5, "unstructured")
    keep = torch.cat([m.flatten() for m in masks.values()])
    assert before[~keep].max() <= before[keep].min()


def test_channel_pruning_zeroes_whole_filters(trained_bundle):
    model = load_network(read_manifest(trained_bundle))
    params = prunable_parameters(model)
    apply_masks(params, magnitude_masks(params, 0.5, "channel"))
    for name, p in params.items():
        zero_filters = (p.detach().flatten(1).abs().sum(1) == 0).sum().item()
        assert zero_filters == round(0.5 * p.shape[0]), name
    assert sparsity(model)["prunable"] == pytest.approx(0.5, abs=0.05)


def test_bad_amount_and_method_are_refused():
    w = {"w": torch.ones(4, 4)}
    with pytest.raises(ConfigError):
        magnitude_masks(w, 1.0, "unstructured")
    with pytest.raises(ConfigError, match="unstructured, channel"):
        magnitude_masks(w, 0.5, "random")


def test_prune_bundle_fine_tunes_and_reports(trained_bundle, digits_tree, tmp_path):
    out = tmp_path / "pruned"
    result = prune_bundle(trained_bundle, out, amount=0.5, method="unstructured", data=digits_tree, epochs=1,
                          lr=1e-3)
    r = result.report
    assert r["sparsity"]["prunable"] == pytest.approx(0.5, abs=1e-3)  # kept through the fine-tune
    assert r["accuracy"]["before"] >= 0.9 and r["accuracy"]["after_finetune"] is not None
    assert r["finetune"]["steps"] >= 1
    assert r["size"]["compressed_bytes_after"] < r["size"]["compressed_bytes_before"]
    assert r["latency_ms"]["before"] > 0 and r["speed_note"]
    manifest = read_manifest(out)
    assert manifest.raw["pruning"]["method"] == "unstructured" and manifest.labels == ("0", "1", "7")
    reloaded = load_network(manifest)
    assert sparsity(reloaded)["prunable"] == pytest.approx(0.5, abs=1e-3)


def test_prune_cli_says_plainly_when_there_is_no_speed_gain(trained_bundle, tmp_path):
    from typer.testing import CliRunner

    from recog.cli.main import app

    res = CliRunner().invoke(app, ["prune", str(trained_bundle), "--amount", "0.25", "--method", "channel",
                                   "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "sparsity: 25.0% of prunable weights" in res.output
    assert "speed:" in res.output and ("no speed gain" in res.output or "faster" in res.output)
