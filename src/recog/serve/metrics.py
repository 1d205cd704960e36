"""Prometheus metrics and the edge middleware every request passes first.

Metrics (one registry per app, served at ``/metrics``):

- ``recog_http_requests_total{method,route,status}``
- ``recog_http_request_duration_seconds{route}`` (histogram)
- ``recog_batch_size{model}`` (histogram of images per inference call)
- ``recog_inference_duration_seconds{model}`` (histogram of one batch's inference)
- ``recog_queue_depth{model}`` (images admitted and not yet answered)
- ``recog_rejections_total{model,reason}`` (queue_full, deadline)
- ``recog_model_reloads_total{model,result}``
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from recog.errors import PayloadTooLargeError
from recog.serve.problems import PROBLEM_JSON, problem_bytes

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServeMetrics:
    """The service's Prometheus collectors, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("recog_http_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("recog_http_request_duration_seconds", "Time to answer an HTTP request.",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("recog_batch_size", "Images per inference call.", ["model"],
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.inference = Histogram("recog_inference_duration_seconds", "Inference time of one batch.",
                                   ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("recog_queue_depth", "Images admitted and not yet answered.", ["model"],
                                 registry=r)
        self.rejections = Counter("recog_rejections", "Requests refused by the batcher.", ["model", "reason"],
                                  registry=r)
        self.reloads = Counter("recog_model_reloads", "Model reload attempts.", ["model", "result"], registry=r)

    def observer(self, model: str) -> "ModelObserver":
        return ModelObserver(self, model)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ModelObserver:
    """Feeds one model's batching events into :class:`ServeMetrics` (a :class:`BatchObserver`)."""

    def __init__(self, metrics: ServeMetrics, model: str) -> None:
        self._batch = metrics.batch_size.labels(model)
        self._inference = metrics.inference.labels(model)
        self._depth = metrics.queue_depth.labels(model)
        self._rejections = metrics.rejections
        self._model = model

    def batch(self, size: int, seconds: float) -> None:
        self._batch.observe(size)
        self._inference.observe(seconds)

    def depth(self, items: int) -> None:
        self._depth.set(items)

    def rejected(self, reason: str) -> None:
        self._rejections.labels(self._model, reason).inc()


_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


class EdgeMiddleware:
    """First code every HTTP request meets (pure ASGI, so it adds microseconds, not milliseconds).

    - Body cap: a declared ``Content-Length`` over ``max_body_bytes`` is answered 413 before
      any byte is read; an undeclared (chunked) body is counted as it streams and the read
      fails with :class:`PayloadTooLargeError` the moment it passes the cap.
    - Metrics: request count and latency per route template.
    - Security headers: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``.
    """

    def __init__(self, app, *, metrics: ServeMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        cap = self.max_body_bytes
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                break
        try:
            if declared is not None and declared > cap:
                await self._refuse(send_wrapper, f"the request body is {declared:,} bytes; the limit is "
                                                 f"{cap:,} bytes. Send a smaller image (resize it) or fewer images.")
                return
            received = 0

            async def capped_receive():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > cap:
                        raise PayloadTooLargeError(
                            f"the request body passed the {cap:,}-byte limit while streaming.",
                            hint="send a smaller image (resize it) or fewer images per request")
                return message

            await self.app(scope, capped_receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/")
                                                        else "unmatched")
            self.metrics.requests.labels(scope["method"], template, str(status[0])).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - start)

    @staticmethod
    async def _refuse(send, detail: str) -> None:
        body = problem_bytes(413, PayloadTooLargeError.code, detail)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
