"""``--subset`` expressions: select corpus rows by their metadata, without ``eval``.

Grammar (case-sensitive column names, case-insensitive keywords)::

    expr    := or
    or      := and (("or" | "||") and)*
    and     := not (("and" | "&&") not)*
    not     := ("not" | "!") not | atom
    atom    := "(" expr ")" | NAME OP LITERAL | NAME
    OP      := "==" | "=" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "!~" | "in" | "not in"
    LITERAL := number | 'text' | "text" | true | false | null | "[" LITERAL ("," LITERAL)* "]"

``~`` is a regular-expression *search* in the value's text (``source ~ 'portraits/'``), ``!~``
its negation; ``in`` tests membership in a list. A bare ``NAME`` is true when the value is
truthy. A row without the column compares as ``null``: ``==``/``!=`` against ``null`` work, any
other comparison with it is false. Numbers compare as numbers, ``true``/``false`` as booleans
(a row's ``"true"``/``"false"`` text counts as the boolean).

Examples
--------
>>> rows = [{"face": True, "source": "a/portraits/1.jpg"}, {"face": False, "source": "b/x.jpg"}]
>>> [bool(parse_subset("face == true")(r)) for r in rows]
[True, False]
>>> [bool(parse_subset("source ~ 'portraits/' or not face")(r)) for r in rows]
[True, True]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["SubsetError", "parse_subset", "subset_columns"]

Predicate = Callable[[dict], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|!~|&&|\|\||[<>=~!()\[\],])
      | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null", "none"}


class SubsetError(ValueError):
    """A ``--subset`` expression that does not parse; the message shows where."""


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SubsetError(f"subset {text!r}: unexpected character at {pos}: {text[pos:]!r}")
        kind = match.lastgroup
        raw = match.group(kind)
        start = match.start(kind)
        if kind == "number":
            tokens.append(("lit", float(raw) if any(c in raw for c in ".eE") else int(raw), start))
        elif kind == "string":
            body = raw[1:-1]
            tokens.append(("lit", re.sub(r"\\(.)", r"\1", body), start))
        elif kind == "name" and raw.lower() in _KEYWORDS:
            word = raw.lower()
            if word in ("true", "false"):
                tokens.append(("lit", word == "true", start))
            elif word in ("null", "none"):
                tokens.append(("lit", None, start))
            else:
                tokens.append(("kw", word, start))
        else:
            tokens.append((kind, raw, start))
        pos = match.end()
    return tokens


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _compare(op: str, value: Any, literal: Any) -> bool:
    if op in ("~", "!~"):
        found = value is not None and re.search(str(literal), str(value)) is not None
        return found if op == "~" else not found
    if op in ("in", "not in"):
        inside = value in literal or _as_bool(value) in literal
        return inside if op == "in" else not inside
    if isinstance(literal, bool) or literal is None:
        equal = _as_bool(value) == literal if literal is not None else value is None
        if op in ("==", "="):
            return equal
        if op == "!=":
            return not equal
        return False
    if isinstance(literal, (int, float)):
        if value is None:
            number = None
        elif isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        if number is None:
            return op == "!="
        value = number
    elif value is None:
        return op == "!="
    else:
        value = str(value)
    return {
        "==": value == literal,
        "=": value == literal,
        "!=": value != literal,
        "<": value < literal,
        "<=": value <= literal,
        ">": value > literal,
        ">=": value >= literal,
    }[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.columns: set[str] = set()

    def _peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _error(self, what: str) -> SubsetError:
        token = self._peek()
        where = f"at {token[2]} ({token[1]!r})" if token else "at the end"
        return SubsetError(f"subset {self.text!r}: {what} {where}")

    def _accept(self, kind: str, *values: Any) -> Any:
        token = self._peek()
        if token and token[0] == kind and (not values or token[1] in values):
            self.pos += 1
            return token[1]
        return None

    def parse(self) -> Predicate:
        if not self.tokens:
            raise SubsetError("subset expression is empty")
        predicate = self._or()
        if self._peek() is not None:
            raise self._error("unexpected token")
        return predicate

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._accept("kw", "or") or self._accept("op", "||"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._not()]
        while self._accept("kw", "and") or self._accept("op", "&&"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def _not(self) -> Predicate:
        if self._accept("kw", "not") or self._accept("op", "!"):
            inner = self._not()
            return lambda row: not inner(row)
        return self._atom()

    def _literal(self) -> Any:
        token = self._peek()
        if token and token[0] == "lit":
            self.pos += 1
            return token[1]
        if self._accept("op", "["):
            items = [self._literal()]
            while self._accept("op", ","):
                items.append(self._literal())
            if not self._accept("op", "]"):
                raise self._error("expected ']'")
            return items
        raise self._error("expected a value (number, 'text', true, false, null or [list])")

    def _atom(self) -> Predicate:
        if self._accept("op", "("):
            inner = self._or()
            if not self._accept("op", ")"):
                raise self._error("expected ')'")
            return inner
        name = self._accept("name")
        if name is None:
            raise self._error("expected a column name")
        self.columns.add(name)
        op = self._accept("op", "==", "=", "!=", "<", "<=", ">", ">=", "~", "!~")
        if op is None and self._accept("kw", "in"):
            op = "in"
        elif op is None and self._peek() and self._peek()[1] == "not":
            following = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
            if following and following[1] == "in":
                self.pos += 2
                op = "not in"
        if op is None:
            return lambda row: bool(_as_bool(row.get(name)))
        literal = self._literal()
        if op in ("in", "not in") and not isinstance(literal, list):
            raise SubsetError(f"subset {self.text!r}: {name} {op} needs a [list]")
        if op in ("~", "!~"):
            try:
                re.compile(str(literal))
            except re.error as exc:
                raise SubsetError(f"subset {self.text!r}: bad pattern {literal!r}: {exc}") from None
        if op in ("<", "<=", ">", ">=") and (isinstance(literal, (bool, list)) or literal is None):
            raise SubsetError(f"subset {self.text!r}: {name} {op} {literal!r} is not ordered")
        return lambda row: _compare(op, row.get(name), literal)


def parse_subset(expression: str) -> Predicate:
    """Compile a subset expression into ``predicate(row) -> bool`` (see the module docstring).

    Raises
    ------
    SubsetError
        When the expression does not parse; the message quotes it and shows the position.
    """
    return _Parser(expression).parse()


def subset_columns(expression: str) -> set[str]:
    """The column names an expression reads (to check them against the corpus' columns)."""
    parser = _Parser(expression)
    parser.parse()
    return parser.columns
