"""``--where`` metadata filters: a small, safe parser (never ``eval``) compiled to parameterised SQL.

Grammar (keywords case-insensitive)::

    expr    := and ( OR and )*
    and     := not ( AND not )*
    not     := NOT not | primary
    primary := '(' expr ')' | field op value | field [NOT] IN '(' value ( ',' value )* ')'
    op      := = | != | <> | < | <= | > | >=
    value   := 'text' | "text" | number | true | false | null
    field   := name ( '.' name )*          name: letters, digits, _ (not starting with a digit)

``id`` is the item id; every other field is a metadata field (dots reach into
nested JSON objects). Values are always bound as SQL parameters and field
names become JSON paths, also bound, so no part of the filter is ever pasted
into SQL text. A comparison with a field an item lacks is false (SQL ``NULL``
semantics); ``field = null`` matches a missing or null field.

Example:
    >>> parse("category = 'shoes' AND price < 50").sql()[1]
    ['$."category"', 'shoes', '$."price"', 50]
    >>> parse("brand IN ('acme', 'zeta') OR NOT (size >= 42)").fields()
    ['brand', 'size']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

from recog.errors import InvalidInputError

MAX_LENGTH = 4000
MAX_DEPTH = 32
MAX_IN = 1000

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""", re.VERBOSE)

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_SQL_OPS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class _Tok:
    kind: str  # op, punct, number, string, name, kw, end
    text: str
    pos: int
    value: Any = None


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Any, ...]
    negate: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # "AND" | "OR"
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    item: "Node"


Node = Union[Compare, In, BoolOp, Not]


