"""LAMMPS ``pair_style meam/spline`` potential files, read (host-side, NumPy only); the writer
is :func:`rexfit.export.meam.write_meam_spline`.

A file holds cubic splines in a fixed order: the pair terms φ, the densities ρ, the
embedding energies U, the three-body radial factors f and the angular factors g.  With n
elements that is n(n+1)/2 φ, n ρ, n U, n f and n(n+1)/2 g splines; pair-indexed splines run
over (a, b), a ≤ b in file order: (0,0), (0,1), ..., (0,n−1), (1,1), ...  ρ_b and f_b belong
to the *neighbour* element b, U_a to the central atom, g_bc to the two neighbours.

Two layouts exist, and LAMMPS reads both:

* the old single-element layout (Lenosky et al.; no element names): line 1 a comment, then
  per spline the knot count N, a line "d0 dN" (end slopes), one line LAMMPS ignores (flags of
  the original fitting code), and N lines "x y y''" (the y'' column is ignored);
* the multi-element layout: line 1 a comment, line 2 ``meam/spline <n> <el1> ... <eln>``, and
  per spline a line ``spline3eq``, N, "d0 dN" and the N knot lines.

Words are read as LAMMPS's text reader does: ``#`` starts a comment, blank lines are skipped
and a record may run over several lines until it has enough words; the lines LAMMPS skips
unread (line 1, the old layout's flag line and the ``spline3eq`` line) are taken as they
come.  LAMMPS (without its non-default compile switch) accepts only knots on a uniform grid,
|x_0 + k·h − x_k| ≤ 1e−8 with h = (x_{N−1} − x_0)/(N − 1); so does this reader.  A ``UNITS:``
tag in line 1 must say ``metal``.  Malformed files raise :class:`MEAMFileError` (a
``ValueError``) naming the file and line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rexfit.errors import InputError, Origin
from rexfit.potentials.tokens import PotentialFileError, Token, read_text

#: LAMMPS's tolerance for "the knots are on a uniform grid" (Å, or density/cosine units).
GRID_TOLERANCE = 1e-8


class MEAMFileError(PotentialFileError):
    """A malformed meam/spline file; ``str()`` is "path:line: message"."""

    def __init__(self, message: str, origin: Origin):
        InputError.__init__(self, message, origin)


@dataclass(frozen=True, eq=False)
class SplineData:
    """One clamped cubic spline: knots x_k (N,), values y_k (N,), end slopes d0 and dN.

    Outside [x_0, x_{N−1}] LAMMPS continues it linearly with slope d0 (left) or dN (right).
    ``line`` is the file line it started on (0 when not read from a file).
    """

    knots: np.ndarray
    values: np.ndarray
    derivative_left: float
    derivative_right: float
    line: int = 0

    @property
    def cutoff(self) -> float:
        """The last knot (LAMMPS's cutoff of the function)."""
        return float(self.knots[-1])

    @property
    def zero_tail(self) -> bool:
        """True if the linear continuation beyond the last knot is identically zero."""
        return float(self.values[-1]) == 0.0 and float(self.derivative_right) == 0.0


def pair_count(n: int) -> int:
    """Number of unordered element pairs n(n+1)/2 (φ and g splines)."""
    return n * (n + 1) // 2


def pair_index(a: int, b: int, n: int) -> int:
    """Position of the unordered pair {a, b} in the file's pair order (either argument order)."""
    a, b = min(a, b), max(a, b)
    return a * n - a * (a - 1) // 2 + (b - a)


def pair_list(n: int) -> list[tuple[int, int]]:
    """The unordered pairs (a, b), a ≤ b, in file order."""
    return [(a, b) for a in range(n) for b in range(a, n)]


@dataclass(frozen=True, eq=False)
class MEAMSplineFile:
    """The contents of a meam/spline file.

    elements: element names in file order (the old layout has none: ``()``, one element).
    phi, g: n(n+1)/2 splines in :func:`pair_list` order.  rho, U, f: n splines (ρ_b and f_b
    of the neighbour element b, U_a of the central element a).
    """

    elements: tuple[str, ...]
    phi: tuple[SplineData, ...]
    rho: tuple[SplineData, ...]
    U: tuple[SplineData, ...]
    f: tuple[SplineData, ...]
    g: tuple[SplineData, ...]
    old_format: bool = False
    comment: str = field(default="")

    @property
    def n_elements(self) -> int:
        return len(self.U)

    @property
    def cutoff(self) -> float:
        """LAMMPS's cutoff: the largest last knot of all φ, ρ and f splines (Å)."""
        return max(s.cutoff for s in (*self.phi, *self.rho, *self.f))


# ----------------------------------------------------------------------------- reading


class _Reader:
    """LAMMPS-style word reader over the lines of a file, with line numbers for errors."""

    def __init__(self, text: str, where: str):
        self.lines = text.splitlines()
        self.where = where
        self.pos = 0  # index of the next unread line

    def error(self, message: str, line: int | None = None) -> MEAMFileError:
        line = self.pos if line is None else line
        return MEAMFileError(message, Origin(self.where, max(line, 1)))

    def skip_line(self, expected: str) -> tuple[int, str]:
        """The next raw line (number, text), unread as LAMMPS does."""
        if self.pos >= len(self.lines):
            raise self.error(f"unexpected end of file (expected {expected})", len(self.lines))
        self.pos += 1
        return self.pos, self.lines[self.pos - 1]

    def words(self, count: int, expected: str) -> tuple[int, list[Token]]:
        """At least ``count`` (≥ 1) words from the next non-blank lines, comments removed;
        (line of the first word, the words with their own lines)."""
        words: list[Token] = []
        while not words or len(words) < count:
            if self.pos >= len(self.lines):
                raise self.error(f"unexpected end of file (expected {expected})",
                                 len(self.lines))
            self.pos += 1
            words += [Token(w, self.pos) for w in self.lines[self.pos - 1].split("#", 1)[0].split()]
        return words[0].line, words

    def number(self, word: Token, what: str) -> float:
        try:
            value = float(word.text)
        except ValueError:
            raise self.error(f"expected a number for {what}, got {word.text!r}",
                             word.line) from None
        if not math.isfinite(value):
            raise self.error(f"{what} is not finite ({word.text}); every number in a potential "
                             "file must be finite", word.line)
        return value

    def integer(self, word: Token, what: str) -> int:
        try:
            return int(word.text)
        except ValueError:
            raise self.error(f"expected an integer for {what}, got {word.text!r}",
                             word.line) from None


def _check_units(reader: _Reader, first_line: str) -> None:
    words = first_line.split()
    for k, word in enumerate(words[:-1]):
        if word == "UNITS:" and words[k + 1] != "metal":
            raise reader.error(f"UNITS: {words[k + 1]} (only metal units are supported)", 1)


def _check_grid(reader: _Reader, knots: np.ndarray, line: int, what: str) -> None:
    n = len(knots)
    h = (knots[-1] - knots[0]) / (n - 1)
    if not h > 0.0:
        raise reader.error(f"{what}: the knots must increase (first {knots[0]:g}, last "
                           f"{knots[-1]:g})", line)
    for k in range(1, n - 1):
        if abs(h * k + knots[0] - knots[k]) > GRID_TOLERANCE:
            raise reader.error(
                f"{what}: knot {k} at x = {knots[k]!r} is off the uniform grid (x = "
                f"{knots[0] + h * k!r}); LAMMPS meam/spline needs equally spaced knots", line)


def _read_spline(reader: _Reader, new_format: bool, what: str) -> SplineData:
    if new_format:
        number, text = reader.skip_line(f"'spline3eq' for {what}")
        words = text.split("#", 1)[0].split()
        if not words or words[0] != "spline3eq":
            raise reader.error(f"{what}: expected the line 'spline3eq', got {text.strip()!r}",
                               number)
    line, words = reader.words(1, f"the knot count of {what}")
    n = reader.integer(words[0], f"the knot count of {what}")
    if n < 2:
        raise reader.error(f"{what}: a spline needs at least 2 knots, got {n}", line)
    _, words = reader.words(2, f"the end derivatives of {what}")
    d0 = reader.number(words[0], f"the left derivative of {what}")
    d1 = reader.number(words[1], f"the right derivative of {what}")
    if not new_format:
        reader.skip_line(f"the flag line of {what}")
    knots = np.empty(n)
    values = np.empty(n)
    for k in range(n):
        _, words = reader.words(3, f"knot {k} of {what} (x y y'')")
        knots[k] = reader.number(words[0], f"knot {k} of {what}")
        values[k] = reader.number(words[1], f"the value at knot {k} of {what}")
    _check_grid(reader, knots, line, what)
    return SplineData(knots, values, d0, d1, line)


def _source_text(source) -> tuple[str, str]:
    """(text, name for messages) of a path, or of text given directly (has newlines)."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source):
        return read_text(source, "meam/spline"), str(source)
    return str(source), "meam/spline file"


def read_meam_spline(source) -> MEAMSplineFile:
    """A meam/spline file (path, or its text if the string has newlines), either layout."""
    text, where = _source_text(source)
    reader = _Reader(text, where)
    _, comment = reader.skip_line("a comment line")
    _check_units(reader, comment)
    elements: tuple[str, ...] = ()
    new_format = False
    start = reader.pos
    line, words = reader.words(1, "the first spline")
    stripped = reader.lines[line - 1].split("#", 1)[0]
    if stripped.startswith("meam/spline"):
        new_format = True
        if len(words) < 2:
            raise reader.error("expected 'meam/spline <n> <element> ...'", line)
        n = reader.integer(words[1], "the number of elements")
        if n < 1:
            raise reader.error(f"invalid number of elements {n}", line)
        if len(words) < 2 + n:
            raise reader.error(f"expected {n} element names after 'meam/spline {n}'", line)
        elements = tuple(w.text for w in words[2:2 + n])
        if len(set(elements)) != n:
            raise reader.error(f"element names repeat: {' '.join(elements)}", line)
    else:
        reader.pos = start
        n = 1

    def splines(kind: str, labels: Sequence[str]) -> tuple[SplineData, ...]:
        return tuple(_read_spline(reader, new_format, f"{kind}{label}") for label in labels)

    names = elements if elements else ("",)
    pair_labels = [f"({names[a]},{names[b]})" if elements else "" for a, b in pair_list(n)]
    one_labels = [f"({e})" if elements else "" for e in names]
    phi = splines("phi", pair_labels)
    rho = splines("rho", one_labels)
    emb = splines("U", one_labels)
    fs = splines("f", one_labels)
    gs = splines("g", pair_labels)
    return MEAMSplineFile(elements, phi, rho, emb, fs, gs, old_format=not new_format,
                          comment=comment.lstrip("#").strip())


# ----------------------------------------------------------------------------- splines


def clamped_second_derivatives(knots, values, d0: float, d1: float) -> np.ndarray:
    """Second derivatives y''_k of the clamped cubic spline (NumPy; the files' third column)."""
    x = np.asarray(knots, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    n = len(x)
    h = np.diff(x)
    slope = np.diff(y) / h
    matrix = np.zeros((n, n))
    rhs = np.zeros(n)
    matrix[0, :2] = (h[0] / 3.0, h[0] / 6.0)
    rhs[0] = slope[0] - d0
    matrix[-1, -2:] = (h[-1] / 6.0, h[-1] / 3.0)
    rhs[-1] = d1 - slope[-1]
    for k in range(1, n - 1):
        matrix[k, k - 1:k + 2] = (h[k - 1] / 6.0, (h[k - 1] + h[k]) / 3.0, h[k] / 6.0)
        rhs[k] = slope[k] - slope[k - 1]
    return np.linalg.solve(matrix, rhs)
