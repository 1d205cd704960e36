"""Service settings: one frozen pydantic-settings model; flags > environment > config file > defaults.

Example:
    >>> s = load_settings(models={"pets": "runs/pets/best"}, env={})      # doctest: +SKIP
    >>> s.host, s.port, s.max_body_bytes
    ('127.0.0.1', 8000, 10485760)

Environment variables are ``RECOG_SERVE_<FIELD>`` (``RECOG_SERVE_PORT=9000``,
``RECOG_SERVE_MODELS="pets=runs/pets/best,digits=runs/digits/best"``,
``RECOG_SERVE_CORS_ORIGINS="https://a.example,https://b.example"``). The config
file is YAML or JSON whose keys are the field names below. An unknown key,
variable or flag is refused with the closest valid names; every error is a
:class:`~recog.errors.ConfigError`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (BaseSettings, EnvSettingsSource, InitSettingsSource, PydanticBaseSettingsSource,
                               SettingsConfigDict)

from recog.errors import ConfigError, did_you_mean

#: Model names appear in URL paths (``/v1/models/{name}:predict``): no ``/`` and no ``:``.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

ENV_PREFIX = "RECOG_SERVE_"

#: An ``allowed_hosts`` entry: a host name (a leading dot for its subdomains) or a bracketed IPv6 address.
_HOST_NAME_RE = re.compile(r"\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")

#: What :func:`load_settings` layers under the flags: (environment, config file values); (None, None) is
#: os.environ and no file, which is what a plain ``Settings()`` reads.
_LAYERS: ContextVar[tuple[Mapping[str, str] | None, dict[str, Any] | None]] = ContextVar(
    "recog_serve_settings_layers", default=(None, None))


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


class Settings(BaseSettings):
    """Everything the service needs; see the module docstring for where values come from.

    Attributes:
        models: the served models, in order; the first is the default.
        host, port: where uvicorn binds. Anything but a loopback address needs ``api_keys_file``.
        api_keys_file: hashed API keys (``recog api-key add FILE``); when set, every ``/v1``
            call needs a key, and admin calls (reload) need an admin key. Without it the
            face routes (biometric data) and other write routes are refused (403).
        allow_open_faces: serve the face routes without API keys (no key file): on purpose
            only, for a single-user machine; the service logs a warning at start.
        allowed_hosts: host names (``Host`` header) accepted besides the bound address and
            loopback (``localhost``, 127.0.0.1, ::1), e.g. the name a reverse proxy forwards;
            a leading dot allows subdomains (``.example.com``). Refusing other names stops DNS
            rebinding. ``*`` turns the check off (behind a proxy that already checks it).
        backend: backend for models that do not name one.
        threads: torch intra-op threads per model (None: torch's default).
        max_body_bytes: request body cap, enforced while the body streams in (413 above it).
        max_pixels: decoded pixel cap per image (413 above it), checked from the header.
        max_images_per_request: images one predict call may carry.
        max_batch_size, max_delay_ms: dynamic batching; ``max_batch_size=1`` turns it off.
        max_queue: images admitted per model (queued or running), and for the face routes;
            beyond it 429 + Retry-After.
        request_timeout_s: deadline of one call (504 past it, its queue slots freed).
        preprocess_workers: worker processes that decode and preprocess untrusted images
            (killed and replaced when a request's deadline passes; see
            :mod:`recog.serve.decoding`), and threads for face analysis.
        cors_origins: allowed CORS origins; empty (the default) turns CORS off. Browser
            writes (POST, DELETE) are accepted only from these origins and the service's own.
        drain_delay_s: on SIGTERM, how long readiness reports 503 while still serving
            before the listener closes (give load balancers time to notice).
        shutdown_timeout_s: how long in-flight requests may take to finish after that.
        docs: serve OpenAPI docs at /docs and /openapi.json.
        access_log: uvicorn access log lines (off by default: they cost latency).
        faces_db: face collections (SQLite); None: ``$RECOG_FACES_DB`` or ``~/.recog/faces.db``.
        log_predictions: opt-in prediction log (SQLite; :mod:`recog.monitor.log`); None: off.
        log_images: store each logged image's bytes too (for ``recog feedback export``).
        log_max_rows: the log keeps the newest this many predictions.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, frozen=True, extra="forbid")

    models: tuple[ModelSpec, ...] = ()
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys_file: Path | None = None
    allow_open_faces: bool = False
    allowed_hosts: tuple[str, ...] = ()
    backend: str = "auto"
    threads: int | None = None
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1 << 31)
    max_pixels: int = Field(50_000_000, ge=64, le=1 << 34)
    max_images_per_request: int = Field(32, ge=1, le=1024)
    max_batch_size: int = Field(8, ge=1, le=1024)
    max_delay_ms: float = Field(5.0, ge=0, le=10_000)
    max_queue: int = Field(256, ge=1, le=1_000_000)
    request_timeout_s: float = Field(30.0, ge=0.001, le=3600)
    preprocess_workers: int = Field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)), ge=1, le=256)
    cors_origins: tuple[str, ...] = ()
    drain_delay_s: float = Field(0.0, ge=0, le=3600)
    shutdown_timeout_s: float = Field(30.0, ge=0, le=3600)
    docs: bool = True
    access_log: bool = False
    log_level: str = "info"
    faces_db: Path | None = None
    log_predictions: Path | None = None
    log_images: bool = False
    log_max_rows: int = Field(1_000_000, ge=100, le=1 << 40)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: keyword arguments (the flags), ``RECOG_SERVE_*`` variables, the config file."""
        environ, file_values = _LAYERS.get()
        return (init_settings, _EnvSource(settings_cls, os.environ if environ is None else environ),
                InitSettingsSource(settings_cls, file_values or {}))

    @model_validator(mode="before")
    @classmethod
    def _models_with_backend(cls, data: Any) -> Any:
        """Parse ``models``; those that name no backend (or ``auto``) get the ``backend`` setting."""
        if isinstance(data, dict) and data.get("models") is not None:
            models = parse_models(data["models"])
            backend = data.get("backend")
            if backend:
                models = tuple(m if m.backend != "auto" else replace(m, backend=str(backend)) for m in models)
            data = {**data, "models": models}
        return data

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if host != "*" and not _HOST_NAME_RE.fullmatch(host):
                raise ConfigError(f"allowed host {host!r} is not a host name (no scheme, port or path).",
                                  hint="e.g. --allowed-host recog.example.com, or .example.com for subdomains")
        return tuple(h.lower() for h in value)

    @model_validator(mode="after")
    def _safe(self) -> "Settings":
        names = self.model_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"model names must be unique; {', '.join(dupes)} given more than once.",
                              hint="give each bundle its own --name")
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
        return self

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def warnings(self) -> list[str]:
        """What an operator must know at start: protections turned off on purpose."""
        out = []
        if self.allow_open_faces and self.api_keys_file is None:
            out.append("face recognition is open: /v1/faces and /v1/collections (biometric data: enroll, "
                       "identify, delete) answer any caller on this machine without an API key "
                       "(--allow-open-faces). Use --api-keys FILE unless this machine has one user.")
        if "*" in self.allowed_hosts:
            out.append("the Host header check is off (--allowed-host '*'): only do this behind a proxy that "
                       "checks it, or pages on other sites can reach the service through DNS rebinding.")
        return out


#: Fields whose environment value is a comma-separated list.
_COMMA_LISTS = ("models", "cors_origins", "allowed_hosts")


def _suggest(key: str) -> str:
    return did_you_mean(key, Settings.model_fields) or f"valid keys: {', '.join(sorted(Settings.model_fields))}"


class _EnvSource(EnvSettingsSource):
    """``RECOG_SERVE_*`` variables of ``environ`` (not necessarily ``os.environ``); unknown ones are refused."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ
        for var in environ:
            key = var[len(ENV_PREFIX):].lower()
            if var.upper().startswith(ENV_PREFIX) and key not in settings_cls.model_fields:
                raise ConfigError(f"unknown environment variable {var}; {_suggest(key)}")
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:  # the hook DotEnvSettingsSource overrides too
        return {k.lower(): v for k, v in self.environ.items()}

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        if field_name in _COMMA_LISTS:  # "a=x,b=y" and "https://a,https://b", not JSON: the validators split them
            return value
        return super().prepare_field_value(field_name, field, value, value_is_complex)


