"""The query language: text -> a typed tree of frozen nodes, with errors that point at a column.

    group = "baseline" and config.lr < 1e-3 and not status in ("failed", "crashed")
    summary.val_acc >= 0.9 or (has summary.test_acc and tags = "paper")
    name like "gru-%" and started_at >= "2026-11-01"

One grammar for every front end (Python ``where=``, the CLI's ``--where``, the UI's filter box); the
tree is compiled to parameterised SQL by `artifacts.querysql`, so user text never becomes SQL text.
Which fields exist and what type each has is the compiler's business (one schema per entity); the
parser only knows the shapes ``FIELD OP VALUE``, ``FIELD [not] in (...)``, ``FIELD [not] like|glob
PATTERN``, ``has FIELD``, ``not``, ``and``, ``or`` and parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .bounds import INT64_MAX
from .errors import QueryError

__all__ = [
    "And",
    "Compare",
    "Field",
    "Has",
    "In",
    "Literal",
    "Match",
    "Node",
    "Not",
    "Or",
    "QueryError",
    "parse",
    "parse_field",
    "query_error",
]

MAX_QUERY_CHARS = 10_000
MAX_VALUES = 1000  # literals in one query: a huge IN list is refused, not sent to SQLite
MAX_DEPTH = 64  # nesting of parentheses / not


Scalar = str | int | float | bool


@dataclass(frozen=True)
class Field:
    """``config.optimizer.lr`` is Field("config", ("optimizer", "lr")); ``group`` is Field("group")."""

    name: str
    path: tuple[str, ...] = ()
    pos: int = 0

    def __str__(self) -> str:
        return ".".join((self.name, *(_show_key(k) for k in self.path)))


@dataclass(frozen=True)
class Literal:
    value: Scalar
    pos: int = 0


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >=
    value: Literal


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Match:
    field: Field
    kind: str  # like | glob
    pattern: Literal
    negated: bool = False


@dataclass(frozen=True)
class Has:
    field: Field


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | In | Match | Has | Not | And | Or


def query_error(text: str, pos: int, message: str) -> QueryError:
    """One line: what is wrong, the column, and the query with a caret before the offending token."""
    pos = max(0, min(pos, len(text)))
    shown = text if len(text) <= 200 else text[max(0, pos - 80) : pos + 80]
    at = pos if len(text) <= 200 else pos - max(0, pos - 80)
    flat = " ".join(shown.splitlines())
    return QueryError(
        f"invalid query at column {pos + 1}: {message}: {flat[:at]}^{flat[at:]}",
        text=text,
        pos=pos,
    )


# -- tokens ------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?<![\w\-.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z0-9_.]))
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*|\d+)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "like", "glob", "has", "true", "false", "null"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num str op punct word kw end
    text: str
    pos: int
    value: object = None


def _unquote(text: str, raw: str, pos: int) -> str:
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise query_error(text, pos + i + 1, f"unknown escape \\{nxt} in a string")
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            if ch in "\"'":
                raise query_error(text, i, "unterminated string")
            raise query_error(text, i, f"unexpected character {ch!r}")
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "num":
            number = float(raw)
            is_int = re.fullmatch(r"[-+]?\d+", raw) is not None
            if not is_int and number in (float("inf"), float("-inf")):
                raise query_error(text, i, f"number {raw[:40]} is out of range")
            if is_int and (len(raw) > 20 or not -INT64_MAX - 1 <= int(raw) <= INT64_MAX):
                raise query_error(
                    text, i, f"integer {raw[:40]} is out of range: integers must fit in 64 bits "
                    "(write 1e20 for a large number)",
                )
            value: object = int(raw) if is_int else number
            toks.append(_Tok("num", raw, i, value))
        elif kind == "str":
            toks.append(_Tok("str", raw, i, _unquote(text, raw, i)))
        elif kind == "word" and raw.lower() in _KEYWORDS:
            toks.append(_Tok("kw", raw.lower(), i))
        elif kind != "ws":
            toks.append(_Tok(kind, raw, i))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# -- the parser --------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.values = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, tok: _Tok, message: str) -> QueryError:
        return query_error(self.text, tok.pos, message)

    def expect(self, kind: str, text: str, what: str) -> _Tok:
        tok = self.take()
        if tok.kind != kind or tok.text != text:
            raise self.error(tok, f"expected {what}, found {_describe(tok)}")
        return tok

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.text in words

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error(self.peek(), "empty query")
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            hint = "unbalanced ')'" if tok.text == ")" else f"unexpected {_describe(tok)}"
            raise self.error(tok, hint + " (join conditions with and / or)")
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.is_kw("or"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Node:
        parts = [self.not_()]
        while self.is_kw("and"):
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def not_(self) -> Node:
        if self.is_kw("not"):
            tok = self.take()
            self.nest(tok)
            node = Not(self.not_())
            self.depth -= 1
            return node
        return self.atom()

    def nest(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(tok, f"nested more than {MAX_DEPTH} levels deep")

    def atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.take()
            self.nest(tok)
            node = self.or_()
            close = self.peek()
            if close.kind != "punct" or close.text != ")":
                raise query_error(
                    self.text, tok.pos, f"unbalanced '(': no ')' before {_describe(close)}"
                )
            self.take()
            self.depth -= 1
            return node
        if self.is_kw("has"):
            self.take()
            return Has(self.field())
        field = self.field()
        negated = False
        if self.is_kw("not"):
            self.take()
            negated = True
            if not self.is_kw("in", "like", "glob"):
                raise self.error(self.peek(), "expected in, like or glob after 'not'")
        tok = self.peek()
        if self.is_kw("in"):
            self.take()
            return In(field, self.value_list(), negated)
        if self.is_kw("like", "glob"):
            self.take()
            pattern = self.literal()
            if not isinstance(pattern.value, str):
                raise query_error(self.text, pattern.pos, f"{tok.text} takes a quoted pattern")
            return Match(field, tok.text, pattern, negated)
        if tok.kind == "op":
            self.take()
            op = {"==": "=", "<>": "!="}.get(tok.text, tok.text)
            return Compare(field, op, self.literal())
        raise self.error(tok, f"expected an operator after {field} (= != < <= > >= in like glob)")

    def field(self) -> Field:
        tok = self.take()
        if tok.kind != "word":
            if tok.kind == "kw":
                raise self.error(tok, f"expected a field name, found the keyword {tok.text!r}")
            raise self.error(tok, f"expected a field name, found {_describe(tok)}")
        path: list[str] = []
        while self.peek().kind == "punct" and self.peek().text == ".":
            self.take()
            seg = self.take()
            if seg.kind == "str":
                path.append(str(seg.value))
            elif seg.kind in ("word", "kw") or (seg.kind == "num" and seg.text.isdigit()):
                path.append(seg.text)
            else:
                raise self.error(seg, f"expected a key after '{tok.text}.', found {_describe(seg)}")
        return Field(tok.text, tuple(path), tok.pos)

    def literal(self) -> Literal:
        tok = self.take()
        self.values += 1
        if self.values > MAX_VALUES:
            raise self.error(tok, f"more than {MAX_VALUES} values in one query")
        if tok.kind in ("num", "str"):
            return Literal(tok.value, tok.pos)  # type: ignore[arg-type]
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return Literal(tok.text == "true", tok.pos)
        if tok.kind == "kw" and tok.text == "null":
            raise self.error(tok, "null is not a value here; use `has FIELD` or `not has FIELD`")
        if tok.kind == "word":
            raise self.error(tok, f"expected a value, found {tok.text!r} (quote strings)")
        raise self.error(tok, f"expected a value, found {_describe(tok)}")

    def value_list(self) -> tuple[Literal, ...]:
        self.expect("punct", "(", "'(' after in")
        values = [self.literal()]
        while self.peek().kind == "punct" and self.peek().text == ",":
            self.take()
            values.append(self.literal())
        tok = self.peek()
        if tok.kind != "punct" or tok.text != ")":
            raise self.error(
                tok, f"expected ',' or ')' in the in (...) list, found {_describe(tok)}"
            )
        self.take()
        return tuple(values)


def _describe(tok: _Tok) -> str:
    return "the end of the query" if tok.kind == "end" else repr(tok.text)


def _show_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else '"' + key.replace('"', '\\"') + '"'


def parse(text: str) -> Node:
    """Parse a query; raises `QueryError` (one line, with the column and a caret) on bad input."""
    if not isinstance(text, str):
        raise QueryError(f"a query is a string, not {type(text).__name__}", text="", pos=0)
    if len(text) > MAX_QUERY_CHARS:
        raise query_error(
            text[:MAX_QUERY_CHARS], MAX_QUERY_CHARS, f"longer than {MAX_QUERY_CHARS} characters"
        )
    return _Parser(text).parse()


def parse_field(text: str) -> Field:
    """One field name alone, as in ``order_by`` or ``by=``: ``summary.val_acc``, ``group``."""
    if not isinstance(text, str):
        raise QueryError(f"a field name is a string, not {type(text).__name__}", text="", pos=0)
    p = _Parser(text)
    field = p.field()
    if p.peek().kind != "end":
        raise p.error(p.peek(), f"unexpected {_describe(p.peek())} after the field name")
    return field
