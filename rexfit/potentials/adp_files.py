"""Reading LAMMPS ``pair_style adp`` files (the extended DYNAMO setfl format).

Layout (LAMMPS pair_adp documentation; the reader of ``pair_adp.cpp``)::

    3 comment lines
    N el_1 ... el_N
    Nrho drho Nr dr cutoff
    for each element a:   "Z mass a0 lattice", F_a(ρ) at ρ_k = k·drho (Nrho values),
                          ρ_a(r) at r_k = k·dr (Nr values): density due to an a-atom
    for a = 1..N, b = 1..a:   r·φ_ab(r)   (eV·Å, Nr values)
    for a = 1..N, b = 1..a:   u_ab(r)     (eV/Å, Nr values; *not* multiplied by r)
    for a = 1..N, b = 1..a:   w_ab(r)     (eV/Å², Nr values; *not* multiplied by r)

so it is an eam/alloy (setfl) file followed by the u and w tables.  Every block of values
starts on a new line and may run over any number of lines (5 per line by convention); ``#``
starts a comment in the data lines, blank lines are skipped.  Malformed files (including any
number that is not finite) raise :class:`~rexfit.potentials.tokens.PotentialFileError`, a
``ValueError`` whose text is ``"<path>:<line>: ..."`` at the line of the offending value.

In memory a file is an :class:`ADPTables` (NumPy float64);
:func:`rexfit.potentials.adp.tabulated_adp` turns tables into a potential that computes exactly
what LAMMPS does.  Writing a file (and sampling a fitted potential into tables) belongs to the
export layer: :mod:`rexfit.export.adp`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rexfit.potentials.tokens import PotentialFileError, Token, read_text, to_float, to_int


@dataclass(frozen=True, eq=False)
class ADPTables:
    """The contents of a LAMMPS adp file (values at x_k = k·δ, k = 0..n−1).

    elements: names in file order.  numbers, masses: atomic number and mass (amu) per element;
    info: the rest of each element line (conventionally lattice constant and structure), kept
    as words.  comments: the three header lines.  F[a]: (nrho,) embedding energy (eV).
    rho[a]: (nr,) density due to an a-neighbour.  z2r, u2r, w2r: {(a, b): (nr,)} for a ≥ b in
    file order: r·φ (eV·Å), u (eV/Å), w (eV/Å²).  cutoff: Å (LAMMPS's only cutoff).
    """

    elements: tuple[str, ...]
    numbers: tuple[int, ...]
    masses: tuple[float, ...]
    nrho: int
    drho: float
    nr: int
    dr: float
    cutoff: float
    F: dict = field(default_factory=dict)
    rho: dict = field(default_factory=dict)
    z2r: dict = field(default_factory=dict)
    u2r: dict = field(default_factory=dict)
    w2r: dict = field(default_factory=dict)
    info: tuple[tuple[str, ...], ...] = ()
    comments: tuple[str, str, str] = ("", "", "")

    def pairs(self) -> list[tuple[str, str]]:
        """Element pairs (a, b), a ≥ b, in the order of the file's pair blocks."""
        return [(a, b) for k, a in enumerate(self.elements) for b in self.elements[: k + 1]]

    def same_as(self, other: ADPTables) -> bool:
        """True if every header value and every table value is identical."""
        head = ("elements", "numbers", "masses", "nrho", "drho", "nr", "dr", "cutoff", "info",
                "comments")
        if any(getattr(self, k) != getattr(other, k) for k in head):
            return False
        for name in ("F", "rho", "z2r", "u2r", "w2r"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.keys() != theirs.keys():
                return False
            if any(not np.array_equal(mine[k], theirs[k]) for k in mine):
                return False
        return True


# ----------------------------------------------------------------------------- reading


class _Reader:
    """Line-oriented reader that reports ``path:line`` in every error."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = read_text(path, "ADP").splitlines()
        self.pos = 0  # number of lines consumed; the current line is self.pos (1-based)

    def fail(self, message: str, line: int | None = None):
        raise PotentialFileError(message, self.path, self.pos if line is None else line)

    def raw_line(self, what: str) -> str:
        if self.pos >= len(self.lines):
            self.fail(f"unexpected end of file, expected {what}", len(self.lines))
        self.pos += 1
        return self.lines[self.pos - 1]

    def data_line(self, what: str) -> list[str]:
        """The words of the next non-blank line, comments (#) removed."""
        while True:
            words = self.raw_line(what).split("#", 1)[0].split()
            if words:
                return words

    def number(self, word: str, what: str, kind=float):
        """``word`` of the current line as a finite float (or an int)."""
        if kind is int:
            return to_int(Token(word, self.pos), self.path, what)
        return to_float(Token(word, self.pos), self.path, what, fortran=True)

    def block(self, n: int, what: str) -> np.ndarray:
        """n values starting on a new line; a line may not run past the block's end."""
        out: list[float] = []
        while len(out) < n:
            words = self.data_line(f"{n - len(out)} more values of {what}")
            if len(out) + len(words) > n:
                self.fail(f"{what}: line has {len(out) + len(words) - n} values more than "
                          f"the {n} of the table (wrong Nrho/Nr in line 5?)")
            out.extend(self.number(w, what) for w in words)
        return np.array(out, dtype=np.float64)

    def rest_is_empty(self) -> None:
        while self.pos < len(self.lines):
            self.pos += 1
            if self.lines[self.pos - 1].split("#", 1)[0].strip():
                self.fail("unexpected data after the last w table (wrong Nrho/Nr or element "
                          "count?)")


def read_adp_file(path) -> ADPTables:
    """Read a LAMMPS ``pair_style adp`` file into :class:`ADPTables`."""
    src = _Reader(Path(path))
    comments = tuple(src.raw_line("3 comment lines") for _ in range(3))
    words = src.data_line("'N el_1 ... el_N'")
    nel = src.number(words[0], "the element count", int)
    if nel < 1 or len(words) != nel + 1:
        src.fail(f"expected 'N el_1 ... el_N' with N ≥ 1 names, got {' '.join(words)!r}")
    elements = tuple(words[1:])
    if len(set(elements)) != nel:
        src.fail(f"element names repeat: {' '.join(elements)}")
    words = src.data_line("'Nrho drho Nr dr cutoff'")
    if len(words) != 5:
        src.fail(f"expected 'Nrho drho Nr dr cutoff', got {len(words)} values")
    nrho = src.number(words[0], "Nrho", int)
    drho = src.number(words[1], "drho")
    nr = src.number(words[2], "Nr", int)
    dr = src.number(words[3], "dr")
    cutoff = src.number(words[4], "cutoff")
    if nrho < 5 or nr < 5:
        src.fail(f"Nrho and Nr must be at least 5 (LAMMPS's interpolation), got {nrho}, {nr}")
    if not (drho > 0 and dr > 0 and cutoff > 0):
        src.fail(f"drho, dr and cutoff must be positive, got {drho}, {dr}, {cutoff}")
    numbers, masses, info, F, rho = [], [], [], {}, {}
    for a in elements:
        words = src.data_line(f"the element line 'Z mass ...' of {a}")
        if len(words) < 2:
            src.fail(f"expected 'Z mass a0 lattice' for {a}, got {' '.join(words)!r}")
        numbers.append(src.number(words[0], f"the atomic number of {a}", int))
        masses.append(src.number(words[1], f"the mass of {a}"))
        info.append(tuple(words[2:]))
        F[a] = src.block(nrho, f"F(rho) of {a}")
        rho[a] = src.block(nr, f"rho(r) of {a}")
    tables = {}
    for name, what in (("z2r", "r*phi(r)"), ("u2r", "u(r)"), ("w2r", "w(r)")):
        tables[name] = {}
        for k, a in enumerate(elements):
            for b in elements[: k + 1]:
                tables[name][(a, b)] = src.block(nr, f"{what} of {a}-{b}")
    src.rest_is_empty()
    return ADPTables(elements, tuple(numbers), tuple(masses), nrho, drho, nr, dr, cutoff, F,
                     rho, tables["z2r"], tables["u2r"], tables["w2r"], tuple(info), comments)
