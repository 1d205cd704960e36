"""Run the service under uvicorn, with a graceful drain on SIGTERM.

On SIGTERM: readiness turns 503 at once and every response from then on says
``Connection: close`` (:mod:`recog.serve.guard`), so keep-alive clients make
their next request on a new connection; after ``drain_delay_s`` (time for a load
balancer to notice) the listener closes; connections that are still open get
:data:`KEEPALIVE_GRACE_S` more to deliver a request already on its way (answered,
with ``Connection: close``) before idle ones are closed; requests in flight
finish (up to ``shutdown_timeout_s``); batchers stop; the process exits 0.

Why the grace: uvicorn closes idle keep-alive connections the moment the
listener closes, and a client that had just sent its next request on one lost
it to a reset (16 of 16 keep-alive clients did under load; with a 1 s grace one
in 16 still did on a loaded 2-core CI machine). Connections answered with
``Connection: close`` leave at once, so the grace only waits on keep-alive
connections that have been quiet since the signal; it matches uvicorn's 5 s
keep-alive timeout, which closes any connection idle longer anyway. After the
grace, a client either got its answer or finds the port closed (connection
refused: the request was never sent, so retrying it is safe).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from recog.serve.settings import Settings, load_settings

log = logging.getLogger("recog.serve")

#: Seconds open connections keep being served after the listener closes (see the module docstring).
KEEPALIVE_GRACE_S = 5.0


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["loggers"]["recog"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return cfg


def _make_server(app, settings: Settings):
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn server whose SIGTERM drains: readiness 503, optional delay, graceful stop, exit 0."""

        _timer: threading.Timer | None = None

        def handle_exit(self, sig: int, frame) -> None:
            app.state.recog.draining = True
            if sig != signal.SIGTERM:
                return super().handle_exit(sig, frame)
            # SIGTERM is the orchestrator's normal stop: finish the work and exit 0
            # (uvicorn would otherwise re-raise the signal after shutdown).
            if settings.drain_delay_s > 0 and not self.should_exit:
                if self._timer is None:
                    log.info("SIGTERM: readiness is 503; closing the listener in %.1f s", settings.drain_delay_s)
                    self._timer = threading.Timer(settings.drain_delay_s, self._stop)
                    self._timer.daemon = True
                    self._timer.start()
            else:
                self._stop()

        def _stop(self) -> None:
            self.should_exit = True

        async def shutdown(self, sockets=None) -> None:
            app.state.recog.draining = True  # also when uvicorn stops for another reason
            for server in self.servers:  # stop accepting; open connections keep being served
                server.close()
            for sock in sockets or []:
                sock.close()
            end = time.monotonic() + KEEPALIVE_GRACE_S
            while self.server_state.connections and time.monotonic() < end and not self.force_exit:
                await asyncio.sleep(0.02)
            await super().shutdown()  # closes idle connections, waits for requests in flight, lifespan

    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=_log_config(settings.log_level),
                            log_level=settings.log_level, access_log=settings.access_log,
                            timeout_graceful_shutdown=int(settings.shutdown_timeout_s) or None,
                            server_header=False, proxy_headers=False, lifespan="on")
    return DrainingServer(config)


def serve(settings: Settings) -> None:
    """Serve ``settings.models`` until SIGTERM/SIGINT (blocking)."""
    from recog.errors import ConfigError
    from recog.serve.app import create_app

    if not settings.models:
        raise ConfigError("no model to serve.", hint="pass at least one bundle folder: recog serve runs/NAME/best")
    server = _make_server(create_app(settings), settings)
    server.run()
    if not server.started:
        raise SystemExit(3)  # startup failed (bad bundle, port in use); uvicorn logged why


def run_server(models: dict[str, str | Path], host: str = "127.0.0.1", port: int = 8000, **settings: Any) -> None:
    """Serve bundles by name until stopped (blocking); the library face of ``recog serve``.

    Args:
        models: URL name → bundle folder, e.g. ``{"digits": "runs/digits/best"}``.
        host: the address to bind (anything but loopback needs ``api_keys_file=...``).
        port: the TCP port.
        settings: any other :class:`~recog.serve.settings.Settings` field.

    Example:
        >>> run_server({"digits": "runs/digits/best"}, port=8000)   # doctest: +SKIP
    """
    serve(load_settings(models=dict(models), host=host, port=port, **settings))
