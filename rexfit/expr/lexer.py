"""Tokens of the expression language, produced lazily so errors come in text order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from .errors import ExpressionError


class Token(NamedTuple):
    kind: str  # "number", "name", "op" or "end"
    text: str
    position: int


_SPACE = re.compile(r"\s*", re.ASCII)
_TOKEN = re.compile(
    r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|<=|>=|==|!=|&&|\|\||[-+*/^(),?:<>])",
    re.ASCII,
)
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]+", re.ASCII)
_HINTS = {
    "=": "; use '==' to compare",
    "&": "; use '&&' for logical and",
    "|": "; use '||' for logical or",
    "!": "; there is no logical not (use 'x == 0')",
    "'": "; strings are not supported",
    '"': "; strings are not supported",
    ".": " (attribute access is not supported)",
}


def tokenize(text: str) -> Iterator[Token]:
    """Yield the tokens of ``text``, ending with an ``end`` token; raise ExpressionError on bad input."""
    pos = 0
    while True:
        pos = _SPACE.match(text, pos).end()
        if pos == len(text):
            yield Token("end", "", pos)
            return
        m = _TOKEN.match(text, pos)
        if m is None:
            char = text[pos]
            raise ExpressionError(f"unexpected character {char!r}{_HINTS.get(char, '')}", pos)
        if m.group() == "**":
            raise ExpressionError("'**' is not an operator; use ^ for powers", pos)
        if m.lastgroup == "number" and (tail := _NUMBER_TAIL.match(text, m.end())):
            raise ExpressionError(f"malformed number {text[pos:tail.end()]!r}", pos)
        yield Token(m.lastgroup, m.group(), pos)
        pos = m.end()
