"""Words of a potential file with the line each came from, and their conversion to finite
numbers; every reader of a potential file (``*_files.py``) reads through this module, so each
bad value is reported as ``path:line: message`` at the line of the offending word.

:class:`PotentialFileError` is both an :class:`~rexfit.errors.InputError` (the command line
prints it located and exits 2) and a ``ValueError`` (what the readers' callers catch).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from rexfit.errors import InputError, Origin


class PotentialFileError(InputError, ValueError):
    """A malformed potential file; ``str()`` is ``"path:line: message"``."""

    def __init__(self, message: str, path, line: int):
        super().__init__(message, Origin(str(path), max(int(line), 1)))


class Token(NamedTuple):
    """One whitespace-separated word of a file and its 1-based line number."""

    text: str
    line: int


def read_text(path, kind: str) -> str:
    """The text of a potential file; a missing or unreadable file is a located error."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise PotentialFileError(f"cannot read {kind} file: {exc.strerror or exc}", path, 1) \
            from None


def source_text(source, kind: str) -> tuple[str, str]:
    """(text, name for messages) of a path, or of the text itself (a string with newlines)."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source):
        return read_text(source, kind), str(source)
    return str(source), f"{kind} file"


def line_words(text: str, comment: str | None = "#") -> Iterator[list[Token]]:
    """The tokens of each non-blank line (text after ``comment`` removed), line by line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if comment is not None:
            line = line.split(comment, 1)[0]
        words = line.split()
        if words:
            yield [Token(w, number) for w in words]


def tokens(text: str, comment: str | None = "#") -> list[Token]:
    """Every token of ``text`` in order (comments removed)."""
    return [tok for words in line_words(text, comment) for tok in words]


def to_float(tok: Token, path, what: str, *, fortran: bool = False) -> float:
    """The finite float written as ``tok`` (``fortran``: also ``1.0D+00``), else a located
    :class:`PotentialFileError` naming ``what`` it should have been."""
    text = tok.text.replace("D", "E").replace("d", "e") if fortran else tok.text
    try:
        value = float(text)
    except ValueError:
        raise PotentialFileError(f"bad number {tok.text!r} in {what} (expected a number)",
                                 path, tok.line) from None
    if not math.isfinite(value):
        raise PotentialFileError(f"{what}: {tok.text!r} is not a finite number (every number "
                                 "in a potential file must be finite)", path, tok.line)
    return value


def to_int(tok: Token, path, what: str) -> int:
    """The integer written as ``tok``, else a located :class:`PotentialFileError`."""
    try:
        return int(tok.text)
    except ValueError:
        raise PotentialFileError(f"bad integer {tok.text!r} in {what} (expected an integer)",
                                 path, tok.line) from None


def to_floats(toks, path, what: str, *, fortran: bool = False) -> np.ndarray:
    """A float64 array of the tokens, each checked by :func:`to_float`."""
    return np.array([to_float(t, path, f"{what} (value {k + 1})", fortran=fortran)
                     for k, t in enumerate(toks)], dtype=np.float64)


def check_finite(value, path, line: int, what: str) -> None:
    """Raise a located error if any of ``value`` (a number or array, e.g. parsed JSON) is not
    finite."""
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f" at index {list(at)}" if at else ""
        raise PotentialFileError(f"{what} is not finite{where} ({arr[bad][0]}); every number "
                                 "in a potential file must be finite", path, line)
