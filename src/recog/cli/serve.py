"""``recog serve``: run the recognition service; ``recog api-key add``: create an API key."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        bundles: list[Path] = typer.Argument(None, help="Bundle folders to serve (runs/NAME/best). The first is the default model."),
        name: list[str] = typer.Option(None, "--name", "-n", help="URL name per bundle, in order (default: the run's folder name)."),
        host: Optional[str] = typer.Option(None, help="Address to bind [default 127.0.0.1]; others need --api-keys."),
        port: Optional[int] = typer.Option(None, "--port", "-p", help="Port [default 8000]."),
        backend: Optional[str] = typer.Option(None, help="auto, torch, onnx, onnx-int8 ... [default auto]."),
        api_keys: Optional[Path] = typer.Option(None, "--api-keys", help="Hashed API key file (recog api-key add). Without it the face routes are refused."),
        allow_open_faces: Optional[bool] = typer.Option(None, "--allow-open-faces", help="Serve the face routes (biometric data) without API keys, on purpose; prints a warning."),
        allowed_host: list[str] = typer.Option(None, "--allowed-host", help="Accept this Host name besides the bound address and loopback (repeatable; .example.com for subdomains)."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML/JSON settings file."),
        max_batch_size: Optional[int] = typer.Option(None, help="Images per inference batch; 1 turns batching off [8]."),
        max_delay_ms: Optional[float] = typer.Option(None, help="Most a batch waits to fill, in ms [5]."),
        max_queue: Optional[int] = typer.Option(None, help="Images queued per model before 429 [256]."),
        timeout: Optional[float] = typer.Option(None, "--timeout", help="Request deadline in seconds (504 past it) [30]."),
        max_body_mb: Optional[float] = typer.Option(None, help="Request body cap in MB [10]."),
        max_pixels: Optional[int] = typer.Option(None, help="Decoded pixel cap per image [50000000]."),
        threads: Optional[int] = typer.Option(None, help="Inference threads per model [torch default]."),
        cors_origin: list[str] = typer.Option(None, "--cors-origin", help="Allow this browser origin (repeatable); CORS is off by default."),
        drain_delay: Optional[float] = typer.Option(None, help="Seconds of 503 readiness after SIGTERM before closing [0]."),
        access_log: Optional[bool] = typer.Option(None, "--access-log/--no-access-log", help="uvicorn access log [off]."),
        faces_db: Optional[Path] = typer.Option(None, "--faces-db", help="Face collections database for /v1/faces and /v1/collections [$RECOG_FACES_DB or ~/.recog/faces.db]."),
        log_predictions: Optional[Path] = typer.Option(None, "--log-predictions", help="Log every classification to this SQLite file (opt-in; face routes are never logged)."),
        log_images: Optional[bool] = typer.Option(None, "--log-images", help="Store the logged images' bytes too (for `recog feedback export`)."),
        ray: bool = typer.Option(False, "--ray", help="Serve on Ray Serve: one autoscaling deployment per model (needs recog's 'ray' extra); $RAY_ADDRESS names a cluster."),
        ray_config: Optional[Path] = typer.Option(None, "--ray-config", help="With --ray: YAML file of Ray Serve options (min_replicas, max_replicas, target_ongoing, ...)."),
        min_replicas: Optional[int] = typer.Option(None, "--min-replicas", help="With --ray: fewest replicas per model [1]."),
        max_replicas: Optional[int] = typer.Option(None, "--max-replicas", help="With --ray: most replicas per model [4]."),
        target_ongoing: Optional[float] = typer.Option(None, "--target-ongoing", help="With --ray: requests in flight per replica the autoscaler aims at [2]."),
        replica_cpus: Optional[float] = typer.Option(None, "--replica-cpus", help="With --ray: CPUs reserved per replica [1]."),
        write_config: Optional[Path] = typer.Option(None, "--write-config", help="With --ray: write a Ray Serve config for `serve deploy` to this file and exit."),
    ) -> None:
        """Serve bundles over HTTP: JSON API under /v1, web page at /, metrics at /metrics.

        Settings come from flags, then RECOG_SERVE_* environment variables, then --config.
        With --ray the same app runs in Ray Serve replicas that scale with traffic.
        """
        from recog.serve.server import serve
        from recog.serve.settings import default_model_name, load_settings

        models = None
        if bundles:
            names = list(name or [])
            if len(names) > len(bundles):
                raise typer.BadParameter(f"{len(names)} --name values for {len(bundles)} bundles.")
            names += [default_model_name(b) for b in bundles[len(names):]]
            models = dict(zip(names, bundles))
            if len(models) != len(bundles):
                raise typer.BadParameter("two bundles would get the same name; give each a --name.")
        settings = load_settings(
            config_file=config, models=models, host=host, port=port, backend=backend, api_keys_file=api_keys,
            max_batch_size=max_batch_size, max_delay_ms=max_delay_ms, max_queue=max_queue,
            request_timeout_s=timeout, max_body_bytes=None if max_body_mb is None else int(max_body_mb * 1024 * 1024),
            max_pixels=max_pixels, threads=threads, cors_origins=tuple(cors_origin or ()),
            drain_delay_s=drain_delay, access_log=access_log, faces_db=faces_db, allow_open_faces=allow_open_faces,
            allowed_hosts=tuple(allowed_host or ()), log_predictions=log_predictions, log_images=log_images)
        _check_bundles(settings)  # warnings (--allow-open-faces, ...) are logged at start, by the app
        ray_flags = {"min_replicas": min_replicas, "max_replicas": max_replicas, "target_ongoing": target_ongoing,
                     "replica_cpus": replica_cpus}
        given = [f"--{k.replace('_', '-')}" for k, v in ray_flags.items() if v is not None]
        given += [flag for flag, v in (("--ray-config", ray_config), ("--write-config", write_config)) if v is not None]
        if given and not ray:
            raise typer.BadParameter(f"{', '.join(given)} only work with --ray.")
        if ray:
            from recog.scale.serve_options import load_serve_options, write_serve_config

            options = load_serve_options(ray_config, overrides=ray_flags)
            if write_config is not None:
                typer.echo(f"wrote {write_serve_config(write_config, settings, options)}; "
                           f"deploy it with: serve deploy {write_config}", err=True)
                return
            from recog.scale.serve_run import serve_with_ray

            typer.echo(f"serving {', '.join(settings.model_names)} on Ray Serve at "
                       f"http://{settings.host}:{settings.port}/", err=True)
            serve_with_ray(settings, options)
            return
        typer.echo(f"serving {', '.join(settings.model_names)} at http://{settings.host}:{settings.port}/ "
                   f"(API: /v1/models, docs: /docs)", err=True)
        serve(settings)

    keys_app = typer.Typer(help="Manage API keys (stored hashed; each key is shown once).", no_args_is_help=True)

    @keys_app.command("add")
    def add_cmd(file: Path = typer.Argument(..., help="Key file to create or append to."),
                name: str = typer.Option(..., "--name", help="Who or what uses the key (one word)."),
                admin: bool = typer.Option(False, "--admin", help="Allow admin operations (model reload).")) -> None:
        """Create a key, store its hash in FILE, print the key once."""
        from recog.serve.auth import add_key

        key = add_key(file, name=name, role="admin" if admin else "user")
        typer.echo(key)
        typer.echo(f"stored the hash of this {'admin' if admin else 'user'} key in {file}; "
                   "the key itself is not stored anywhere, keep it now.", err=True)

    app.add_typer(keys_app, name="api-key")


def _check_bundles(settings) -> None:
    """Fail before binding when a bundle is missing or tampered (the lifespan loads it for real)."""
    from recog.models.bundle import read_manifest

    for spec in settings.models:
        read_manifest(spec.path)
