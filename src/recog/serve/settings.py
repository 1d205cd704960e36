"""Service settings: one frozen dataclass, built from defaults < config file < environment < flags.

Example:
    >>> s = load_settings(models={"pets": "runs/pets/best"}, env={})      # doctest: +SKIP
    >>> s.host, s.port, s.max_body_bytes
    ('127.0.0.1', 8000, 10485760)

Environment variables are ``RECOG_SERVE_<FIELD>`` (``RECOG_SERVE_PORT=9000``,
``RECOG_SERVE_MODELS="pets=runs/pets/best,digits=runs/digits/best"``,
``RECOG_SERVE_CORS_ORIGINS="https://a.example,https://b.example"``). The config
file is YAML or JSON whose keys are the field names below; an unknown key is
refused with the closest valid names.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from recog.errors import ConfigError

#: Model names appear in URL paths (``/v1/models/{name}:predict``): no ``/`` and no ``:``.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

ENV_PREFIX = "RECOG_SERVE_"


@dataclass(frozen=True)
class ModelSpec:
    """One served model: its URL name, bundle folder and backend (``auto``, ``torch``, ``onnx``...)."""

    name: str
    path: Path
    backend: str = "auto"

    def __post_init__(self) -> None:
        if not MODEL_NAME_RE.match(self.name):
            raise ConfigError(f"model name {self.name!r} is not usable in a URL.",
                              hint="use letters, digits, '.', '_' or '-' (at most 64 characters), e.g. --name pets")


@dataclass(frozen=True)
class Settings:
    """Everything the service needs; see the module docstring for where values come from.

    Attributes:
        models: the served models, in order; the first is the default.
        host, port: where uvicorn binds. Anything but a loopback address needs ``api_keys_file``.
        api_keys_file: hashed API keys (``recog api-key add FILE``); when set, every ``/v1``
            call needs a key, and admin calls (reload) need an admin key.
        backend: backend for models that do not name one.
        threads: torch intra-op threads per model (None: torch's default).
        max_body_bytes: request body cap, enforced while the body streams in (413 above it).
        max_pixels: decoded pixel cap per image (413 above it), checked from the header.
        max_images_per_request: images one predict call may carry.
        max_batch_size, max_delay_ms: dynamic batching; ``max_batch_size=1`` turns it off.
        max_queue: images admitted per model (queued or running); beyond it 429 + Retry-After.
        request_timeout_s: deadline of one predict call (504 past it, its queue slots freed).
        preprocess_workers: threads that decode and preprocess images off the event loop.
        cors_origins: allowed CORS origins; empty (the default) turns CORS off.
        drain_delay_s: on SIGTERM, how long readiness reports 503 while still serving
            before the listener closes (give load balancers time to notice).
        shutdown_timeout_s: how long in-flight requests may take to finish after that.
        docs: serve OpenAPI docs at /docs and /openapi.json.
        access_log: uvicorn access log lines (off by default: they cost latency).
    """

    models: tuple[ModelSpec, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys_file: Path | None = None
    backend: str = "auto"
    threads: int | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_images_per_request: int = 32
    max_batch_size: int = 8
    max_delay_ms: float = 5.0
    max_queue: int = 256
    request_timeout_s: float = 30.0
    preprocess_workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    cors_origins: tuple[str, ...] = ()
    drain_delay_s: float = 0.0
    shutdown_timeout_s: float = 30.0
    docs: bool = True
    access_log: bool = False
    log_level: str = "info"
    faces_db: Path | None = None  # face collections (SQLite); None: $RECOG_FACES_DB or ~/.recog/faces.db

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"model names must be unique; {', '.join(dupes)} given more than once.",
                              hint="give each bundle its own --name")
        _check_range("port", self.port, 0, 65535)
        _check_range("max_body_bytes", self.max_body_bytes, 1024, 1 << 31)
        _check_range("max_pixels", self.max_pixels, 64, 1 << 34)
        _check_range("max_images_per_request", self.max_images_per_request, 1, 1024)
        _check_range("max_batch_size", self.max_batch_size, 1, 1024)
        _check_range("max_delay_ms", self.max_delay_ms, 0, 10_000)
        _check_range("max_queue", self.max_queue, 1, 1_000_000)
        _check_range("request_timeout_s", self.request_timeout_s, 0.001, 3600)
        _check_range("preprocess_workers", self.preprocess_workers, 1, 256)
        _check_range("drain_delay_s", self.drain_delay_s, 0, 3600)
        _check_range("shutdown_timeout_s", self.shutdown_timeout_s, 0, 3600)
        if self.max_queue < self.max_images_per_request:
            raise ConfigError(f"max_queue ({self.max_queue}) is below max_images_per_request "
                              f"({self.max_images_per_request}); such requests could never be admitted.",
                              hint="raise max_queue or lower max_images_per_request")
        if "*" in self.cors_origins:
            raise ConfigError("cors_origins may not contain '*': name each origin that may call the API.",
                              hint="e.g. --cors-origin https://app.example.com")
        if not is_loopback(self.host) and self.api_keys_file is None:
            raise ConfigError(
                f"refusing to bind {self.host}: only loopback addresses may serve without API keys.",
                hint="create a key file with `recog api-key add keys.txt --name NAME` and pass --api-keys keys.txt, "
                     "or bind 127.0.0.1")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}.")


def default_model_name(path: str | Path) -> str:
    """URL name for a bundle folder: its name, or its parent's for ``runs/NAME/best``.

    Example:
        >>> default_model_name("runs/pets/best")
        'pets'
    """
    p = Path(path).resolve() if str(path) in (".", "") else Path(path)
    name = p.name
    if name in ("best", "last", "final", "latest") and p.parent.name:
        name = p.parent.name
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "model"
    return name[:64]


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, list(_FIELDS), n=3)
    return f"did you mean {', '.join(close)}?" if close else f"valid keys: {', '.join(sorted(_FIELDS))}"


def _parse_models(value: Any, default_backend: str | None = None) -> tuple[ModelSpec, ...]:
    """Models from a mapping ``{name: path | {path, backend}}``, a ``name=path,...`` string or a list."""
    if isinstance(value, tuple) and all(isinstance(v, ModelSpec) for v in value):
        return value
    if isinstance(value, str):
        items: list[tuple[str, Any]] = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, path = part.partition("=")
            items.append((name, path) if sep else (default_model_name(part), part))
        value = dict(items)
    if isinstance(value, (list, tuple)):
        value = {default_model_name(p): p for p in value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"models must map names to bundle folders, got {type(value).__name__}.")
    out = []
    for name, spec in value.items():
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"path", "backend"}
            if unknown or "path" not in spec:
                raise ConfigError(f"model {name!r}: expected keys path and optionally backend, got {sorted(spec)}.")
            out.append(ModelSpec(str(name), Path(spec["path"]), str(spec.get("backend", default_backend or "auto"))))
        else:
            out.append(ModelSpec(str(name), Path(spec), default_backend or "auto"))
    return tuple(out)


def _coerce(name: str, value: Any) -> Any:
    """A value from a file or the environment to the field's type."""
    kind = str(_FIELDS[name].type)
    if value is None:
        return None
    try:
        if name == "models":
            return _parse_models(value)
        if name in ("api_keys_file", "faces_db"):
            return Path(value)
        if name == "cors_origins":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: cannot use {value!r} as {kind}.") from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML or JSON file; unknown keys are refused with suggestions."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file.")
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of setting names to values.")
    for key in data:
        if key not in _FIELDS:
            raise ConfigError(f"{path}: unknown setting {key!r}; {_suggest(key)}")
    return {k: _coerce(k, v) for k, v in data.items()}


def read_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``RECOG_SERVE_*`` variables; an unknown one is refused with suggestions."""
    out: dict[str, Any] = {}
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        key = var[len(ENV_PREFIX):].lower()
        if key not in _FIELDS:
            raise ConfigError(f"unknown environment variable {var}; {_suggest(key)}")
        out[key] = _coerce(key, value)
    return out


def load_settings(*, config_file: str | Path | None = None, env: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Resolve settings: defaults < config file < environment < ``overrides`` (the flags).

    ``overrides`` whose value is None are ignored, so CLI options can pass
    through unset. ``models`` may be a mapping ``{name: path}``.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(read_config_file(config_file))
    values.update(read_env(env))
    for key, value in overrides.items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r}; {_suggest(key)}")
        if value is None or (key in ("models", "cors_origins") and not value):
            continue
        values[key] = _coerce(key, value)
    backend = values.get("backend")
    if backend and "models" in values:
        values["models"] = tuple(m if m.backend != "auto" else dataclasses.replace(m, backend=backend)
                                 for m in values["models"])
    return Settings(**values)
