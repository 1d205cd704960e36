"""The ``recog`` command.

Each module named in :data:`COMMAND_MODULES` defines ``register(app)`` which
adds its commands or sub-app. Library errors (:class:`recog.errors.RecogError`)
become one-line messages on stderr and the error's exit code; an ``OSError`` (an
output folder that does not exist, no permission) a one-line message and exit 1.
"""

from __future__ import annotations

import importlib
import sys

import typer

from recog.errors import RecogError

COMMAND_MODULES = ("train", "evaluate", "predict", "embed", "data", "models", "export", "serve", "faces", "search", "audit",
                   "dicom", "features", "explain", "monitor", "boxes", "anomaly", "video", "batch")

app = typer.Typer(name="recog", help="Train, evaluate, optimize and serve image recognition models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                       is_eager=True)) -> None:
    if version:
        from recog import __version__

        typer.echo(__version__)
        raise typer.Exit()


for _name in COMMAND_MODULES:
    importlib.import_module(f"recog.cli.{_name}").register(app)


def fail(message: str, code: int = 1) -> "typer.Exit":
    """Print ``error: message`` to stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, mapping library errors to messages and exit codes."""
    from recog.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    try:
        app(args=argv, prog_name="recog")
    except RecogError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a file the command reads or writes (missing folder, permissions, full disk)
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