def _error(text: str, pos: int, what: str) -> InvalidInputError:
    pointer = " " * min(pos, 60) + "^"
    shown = text if pos <= 60 else "…" + text[pos - 59:]
    return InvalidInputError(f"--where: {what} at position {pos + 1}:\n  {shown[:120]}\n  {pointer}",
                             hint="e.g. --where \"category = 'shoes' AND price < 50\" "
                                  "(operators = != < <= > >= IN, joined by AND / OR / NOT; text in quotes)")


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        raw = m.group()
        if kind == "string":
            out.append(_Tok("string", raw, pos, raw[1:-1].replace(raw[0] * 2, raw[0])))
        elif kind == "number":
            value: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
            out.append(_Tok("number", raw, pos, value))
        elif kind == "name" and raw.lower() in _KEYWORDS:
            out.append(_Tok("kw", raw.lower(), pos))
        elif kind != "ws":
            out.append(_Tok(kind or "?", raw, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, what: str, tok: _Tok | None = None) -> InvalidInputError:
        tok = tok or self.tok
        found = "the end of the filter" if tok.kind == "end" else repr(tok.text)
        return _error(self.text, tok.pos, f"{what}, found {found}")

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the filter nests deeper than {MAX_DEPTH} levels")
        items = [self.conj()]
        while self.tok.kind == "kw" and self.tok.text == "or":
            self.take()
            items.append(self.conj())
        self.depth -= 1
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def conj(self) -> Node:
        items = [self.negation()]
        while self.tok.kind == "kw" and self.tok.text == "and":
            self.take()
            items.append(self.negation())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def negation(self) -> Node:
        if self.tok.kind == "kw" and self.tok.text == "not":
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"the filter nests deeper than {MAX_DEPTH} levels")
            node = Not(self.negation())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "punct" and tok.text == "(":
            self.take()
            node = self.expr()
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                raise self.fail("expected ')' to close the '(' at position " + str(tok.pos + 1))
            self.take()
            return node
        if tok.kind != "name":
            raise self.fail("expected a field name (such as category) or '('")
        field = self.take().text
        negate = False
        if self.tok.kind == "kw" and self.tok.text == "not":
            self.take()
            negate = True
            if not (self.tok.kind == "kw" and self.tok.text == "in"):
                raise self.fail(f"expected IN after {field} NOT")
        if self.tok.kind == "kw" and self.tok.text == "in":
            self.take()
            return In(field, self.value_list(), negate)
        if self.tok.kind != "op":
            raise self.fail(f"expected an operator (= != < <= > >= IN) after {field}")
        op = _SQL_OPS[self.take().text]
        value = self.value()
        if value is None and op not in ("=", "!="):
            raise self.fail(f"{op} cannot compare with null", self.toks[self.i - 1])
        return Compare(field, op, value)

    def value(self) -> Any:
        tok = self.tok
        if tok.kind in ("string", "number"):
            self.take()
            return tok.value
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            self.take()
            return {"true": True, "false": False, "null": None}[tok.text]
        raise self.fail("expected a value: 'text' in quotes, a number, true, false or null")

    def value_list(self) -> tuple[Any, ...]:
        if not (self.tok.kind == "punct" and self.tok.text == "("):
            raise self.fail("expected '(' to start the IN list")
        self.take()
        values = [self.value()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.take()
            values.append(self.value())
            if len(values) > MAX_IN:
                raise self.fail(f"an IN list holds at most {MAX_IN} values")
        if not (self.tok.kind == "punct" and self.tok.text == ")"):
            raise self.fail("expected ',' or ')' in the IN list")
        self.take()
        if any(v is None for v in values):
            raise self.fail("null is not allowed in an IN list (use field = null)")
        return tuple(values)


@dataclass(frozen=True)
class Filter:
    """A parsed filter; :meth:`sql` gives a parameterised SQL condition over a ``vectors`` row."""

    text: str
    root: Node

    def fields(self) -> list[str]:
        seen: list[str] = []

        def walk(n: Node) -> None:
            if isinstance(n, (Compare, In)):
                if n.field not in seen:
                    seen.append(n.field)
            elif isinstance(n, BoolOp):
                for item in n.items:
                    walk(item)
            else:
                walk(n.item)
        walk(self.root)
        return seen

    def sql(self, *, metadata_column: str = "metadata", id_column: str = "owner",
            prefix: str = "$") -> tuple[str, list[Any]]:
        """``(condition, params)``: fields become ``json_extract(metadata_column, ?)`` with the JSON
        path ``prefix."a"."b"`` bound as a parameter; ``id`` is ``id_column``."""
        params: list[Any] = []

        def column(field: str) -> str:
            if field == "id":
                return id_column
            params.append(prefix + "".join(f'."{part}"' for part in field.split(".")))
            return f"json_extract({metadata_column}, ?)"

        def bind(v: Any) -> Any:
            return int(v) if isinstance(v, bool) else v

        def emit(n: Node) -> str:
            if isinstance(n, Compare):
                col = column(n.field)
                if n.value is None:
                    return f"({col} IS {'NOT ' if n.op == '!=' else ''}NULL)"
                params.append(bind(n.value))
                return f"({col} {n.op} ?)"
            if isinstance(n, In):
                col = column(n.field)
                params.extend(bind(v) for v in n.values)
                return f"({col} {'NOT ' if n.negate else ''}IN ({', '.join('?' * len(n.values))}))"
            if isinstance(n, BoolOp):
                return "(" + f" {n.op} ".join(emit(i) for i in n.items) + ")"
            return f"(NOT {emit(n.item)})"

        return emit(self.root), params


def parse(text: str) -> Filter:
    """Parse a filter expression.

    Raises:
        InvalidInputError: a syntax error; the message shows the text with a caret where it went wrong.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("--where: the filter is empty.", hint="e.g. --where \"category = 'shoes'\"")
    if len(text) > MAX_LENGTH:
        raise InvalidInputError(f"--where: the filter is {len(text)} characters long, more than {MAX_LENGTH}.")
    p = _Parser(text)
    root = p.expr()
    if p.tok.kind != "end":
        raise p.fail("expected AND, OR or the end of the filter")
    return Filter(text, root)
