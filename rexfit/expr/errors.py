"""The one exception of the expression language."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from rexfit.errors import RexfitError


class ExpressionError(RexfitError):
    """A syntax or name error at ``position``, a 0-based offset into the parsed text."""

    def __init__(self, message: str, position: int):
        super().__init__(message, position)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return self.message

    def locate(self, text: str) -> tuple[int, int]:
        """Return (0-based line offset, 1-based column) of the error within ``text``."""
        pos = min(max(self.position, 0), len(text))
        line_start = text.rfind("\n", 0, pos) + 1
        return text.count("\n", 0, pos), pos - line_start + 1


def unknown_message(kind: str, name: str, known: Iterable[str], extra: Iterable[str] = ()) -> str:
    """``unknown <kind> 'name'; did you mean 'x'? (known: ...)``; ``extra`` are only suggested."""
    known = list(known)
    candidates = known + [e for e in extra if e not in known]
    close = [c for c in candidates if c.lower() == name.lower()]
    close = close or difflib.get_close_matches(name, candidates, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(known) or 'none'})"
