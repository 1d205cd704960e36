"""A real local Ray (2 CPUs, no dashboard), one session for the module: `recog serve --ray` replicas, Ray Data batches.

Measured on the 2-core development machine at load average 8-12: ``ray.init`` 12-17 s, then
``recog serve --ray`` in its own process with Serve's controller, proxy and two replicas 20-30 s
more; the whole module 90 s (most of it those starts and three processes importing torch).
Every test here shares the one Ray.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import httpx
import pytest

from recog.scale.batch import batch_predict
from recog.scale.shards import read_job
from tests.scale.conftest import N_PHOTOS

pytestmark = pytest.mark.slow

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session():
    from recog.scale.ray_support import init_ray

    ray = init_ray("the tests", num_cpus=2)
    yield ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def served(ray_session, tiny_bundle, tmp_path_factory):
    """``recog serve --ray`` in its own process, deploying on this module's Ray (``$RAY_ADDRESS``):
    two fixed replicas of the tiny model behind Serve's proxy on a free loopback port."""
    from ray import serve

    from tests.serve.conftest import free_port

    tmp = tmp_path_factory.mktemp("served")
    (tmp / "ray.yaml").write_text("min_replicas: 2\nmax_replicas: 2\nreplica_cpus: 0.5\nhealth_check_period_s: 1\n")
    port = free_port()
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address,
           "RECOG_FACES_DB": str(tmp / "faces.db"), "OMP_NUM_THREADS": "1"}
    with open(tmp / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "recog", "serve", str(tiny_bundle), "--name", "tiny", "--ray",
                                 "--ray-config", str(tmp / "ray.yaml"), "--port", str(port), "--threads", "1"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while not _app_running(serve, "tiny"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"recog serve --ray did not deploy: {(tmp / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield Served(f"http://127.0.0.1:{port}", proc)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@dataclass
class Served:
    url: str
    process: subprocess.Popen


def _app_running(serve, name: str) -> bool:
    from ray.exceptions import RayError

    try:
        app = serve.status().applications.get(name)
    except RayError:  # the controller is not up yet, or recog serve --ray failed (its log says why)
        return False
    return app is not None and getattr(app.status, "value", app.status) == "RUNNING"


def _predict(client: httpx.Client, base: str, image: bytes) -> int:
    try:
        return client.post(f"{base}/v1/models/tiny:predict", content=image,
                           headers={"Content-Type": "image/jpeg"}).status_code
    except httpx.TransportError:
        return 599


def test_a_serve_deployment_answers_like_the_plain_service(served, photo_folder, tiny_bundle):
    import recog

    served = served.url
    image = (photo_folder / "img001.jpg").read_bytes()
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{served}/readyz").json() == {"status": "ready", "models": ["tiny"]}
        r = client.post(f"{served}/v1/models/tiny:predict?top_k=2", content=image,
                        headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        top = r.json()["predictions"][0]["top"]
        expected = recog.load(tiny_bundle).predict(image, top_k=2)
        assert [t["label"] for t in top] == [t.label for t in expected.top]
        assert top[0]["score"] == pytest.approx(expected.score, abs=1e-4)
        bad = client.post(f"{served}/v1/models/tiny:predict", content=b"\xff\xd8\xff\xe0not a jpeg",
                          headers={"Content-Type": "image/jpeg"})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["code"] == "corrupt_image"


def test_traffic_continues_when_a_replica_dies(served, ray_session, photo_folder):
    """Three clients keep predicting while one of the two replicas is killed. A request in flight on the dead
    replica may fail or hang (Serve answers 500, or on a loaded machine the proxy holds it until the client's
    timeout); every request sent once the kill is two seconds old (the controller checks replica health every
    second) is answered 200 by the other replica."""
    ray, served = ray_session, served.url
    image = (photo_folder / "img002.jpg").read_bytes()
    replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::tiny#")]
    assert len(replicas) == 2
    requests: list[tuple[float, float, int]] = []  # (sent, answered, status)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                sent = time.monotonic()
                status = _predict(client, served, image)
                requests.append((sent, time.monotonic(), status))

    clients = [threading.Thread(target=load) for _ in range(3)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
        time.sleep(5.0)
    finally:
        stop.set()
        for client in clients:
            client.join()
    before = [status for sent, answered, status in requests if answered <= killed_at]
    in_flight = [status for sent, answered, status in requests if sent <= killed_at < answered]
    later = [status for sent, answered, status in requests if sent > killed_at + 2.0]
    assert before and set(before) == {200}
    assert len(in_flight) <= 3
    assert len(later) >= 10 and set(later) == {200}, later


def test_sigterm_drains_the_replicas_and_removes_the_deployment(served, ray_session):
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=90) == 0
    alive = [a["name"] for a in ray_session.util.list_named_actors(all_namespaces=True)]
    assert not [name for name in alive if name.startswith("SERVE_")], alive  # replicas, proxy, controller
    with pytest.raises(httpx.TransportError):  # the proxy is gone with Serve
        httpx.get(f"{served.url}/readyz", timeout=5)


def test_ray_data_resumes_a_killed_job_and_matches_the_local_path_row_for_row(ray_session, tiny_bundle, killed,
                                                                              tmp_path):
    local = batch_predict(tiny_bundle, killed.inputs, tmp_path / "local", shard_size=2, top_k=2)
    out = killed.copy(tmp_path / "ray")
    resumed = batch_predict(tiny_bundle, killed.inputs, out, shard_size=2, top_k=2, ray=True, workers=2, threads=1)
    total = N_PHOTOS + 1
    assert resumed.runner == "ray" and resumed.resumed_shards >= killed.shards_at_kill
    assert resumed.rows == total - 2 * resumed.resumed_shards and resumed.failures == local.failures == 1
    a, b = read_job(tmp_path / "local"), read_job(out)
    assert b.column("index").to_pylist() == list(range(total))  # no duplicate, none missing
    for column in ("path", "label", "top_labels", "error_code"):
        assert a.column(column).to_pylist() == b.column(column).to_pylist(), column
    assert a.column("score").to_pylist()[:-1] == pytest.approx(b.column("score").to_pylist()[:-1], abs=1e-6)
