"""Ray Serve options for ``recog serve --ray``: autoscaling from flags or a YAML file, and the Serve config.

Example:
    >>> opts = load_serve_options(overrides={"min_replicas": 1, "max_replicas": 8})
    >>> opts.autoscaling_config()["max_replicas"]
    8

A YAML file (``--ray-config serve.yaml``) holds the field names of
:class:`RayServeOptions`; flags override it; an unknown key is refused with the
closest names. :func:`serve_config` turns settings + options into the config file
that ``serve deploy serve.yaml`` takes to a running Ray cluster: one application
per model, each with one deployment named after the model.

Decisions where Ray's defaults do not fit an image service:

- ``upscale_delay_s`` 5 s (Ray: 30 s): a load step gets replicas in seconds.
- ``downscale_delay_s`` 60 s (Ray: 600 s).
- ``max_ongoing_requests`` defaults to twice ``target_ongoing`` and at least the
  service's batch size, so a replica can fill a batch while the autoscaler aims at
  ``target_ongoing`` requests per replica.
- ``graceful_shutdown_timeout_s`` is the service's ``shutdown_timeout_s``: a replica
  that is scaled down or redeployed finishes the requests it holds, as ``recog serve``
  does on SIGTERM.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from recog.errors import ConfigError, did_you_mean
from recog.serve.settings import Settings


@dataclass(frozen=True)
class RayServeOptions:
    """How each model's deployment scales (per model: every model gets these).

    Attributes:
        min_replicas, max_replicas: autoscaling bounds; equal numbers fix the count.
        target_ongoing: requests in flight per replica the autoscaler aims at.
        initial_replicas: replicas at start (None: ``min_replicas``).
        max_ongoing: most requests one replica holds at once (None: see the module docstring).
        replica_cpus: CPUs Ray reserves for each replica (fractions allowed).
        upscale_delay_s, downscale_delay_s: how long a need must last before replicas are added / removed.
        health_check_period_s, health_check_timeout_s: Serve's replica health checks.
    """

    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing: float = 2.0
    initial_replicas: int | None = None
    max_ongoing: int | None = None
    replica_cpus: float = 1.0
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 60.0
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise ConfigError(f"replicas: need 0 <= min ({self.min_replicas}) <= max ({self.max_replicas}) "
                              "and max >= 1.", hint="e.g. --min-replicas 1 --max-replicas 8")
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ConfigError(f"initial_replicas {self.initial_replicas} is outside "
                              f"{self.min_replicas}..{self.max_replicas}.")
        if self.target_ongoing <= 0:
            raise ConfigError(f"target_ongoing must be above 0, got {self.target_ongoing}.",
                              hint="e.g. --target-ongoing 4")
        if self.max_ongoing is not None and self.max_ongoing < 1:
            raise ConfigError(f"max_ongoing must be at least 1, got {self.max_ongoing}.")
        if self.replica_cpus <= 0:
            raise ConfigError(f"replica_cpus must be above 0, got {self.replica_cpus}.")
        for name in ("upscale_delay_s", "downscale_delay_s", "health_check_period_s", "health_check_timeout_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}.")

    def autoscaling_config(self) -> dict[str, Any]:
        """Ray Serve's ``autoscaling_config`` for these options."""
        out: dict[str, Any] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                               "target_ongoing_requests": self.target_ongoing,
                               "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s}
        if self.initial_replicas is not None:
            out["initial_replicas"] = self.initial_replicas
        return out

    def deployment_options(self, settings: Settings) -> dict[str, Any]:
        """Keyword arguments of ``Deployment.options`` (the ``deployments:`` entry of a Serve config)."""
        max_ongoing = self.max_ongoing or max(int(2 * self.target_ongoing + 0.999), settings.max_batch_size)
        return {"autoscaling_config": self.autoscaling_config(), "max_ongoing_requests": max_ongoing,
                "ray_actor_options": {"num_cpus": self.replica_cpus},
                "health_check_period_s": self.health_check_period_s,
                "health_check_timeout_s": self.health_check_timeout_s,
                "graceful_shutdown_timeout_s": settings.shutdown_timeout_s,
                "graceful_shutdown_wait_loop_s": 1.0}


