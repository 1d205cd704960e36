"""``python -m recog.serve BUNDLE... [options]``: the same as ``recog serve``."""

from __future__ import annotations

import sys

import typer

from recog.errors import RecogError


def main(argv: list[str] | None = None) -> None:
    from recog.cli.serve import register

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    try:
        app(args=["serve", *(sys.argv[1:] if argv is None else argv)], prog_name="python -m recog.serve")
    except RecogError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
