"""Reference pages generated from the code, so they cannot drift from it.

* ``cli_markdown()``: every ``recog`` command, walked from the Typer app
  (:data:`recog.cli.main.app`): usage, help text, arguments and options with their defaults.
* ``http_markdown()``: every HTTP route of ``recog.serve.create_app(settings).openapi()``:
  method, path, summary, parameters, request body types and responses.

Used by the MkDocs hook ``on_files`` below (``hooks: [scripts/docs_reference.py]`` in
``mkdocs.yml``), which adds both pages to the site at build time without writing them
into ``docs/``. ``python scripts/docs_reference.py cli|http`` prints a page.
"""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Any

CLI_PAGE = "reference/cli.md"
HTTP_PAGE = "reference/http.md"


def _cell(text: Any) -> str:
    """One Markdown table cell: no newlines, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    if annotation is None or annotation is inspect.Parameter.empty:
        return ""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (list, tuple) and args:
        return f"{_type_name(args[0])} ..."
    if args and type(None) in args:  # Optional[X]
        return _type_name(next(a for a in args if a is not type(None)))
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _param_row(param: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    is_argument = type(param).__name__.endswith("Argument")
    if is_argument:
        names = f"`{param.name.upper()}`" + (" ..." if param.nargs == -1 else "")
    descriptor = getattr(param, "type_descriptor", None)
    kind = "flag" if getattr(param, "is_flag", False) else _type_name(getattr(descriptor, "annotation", None))
    if param.required:
        default = "required"
    elif param.default is None or param.default == () or is_argument:
        default = ""
    else:
        default = f"`{param.default}`"
    return f"| {names} | {_cell(kind)} | {default} | {_cell(param.help or '')} |"


def _command_section(command: Any, path: list[str], ctx: Any, out: list[str]) -> None:
    level = min(2 + len(path), 4)
    title = " ".join(["recog", *path]) if path else "recog"
    out.append(f"{'#' * level} `{title}`\n")
    if command.help:
        out.append(inspect.cleandoc(command.help).replace("\b\n", "") + "\n")
    pieces = " ".join(command.collect_usage_pieces(ctx))
    out.append(f"Usage: `{title} {pieces}`\n")
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        out.append("| argument / option | type | default | help |\n|---|---|---|---|")
        out.extend(_param_row(p) for p in params)
        out.append("")
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            _command_section(sub, [*path, name], sub.context_class(sub, info_name=name, parent=ctx), out)


def cli_markdown() -> str:
    """The CLI reference page: every command of the Typer app, in the order ``recog --help`` lists them."""
    import typer

    from recog.cli.main import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="recog")
    out = ["# Command line reference\n",
           "Generated at build time from the Typer app (`recog.cli.main.app`) by `scripts/docs_reference.py`; "
           "`recog COMMAND --help` prints the same. Errors print one line, `error: ...`, on stderr and exit "
           "with the error's code (see `recog.errors`).\n"]
    _command_section(root, [], ctx, out)
    return "\n".join(out)


def _schema_type(schema: dict[str, Any]) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(t for t in (_schema_type(s) for s in schema["anyOf"]) if t and t != "null")
    kind = schema.get("type", "")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    return kind


def _schema_default(schema: dict[str, Any]) -> str:
    return f"`{schema['default']}`" if "default" in schema else ""


def http_markdown() -> str:
    """The HTTP reference page from the service's OpenAPI schema (a service with no models loaded)."""
    from recog.serve import create_app, load_settings

    schema = create_app(load_settings(env={})).openapi()
    out = ["# HTTP API reference\n",
           f"Generated at build time from the service's OpenAPI schema ({schema['info']['title']} "
           f"{schema['info']['version']}, OpenAPI {schema['openapi']}) by `scripts/docs_reference.py`. "
           "A running service serves the same schema at `/openapi.json` and an interactive page at `/docs` "
           "(Swagger UI from the service itself, no CDN). Errors are `application/problem+json` with a stable "
           "`code`; which routes need an API key is on the [Security](../security.md) page.\n"]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            tag = (op.get("tags") or [path.split("/")[2] if path.startswith("/v1/") else "service"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, op))
    for tag, ops in by_tag.items():
        out.append(f"## {tag}\n")
        for method, path, op in ops:
            out.append(f"### `{method} {path}`\n")
            summary = op.get("summary", "")
            description = inspect.cleandoc(op.get("description", ""))
            if summary and not description.startswith(summary):
                out.append(summary + "\n")
            if description:
                out.append(description + "\n")
            params = op.get("parameters", [])
            if params:
                out.append("| parameter | in | type | default | description |\n|---|---|---|---|---|")
                for p in params:
                    s = p.get("schema", {})
                    name = f"`{p['name']}`" + (" (required)" if p.get("required") else "")
                    out.append(f"| {name} | {p['in']} | {_cell(_schema_type(s))} | {_cell(_schema_default(s))} | "
                               f"{_cell(p.get('description', s.get('description', '')))} |")
                out.append("")
            body = op.get("requestBody")
            if body:
                kinds = ", ".join(f"`{k}`" for k in body.get("content", {}))
                out.append(f"Request body: {kinds}" + (" (required)" if body.get("required") else "") + "\n")
            responses = op.get("responses", {})
            grouped: dict[str, list[str]] = {}
            for status, r in responses.items():
                grouped.setdefault(_cell(r.get("description", "")), []).append(status)
            if grouped:
                out.append("| status | description |\n|---|---|")
                out.extend(f"| {', '.join(codes)} | {text} |" for text, codes in grouped.items())
                out.append("")
    return "\n".join(out)


# ---- MkDocs hook -------------------------------------------------------------------------------------------

def on_files(files: Any, config: Any) -> Any:
    """Add the generated reference pages to the build (they exist only in the built site)."""
    from mkdocs.structure.files import File

    for uri, make in ((CLI_PAGE, cli_markdown), (HTTP_PAGE, http_markdown)):
        files.append(File.generated(config, uri, content=make()))
    return files


if __name__ == "__main__":
    pages = {"cli": cli_markdown, "http": http_markdown}
    if len(sys.argv) != 2 or sys.argv[1] not in pages:
        sys.exit("usage: python scripts/docs_reference.py cli|http")
    print(pages[sys.argv[1]]())