_FIELDS = tuple(f.name for f in fields(RayServeOptions))


def load_serve_options(config_file: str | Path | None = None, *,
                       overrides: Mapping[str, Any] | None = None) -> RayServeOptions:
    """Options from a YAML/JSON file (field names of :class:`RayServeOptions`), then flags (None: unset).

    Raises:
        ConfigError: a missing or malformed file, an unknown key, a bad value.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_read(Path(config_file)))
    for key, value in (overrides or {}).items():
        _check_key(key, "flag")
        if value is not None:
            values[key] = value
    try:
        return RayServeOptions(**values)
    except TypeError as exc:  # a value of the wrong type reaching a comparison
        raise ConfigError(f"Ray Serve options: {exc}.") from None


def _check_key(key: str, where: str) -> None:
    if key not in _FIELDS:
        raise ConfigError(f"{where}: unknown Ray Serve option {key!r}; "
                          f"{did_you_mean(key, _FIELDS) or 'valid keys: ' + ', '.join(_FIELDS)}")


def _read(path: Path) -> dict[str, Any]:
    from recog.engine.config import read_yaml  # the one YAML loader of option files

    data = read_yaml(path)
    for key, value in data.items():
        _check_key(str(key), str(path))
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{path}: {key} must be a number, got {value!r}.")
    return data


def settings_args(settings: Settings, *, model: str | None = None,
                  options: RayServeOptions | None = None) -> dict[str, Any]:
    """``settings`` as JSON-ready keyword arguments of :func:`recog.serve.settings.load_settings`.

    With ``model``, only that model (a replica of one deployment serves one model).
    Bundle paths become absolute: replicas run in other processes, possibly on other machines.
    With ``options`` and no ``preprocess_workers`` given, each replica gets as many decode
    processes as it reserves CPUs (the plain service's default, up to 4, is per machine).
    """
    values = settings.model_dump(mode="json", exclude={"models"}, exclude_defaults=True)
    if options is not None and "preprocess_workers" not in settings.model_fields_set:
        values["preprocess_workers"] = max(1, min(4, round(options.replica_cpus)))
    values["models"] = {m.name: {"path": str(Path(m.path).resolve()), "backend": m.backend}
                        for m in settings.models if model is None or m.name == model}
    for key in ("api_keys_file", "faces_db", "log_predictions"):
        if values.get(key):
            values[key] = str(Path(values[key]).resolve())
    return values


def route_prefix(settings: Settings, model: str) -> str:
    """``/`` for the first (default) model, ``/NAME`` for the others (Serve routes by path prefix)."""
    return "/" if model == settings.model_names[0] else f"/{model}"


def serve_config(settings: Settings, options: RayServeOptions) -> dict[str, Any]:
    """The Serve config file (``serve deploy``): HTTP options and one application per model.

    Example:
        >>> cfg = serve_config(settings, RayServeOptions())       # doctest: +SKIP
        >>> cfg["applications"][0]["import_path"]
        'recog.scale.deployment:build'
    """
    apps = []
    for name in settings.model_names:
        deployment = {"name": name, **options.deployment_options(settings)}
        apps.append({"name": name, "route_prefix": route_prefix(settings, name),
                     "import_path": "recog.scale.deployment:build",
                     "args": {"settings": settings_args(settings, model=name, options=options)},
                     "deployments": [deployment]})
    return {"proxy_location": "EveryNode", "http_options": {"host": settings.host, "port": settings.port},
            "applications": apps}


def write_serve_config(path: str | Path, settings: Settings, options: RayServeOptions) -> Path:
    """Write :func:`serve_config` as YAML, with a header saying how to use it."""
    import yaml

    path = Path(path)
    header = ("# Ray Serve config written by `recog serve --ray --write-config`.\n"
              "# Deploy on a running Ray cluster with:  serve deploy " + path.name + "\n"
              "# Bundle paths must exist at the same place on every node (e.g. a read-only volume).\n")
    path.write_text(header + yaml.safe_dump(serve_config(settings, options), sort_keys=False))
    return path


__all__ = ["RayServeOptions", "load_serve_options", "route_prefix", "serve_config", "settings_args",
           "write_serve_config"]