def _config_error(exc: ValidationError) -> ConfigError:
    """One line per problem, in the words of the old hand-written checks."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting {name!r}; {_suggest(name)}")
        elif err["type"] in ("greater_than_equal", "less_than_equal") and name in Settings.model_fields:
            bounds = {type(m).__name__: m for m in Settings.model_fields[name].metadata}
            lines.append(f"{name} must be between {bounds['Ge'].ge} and {bounds['Le'].le}, got {value}.")
        else:
            lines.append(f"setting {name}: cannot use {value!r} ({err['msg'][0].lower()}{err['msg'][1:]}).")
    return ConfigError(" ".join(lines))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


def parse_models(value: Any) -> tuple[ModelSpec, ...]:
    """Models from a mapping ``{name: path | {path, backend}}``, a ``name=path,...`` string or a list of paths."""
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
            out.append(ModelSpec(str(name), Path(spec["path"]), str(spec.get("backend", "auto"))))
        else:
            out.append(ModelSpec(str(name), Path(spec)))
    return tuple(out)


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
        if key not in Settings.model_fields:
            raise ConfigError(f"{path}: unknown setting {key!r}; {_suggest(key)}")
    if data.get("models") is not None:  # parsed here: a layer's models replace a lower layer's, never merge
        data["models"] = parse_models(data["models"])
    return data


def load_settings(*, config_file: str | Path | None = None, env: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Resolve settings: defaults < config file < environment (``env``, default ``os.environ``) < ``overrides``.

    ``overrides`` are the flags: those whose value is None (or an empty ``models``,
    ``cors_origins`` or ``allowed_hosts``) are ignored, so CLI options can pass through unset.
    ``models`` may be a mapping ``{name: path}``.

    Raises:
        ConfigError: an unknown key, variable or flag, a bad value, or an unsafe combination.
    """
    flags = {}
    for key, value in overrides.items():
        if key not in Settings.model_fields:
            raise ConfigError(f"unknown setting {key!r}; {_suggest(key)}")
        if value is None or (key in _COMMA_LISTS and not value):
            continue
        flags[key] = parse_models(value) if key == "models" else value
    file_values = read_config_file(config_file) if config_file is not None else None
    token = _LAYERS.set((env, file_values))
    try:
        return Settings(**flags)
    finally:
        _LAYERS.reset(token)
