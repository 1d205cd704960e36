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


class Stopped(Exception):
    """SIGTERM or SIGINT arrived (raised from the signal handler, so it also interrupts a start in progress)."""


def _raise_stopped(signum, frame) -> None:
    raise Stopped(signal.Signals(signum).name)


def serve_with_ray(settings: Settings, options: RayServeOptions) -> None:
    """Serve until SIGTERM/SIGINT (blocking), then shut Serve and Ray down gracefully.

    Replicas get ``shutdown_timeout_s`` to finish their requests; if Ray itself is gone (its
    processes were signalled too: Ctrl-C reaches the whole process group), the wait for Serve's
    shutdown is bounded by the same time plus 10 s, so the command always returns.
    """
    from recog.errors import ConfigError

    if not settings.models:
        raise ConfigError("no model to serve.", hint="pass at least one bundle folder: recog serve runs/NAME/best --ray")
    ray = init_ray("recog serve --ray")
    from ray import serve

    previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        start_serve(settings, options)
        log.warning("Ray Serve: %s at http://%s:%d/ (%d..%d replicas each)", ", ".join(settings.model_names),
                    settings.host, settings.port, options.min_replicas, options.max_replicas)
        threading.Event().wait()  # until a signal raises Stopped
    except Stopped as stop:
        log.warning("%s: shutting Ray Serve down (replicas finish their requests)", stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        closer = threading.Thread(target=serve.shutdown, daemon=True, name="recog-serve-shutdown")
        closer.start()
        closer.join(settings.shutdown_timeout_s + 10)
        if closer.is_alive():
            log.warning("Ray Serve did not confirm its shutdown in %.0f s; stopping Ray",
                        settings.shutdown_timeout_s + 10)
        ray.shutdown()


__all__ = ["Stopped", "serve_with_ray", "start_serve"]
