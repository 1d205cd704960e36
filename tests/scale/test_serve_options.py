"""recog serve --ray options: flags and YAML, refusals, the Serve config file, the missing-Ray error."""

from __future__ import annotations

import sys

import pytest
import yaml
from typer.testing import CliRunner

from recog.cli.main import app
from recog.errors import ConfigError
from recog.scale.serve_options import RayServeOptions, load_serve_options, serve_config
from recog.serve.settings import load_settings


def test_flags_override_the_yaml_file(tmp_path):
    cfg = tmp_path / "opts.yaml"
    cfg.write_text("min_replicas: 2\nmax_replicas: 6\ntarget_ongoing: 3\n")
    opts = load_serve_options(cfg, overrides={"max_replicas": 8, "target_ongoing": None})
    assert (opts.min_replicas, opts.max_replicas, opts.target_ongoing) == (2, 8, 3)
    assert opts.autoscaling_config() == {"min_replicas": 2, "max_replicas": 8, "target_ongoing_requests": 3,
                                         "upscale_delay_s": 5.0, "downscale_delay_s": 60.0}


@pytest.mark.parametrize("text, message", [
    ("max_replica: 4\n", "unknown Ray Serve option 'max_replica'; did you mean max_replicas"),
    ("min_replicas: 5\nmax_replicas: 2\n", r"need 0 <= min \(5\) <= max \(2\)"),
    ("target_ongoing: 0\n", "target_ongoing must be above 0"),
    ("target_ongoing: four\n", "target_ongoing must be a number"),
    ("- 1\n", "expected a mapping"),
])
def test_bad_options_are_refused_in_one_line(tmp_path, text, message):
    cfg = tmp_path / "opts.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_serve_options(cfg)
    assert "\n" not in str(err.value)


def test_the_serve_config_passes_ray_serves_schema_one_application_per_model(tiny_bundle):
    pytest.importorskip("ray")
    from ray.serve.schema import ServeDeploySchema

    settings = load_settings(models={"pets": str(tiny_bundle), "cells": str(tiny_bundle)}, max_batch_size=16,
                             env={})
    config = serve_config(settings, RayServeOptions(max_replicas=8, target_ongoing=4, replica_cpus=2))
    ServeDeploySchema.model_validate(config)
    apps = {a["name"]: a for a in config["applications"]}
    assert [apps["pets"]["route_prefix"], apps["cells"]["route_prefix"]] == ["/", "/cells"]
    (deployment,) = apps["cells"]["deployments"]
    assert deployment["name"] == "cells" and deployment["max_ongoing_requests"] == 16  # fills a batch
    assert deployment["ray_actor_options"] == {"num_cpus": 2}
    args = apps["cells"]["args"]["settings"]
    assert list(args["models"]) == ["cells"] and args["preprocess_workers"] == 2
    assert load_settings(**args, env={}).model_names == ["cells"]  # what a replica rebuilds


def test_write_config_from_the_command_line(tiny_bundle, tmp_path):
    out = tmp_path / "serve.yaml"
    res = CliRunner().invoke(app, ["serve", str(tiny_bundle), "--name", "pets", "--ray", "--write-config", str(out),
                                   "--min-replicas", "1", "--max-replicas", "3", "--target-ongoing", "4"])
    assert res.exit_code == 0, res.output
    config = yaml.safe_load(out.read_text())
    assert config["applications"][0]["deployments"][0]["autoscaling_config"]["max_replicas"] == 3
    assert out.read_text().startswith("# Ray Serve config written by")


def test_ray_flags_without_ray_and_a_missing_ray_are_one_line_errors(tiny_bundle, monkeypatch, tmp_path):
    res = CliRunner().invoke(app, ["serve", str(tiny_bundle), "--max-replicas", "3"])
    assert res.exit_code == 2 and "--max-replicas only work with --ray" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if recog[ray] were not installed
    res = CliRunner().invoke(app, ["serve", str(tiny_bundle), "--ray"])
    assert isinstance(res.exception, ConfigError)
    assert str(res.exception) == ("recog serve --ray needs Ray, which is not installed. "
                                  "Fix: pip install 'recog[ray]' (Ray Serve and Ray Data)")
    with pytest.raises(ConfigError, match=r"recog batch-predict --ray needs Ray.*pip install 'recog\[ray\]'"):
        from recog.scale.batch import batch_predict

        batch_predict(tiny_bundle, [str(tiny_bundle / "recog.json")], tmp_path / "preds", ray=True)
    assert not (tmp_path / "preds").exists()


def test_a_replica_is_unhealthy_until_its_app_is_ready_and_healthy_while_draining(tiny_bundle, tmp_path):
    import asyncio

    from recog.scale.deployment import RecogReplica
    from recog.scale.serve_options import settings_args

    settings = load_settings(models={"tiny": str(tiny_bundle)}, faces_db=tmp_path / "faces.db", env={})
    replica = RecogReplica(settings_args(settings, options=RayServeOptions(replica_cpus=1)))
    assert replica.settings.preprocess_workers == 1
    replica.check_health()  # not built yet: Serve is still constructing it
    app = replica.__serve_build_asgi_app__()
    with pytest.raises(RuntimeError, match="not ready"):
        replica.check_health()  # built, models not loaded

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            replica.check_health()  # loaded and warmed
            app.state.recog.draining = True
            replica.check_health()  # shutting down on purpose: nothing to replace

    asyncio.run(lifespan())
