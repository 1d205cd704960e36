"""Fenced code blocks of the documentation and what their comment says to do with them.

An example (a block in an executable language) carries an HTML comment on the nearest
non-blank line above it: ``<!-- run: PATH=FIXTURE ... -->`` (``<!-- run -->`` when it needs no
files) or ``<!-- not run: REASON -->``. See docs/writing-docs.md.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.fixtures import REPO

SHELL = frozenset({"bash", "sh", "shell", "console"})
PYTHON = frozenset({"python", "py"})
EXECUTABLE = SHELL | PYTHON

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<verb>run|not run)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language and code, and its comment (verb '' when none)."""

    file: str          # relative to the repository root
    line: int          # 1-based line of the opening fence
    lang: str
    code: str
    verb: str = ""     # "run", "not run" or "" (no comment)
    arg: str = ""      # fixtures for "run", the reason for "not run"
    fixtures: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def executable(self) -> bool:
        return self.lang in EXECUTABLE


def doc_files() -> list[Path]:
    """The Markdown files whose examples must run: docs/**/*.md and README.md."""
    return [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md"]


def parse_fixtures(arg: str) -> dict[str, str]:
    """``"photo.jpg=cat runs/x=bundle"`` -> ``{"photo.jpg": "cat", "runs/x": "bundle"}``.

    Raises:
        ValueError: an item that is not PATH=FIXTURE, or a path leaving the example's folder.
    """
    spec: dict[str, str] = {}
    for item in arg.split():
        path, sep, name = item.partition("=")
        if not sep or not path or not name:
            raise ValueError(f"{item!r} is not PATH=FIXTURE")
        if path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"{path!r} must stay inside the example's folder")
        spec[path] = name
    return spec


def blocks(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file, with the comment that precedes it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = path.relative_to(REPO).as_posix()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m["fence"], i
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        indent = len(m["indent"])
        code = "\n".join(line[indent:] for line in lines[start + 1:j]) + "\n"
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        c = _COMMENT.match(lines[k]) if k >= 0 else None
        verb, arg = (c["verb"], c["arg"] or "") if c else ("", "")
        fixtures = parse_fixtures(arg) if verb == "run" else {}
        out.append(Block(rel, start + 1, m["lang"].lower(), code, verb, arg, fixtures))
        i = j + 1
    return out


def all_blocks() -> list[Block]:
    return [b for f in doc_files() for b in blocks(f)]


_OPERATOR_CHARS = set("|&;<>()")


def recog_command_lines(code: str) -> Iterator[list[str]]:
    """The arguments of every ``recog ...`` command in a shell block (pipes, redirects, ``&&`` and comments cut)."""
    for line in code.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        words: list[str] = []
        for token in [*lex, ";"]:
            if set(token) <= _OPERATOR_CHARS:
                if words and words[0] == "recog":
                    yield words[1:]
                words = []
            else:
                words.append(token)


def parse_recog_command(args: list[str]) -> None:
    """Parse ``recog ARGS`` with the real command tree, running nothing.

    Raises:
        click's UsageError (NoSuchOption, MissingParameter, BadParameter...): a command, option or
        argument the CLI does not have, or one it needs that the line lacks.
    """
    import typer

    from recog.cli.main import app

    def parse(command, words: list[str], name: str, parent=None) -> None:
        ctx = command.make_context(name, list(words), parent=parent)
        if hasattr(command, "resolve_command"):
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            sub_name, sub, rest = command.resolve_command(ctx, rest)
            parse(sub, rest, sub_name, ctx)

    parse(typer.main.get_command(app), args, "recog")
