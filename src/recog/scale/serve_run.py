"""``recog serve --ray``: start Ray Serve (here, or on the cluster in ``$RAY_ADDRESS``) and serve until stopped.

Serve's HTTP proxy binds ``settings.host:settings.port`` (the same rule as the
plain service: anything but loopback needs API keys), each model becomes an
application (:func:`recog.scale.serve_options.route_prefix`) whose deployment
autoscales by :class:`~recog.scale.serve_options.RayServeOptions`. SIGTERM or
SIGINT shuts Serve down gracefully: replicas finish what they hold (up to
``shutdown_timeout_s``), then Ray stops.
"""

from __future__ import annotations

import logging
import signal
import threading

from recog.scale.ray_support import init_ray
from recog.scale.serve_options import RayServeOptions, route_prefix
from recog.serve.settings import Settings

log = logging.getLogger("recog.serve")


def start_serve(settings: Settings, options: RayServeOptions) -> None:
    """Deploy every model of ``settings`` on the running Ray (non-blocking); waits until they are healthy."""
    from ray import serve

    from recog.scale.deployment import deployment_for

    serve.start(http_options={"host": settings.host, "port": settings.port})
    for name in settings.model_names:
        serve.run(deployment_for(settings, name, options), name=name, route_prefix=route_prefix(settings, name),
                  blocking=False)


def serve_with_ray(settings: Settings, options: RayServeOptions) -> None:
    """Serve until SIGTERM/SIGINT (blocking), then shut Serve and Ray down gracefully."""
    from recog.errors import ConfigError

    if not settings.models:
        raise ConfigError("no model to serve.", hint="pass at least one bundle folder: recog serve runs/NAME/best --ray")
    ray = init_ray("recog serve --ray")
    from ray import serve

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        start_serve(settings, options)
        log.warning("Ray Serve: %s at http://%s:%d/ (%d..%d replicas each)", ", ".join(settings.model_names),
                    settings.host, settings.port, options.min_replicas, options.max_replicas)
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        serve.shutdown()
        ray.shutdown()


__all__ = ["serve_with_ray", "start_serve"]
