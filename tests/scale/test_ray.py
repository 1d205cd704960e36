"""A real local Ray (2 CPUs, loopback, no dashboard), one session for the module: Serve replicas, Ray Data batches.

Ray's own start (``ray.init`` + Serve's controller and proxy) takes 10-25 s on the
2-core CI machine; every test here shares that one start.
"""

from __future__ import annotations

import threading
import time

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
    """Two fixed replicas of the tiny model behind Serve's proxy on a free loopback port."""
    from ray import serve

    from recog.scale.serve_options import load_serve_options
    from recog.scale.serve_run import start_serve
    from recog.serve.settings import load_settings
    from tests.serve.conftest import free_port

    settings = load_settings(models={"tiny": str(tiny_bundle)}, port=free_port(), preprocess_workers=1, threads=1,
                             faces_db=tmp_path_factory.mktemp("faces") / "faces.db", env={})
    options = load_serve_options(overrides={"min_replicas": 2, "max_replicas": 2, "replica_cpus": 0.5,
                                            "health_check_period_s": 1})
    start_serve(settings, options)
    yield f"http://127.0.0.1:{settings.port}"
    serve.delete("tiny")


def _predict(client: httpx.Client, base: str, image: bytes) -> int:
    try:
        return client.post(f"{base}/v1/models/tiny:predict", content=image,
                           headers={"Content-Type": "image/jpeg"}).status_code
    except httpx.TransportError:
        return 599


def test_a_serve_deployment_answers_like_the_plain_service(served, photo_folder, tiny_bundle):
    import recog

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
    ray = ray_session
    image = (photo_folder / "img002.jpg").read_bytes()
    replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::tiny#")]
    assert len(replicas) == 2
    statuses: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                status = _predict(client, served, image)
                statuses.append((time.monotonic(), status))  # when it ended: in flight at the kill counts as after

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
        time.sleep(3.0)
    finally:
        stop.set()
        worker.join()
    after = [s for t, s in statuses if t > killed_at]
    before = [s for t, s in statuses if t <= killed_at]
    assert before and set(before) == {200}
    # only the request in flight on the dead replica fails (Serve answers 500); the other replica takes the rest
    assert len(after) >= 10 and after.count(200) >= len(after) - 1, after
    assert after[-5:] == [200] * 5


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
