"""One Ray Serve deployment per model; each replica runs the same FastAPI app as ``recog serve``.

A replica builds :func:`recog.serve.app.create_app` for its one model (in the
replica, not in the driver: the app holds locks, processes and a metrics
registry that do not travel), and Serve runs the app's lifespan: the model loads
and warms, the decode workers start, and only then does Serve route requests to
it. Every route, limit, error body and metric is the plain service's.

- **Health**: Serve calls :meth:`RecogReplica.check_health` every
  ``health_check_period_s``; a replica whose app is not ready (its startup did not
  finish) is reported unhealthy and replaced.
- **Drain**: on scale-down or redeploy Serve stops routing to the replica, waits up to
  ``graceful_shutdown_timeout_s`` (the service's ``shutdown_timeout_s``) for the
  requests it holds, then runs the app's shutdown (batchers drained, workers stopped).

``build(args)`` is the application builder named in the generated Serve config
(``import_path: recog.scale.deployment:build``).
"""

from __future__ import annotations

from typing import Any

from recog.scale.ray_support import require_ray
from recog.scale.serve_options import RayServeOptions, settings_args
from recog.serve.settings import Settings, load_settings


class RecogReplica:
    """The state of one replica: its settings (one model) and, once built, the app."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = load_settings(**settings)
        self.recog_app = None  # not ``app``: Serve's ingress wrapper owns that name

    def __serve_build_asgi_app__(self):
        from recog.serve.app import create_app

        self.recog_app = create_app(self.settings)
        return self.recog_app

    def check_health(self) -> None:
        """Raise (unhealthy: Serve replaces the replica) when the app is up but not serving."""
        state = None if self.recog_app is None else self.recog_app.state.recog
        if state is not None and not state.draining and not state.ready:
            raise RuntimeError(f"recog replica for {', '.join(self.settings.model_names)} is not ready")


def deployment_for(settings: Settings, model: str, options: RayServeOptions | None = None):
    """A bound Serve application: the deployment named ``model`` serving that model of ``settings``."""
    require_ray("a Ray Serve deployment")
    from ray import serve

    options = options or RayServeOptions()
    cls = serve.deployment(serve.ingress()(RecogReplica), name=model)
    return cls.options(**options.deployment_options(settings)).bind(settings_args(settings, model=model,
                                                                                  options=options))


def build(args: dict[str, Any]):
    """Application builder for ``serve deploy`` / ``serve run``: ``args = {"settings": {...one model...}}``.

    Scaling comes from the config file's ``deployments:`` entry (Serve applies it over these defaults).
    """
    from recog.errors import ConfigError

    if set(args) != {"settings"}:
        raise ConfigError(f"recog.scale.deployment:build expects args with one key 'settings', got {sorted(args)}.")
    settings = load_settings(**args["settings"])
    if len(settings.models) != 1:
        raise ConfigError(f"a recog Serve application serves one model, got {len(settings.models)}.",
                          hint="one application per model: recog serve ... --ray --write-config writes them")
    return deployment_for(settings, settings.model_names[0])


__all__ = ["RecogReplica", "build", "deployment_for"]
