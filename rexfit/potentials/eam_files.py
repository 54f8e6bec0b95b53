"""Readers for LAMMPS EAM files (setfl/eam/alloy, eam/fs, funcfl/eam) → EAM + params.

The files are read on the host into :class:`EAMTables` (NumPy), then :func:`tabulated_eam`
makes an :class:`~rexfit.potentials.eam.EAM` of :mod:`~rexfit.potentials.tabulated` functions
and the matching params tree, reproducing what LAMMPS ``pair_style eam``, ``eam/alloy`` and
``eam/fs`` compute.  funcfl files are first put on a common grid exactly as LAMMPS does
(4-point Lagrange interpolation; for a single file this copies the values and drops the last
grid point, as LAMMPS's ``nr = int(r_max/dr + 0.5)`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from ase.data import chemical_symbols

from rexfit.errors import InputError, Origin
from rexfit.potentials.eam import EAM
from rexfit.potentials.tabulated import FuncflPair, LammpsTable, RPhiTable
from rexfit.potentials.tokens import PotentialFileError, Token, read_text, to_float, to_floats, to_int


@dataclass(frozen=True, eq=False)
class EAMTables:
    """Raw EAM tables on a common grid (NumPy float64, values at x_k = k·δ).

    kind: "alloy", "fs" or "funcfl".  F[a]: (nrho,) embedding energies (eV) of element a.
    rho[(a, b)]: (nr,) density at an a-atom due to a b-neighbour.
    z2r[(a, b)] (a, b in file order, a ≥ b): (nr,) r·φ in eV·Å (setfl/fs).
    Z[a]: (nr,) funcfl effective charges √(Hartree·Bohr) (funcfl only).
    rhomax: ρ above which F is continued linearly; cutoff in Å.
    """

    kind: str
    elements: tuple[str, ...]
    masses: tuple[float, ...]
    nrho: int
    drho: float
    nr: int
    dr: float
    cutoff: float
    rhomax: float
    F: dict = field(default_factory=dict)
    rho: dict = field(default_factory=dict)
    z2r: dict = field(default_factory=dict)
    Z: dict = field(default_factory=dict)


class _Lines:
    """Line-oriented reader that also hands out blocks of numbers spanning lines; every
    number is checked finite and located at its own line (:mod:`~rexfit.potentials.tokens`)."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = read_text(path, "EAM").splitlines()
        self.pos = 0

    def origin(self) -> Origin:
        return Origin(str(self.path), self.pos)

    def fail(self, message: str, line: int | None = None):
        raise PotentialFileError(message, self.path, self.pos if line is None else line)

    def tokens(self, what: str) -> list[Token]:
        if self.pos >= len(self.lines):
            self.fail(f"unexpected end of EAM file (expected {what})", len(self.lines))
        self.pos += 1
        return [Token(w, self.pos) for w in self.lines[self.pos - 1].split()]

    def line(self, what: str = "a header line") -> list[str]:
        return [t.text for t in self.tokens(what)]

    def numbers(self, n: int, what: str) -> np.ndarray:
        """n finite values starting on the next line, over as many lines as needed (words
        after the n-th on the last line are ignored, as LAMMPS does)."""
        out: list[Token] = []
        while len(out) < n:
            out.extend(self.tokens(f"{n - len(out)} more values of {what}"))
        return to_floats(out[:n], self.path, what, fortran=True)

    def words(self, count: int, what: str) -> list[Token]:
        toks = self.tokens(what)
        if len(toks) < count:
            self.fail(f"expected {what}, got {' '.join(t.text for t in toks)!r}")
        return toks

    def grid(self) -> tuple[int, float, int, float, float]:
        w = self.words(5, "'Nrho drho Nr dr cutoff'")
        nrho, nr = to_int(w[0], self.path, "Nrho"), to_int(w[2], self.path, "Nr")
        drho, dr, cut = (to_float(w[k], self.path, name, fortran=True)
                         for k, name in ((1, "drho"), (3, "dr"), (4, "cutoff")))
        if nrho < 5 or nr < 5:
            self.fail(f"Nrho and Nr must be at least 5 (LAMMPS's interpolation), got {nrho}, {nr}")
        if not (drho > 0 and dr > 0 and cut > 0):
            self.fail(f"drho, dr and cutoff must be positive, got {drho}, {dr}, {cut}")
        return nrho, drho, nr, dr, cut


def read_setfl(path, *, finnis_sinclair: bool = False) -> EAMTables:
    """Read a DYNAMO setfl file (LAMMPS ``eam/alloy``) or, if ``finnis_sinclair``, ``eam/fs``."""
    src = _Lines(Path(path))
    for _ in range(3):
        src.line("3 comment lines")
    words = src.words(1, "'N el_1 ... el_N'")
    nel = to_int(words[0], src.path, "the element count")
    elements = tuple(t.text for t in words[1 : 1 + nel])
    if nel < 1 or len(elements) != nel:
        src.fail(f"expected {nel} element names after the element count")
    nrho, drho, nr, dr, cut = src.grid()
    masses, F, rho, z2r = [], {}, {}, {}
    for a in elements:
        w = src.words(2, f"the element line 'Z mass a0 lattice' of {a}")
        masses.append(to_float(w[1], src.path, f"the mass of {a}", fortran=True))
        F[a] = src.numbers(nrho, f"F(rho) of {a}")
        if finnis_sinclair:
            for b in elements:  # section of element a, entry b: density at b due to a
                rho[(b, a)] = src.numbers(nr, f"rho(r) of {a} at {b}")
        else:
            dens = src.numbers(nr, f"rho(r) of {a}")
            for b in elements:
                rho[(b, a)] = dens
    for i, a in enumerate(elements):
        for b in elements[: i + 1]:
            z2r[(a, b)] = src.numbers(nr, f"r*phi(r) of {a}-{b}")
    return EAMTables(
        "fs" if finnis_sinclair else "alloy", elements, tuple(masses), nrho, drho, nr, dr,
        cut, (nrho - 1) * drho, F, rho, z2r,
    )


def _lagrange_regrid(f: np.ndarray, delta_file: float, n_new: int, delta_new: float):
    """LAMMPS's 4-point Lagrange resampling of a funcfl table onto (n_new, delta_new)."""
    n_file = len(f)
    f1 = np.concatenate([[0.0], f])  # 1-based, as in LAMMPS
    sixth = 1.0 / 6.0
    x = np.arange(n_new) * delta_new
    p = x / delta_file + 1.0
    k = np.maximum(np.minimum(p.astype(np.int64), n_file - 2), 2)
    p = np.minimum(p - k, 2.0)
    cof1 = -sixth * p * (p - 1.0) * (p - 2.0)
    cof2 = 0.5 * (p * p - 1.0) * (p - 2.0)
    cof3 = -0.5 * p * (p + 1.0) * (p - 2.0)
    cof4 = sixth * p * (p * p - 1.0)
    return cof1 * f1[k - 1] + cof2 * f1[k] + cof3 * f1[k + 1] + cof4 * f1[k + 2]


def _symbol(number: int) -> str:
    """Chemical symbol of an atomic number (``X<number>`` if out of range)."""
    return chemical_symbols[number] if 0 < number < len(chemical_symbols) else f"X{number}"


def read_funcfl(paths: Sequence, elements: Sequence[str] | None = None) -> EAMTables:
    """Read one or more funcfl files (LAMMPS ``pair_style eam``), one element each.

    ``elements`` names them (default: the symbol of the atomic number on line 2).  All files
    go onto LAMMPS's common grid: the largest dr and drho, nr = int(max r_max/dr + 0.5),
    likewise nrho.
    """
    paths = [Path(p) for p in paths]
    raw, symbols = [], []
    for path in paths:
        src = _Lines(path)
        src.line("a comment line")
        words = src.words(2, "'Z mass a0 lattice'")
        symbols.append(_symbol(to_int(words[0], path, "the atomic number")))
        mass = to_float(words[1], path, "the mass", fortran=True)
        nrho, drho, nr, dr, cut = src.grid()
        raw.append((mass, nrho, drho, nr, dr, cut, src.numbers(nrho, "F(rho)"),
                    src.numbers(nr, "Z(r)"), src.numbers(nr, "rho(r)")))
    elements = tuple(elements) if elements is not None else tuple(symbols)
    if len(set(elements)) != len(elements):
        raise InputError(f"funcfl files need distinct element names, got {elements}")
    dr = max(r[4] for r in raw)
    drho = max(r[2] for r in raw)
    rmax = max((r[3] - 1) * r[4] for r in raw)
    rhomax = max((r[1] - 1) * r[2] for r in raw)
    nr = int(rmax / dr + 0.5)
    nrho = int(rhomax / drho + 0.5)
    F, rho, Z = {}, {}, {}
    for a, (_, n_rho, d_rho, n_r, d_r, _, f, z, dens) in zip(elements, raw):
        F[a] = _lagrange_regrid(f, d_rho, nrho, drho)
        Z[a] = _lagrange_regrid(z, d_r, nr, dr)
        for b in elements:
            rho[(b, a)] = _lagrange_regrid(dens, d_r, nr, dr)
    return EAMTables(
        "funcfl", elements, tuple(r[0] for r in raw), nrho, drho, nr, dr,
        max(r[5] for r in raw), rhomax, F, rho, {}, Z,
    )


def read_eam_file(path, elements: Sequence[str] | None = None) -> EAMTables:
    """Read a LAMMPS EAM file, kind chosen by extension: .eam.alloy/.eam.fs/.eam (funcfl)."""
    name = Path(path).name.lower()
    if name.endswith(".fs"):
        return read_setfl(path, finnis_sinclair=True)
    if name.endswith(".alloy") or name.endswith(".setfl"):
        return read_setfl(path)
    return read_funcfl([path], elements)


def tabulated_eam(tables: EAMTables, types: Sequence[str | None]) -> tuple[EAM, dict]:
    """EAM over species indices 0..len(types)−1 and its params tree from ``tables``.

    ``types[s]`` is the file element used for species index s (``None``: species not handled,
    like LAMMPS's NULL).  Params keys: "F_<a>", "rho_<a>_<b>" (fs; density at a due to b) or
    "rho_<b>" (alloy/funcfl), "z2r_<a>_<b>" (setfl/fs), "Z" = {a: ...} (funcfl).
    """
    r_table = LammpsTable(tables.nr, tables.dr)
    f_table = LammpsTable(tables.nrho, tables.drho, tables.rhomax)
    known = set(tables.elements)
    for t in types:
        if t is not None and t not in known:
            raise InputError(f"element {t!r} is not in the EAM file ({', '.join(known)})")
    index = {s: t for s, t in enumerate(types) if t is not None}
    params: dict = {}
    embedding, density, pair = {}, {}, {}
    for s, a in index.items():
        params[f"F_{a}"] = {"values": jnp.asarray(tables.F[a])}
        embedding[s] = (f"F_{a}", f_table)
        for s2, b in index.items():
            key = f"rho_{a}_{b}" if tables.kind == "fs" else f"rho_{b}"
            params[key] = {"values": jnp.asarray(tables.rho[(a, b)])}
            density[(s, s2)] = (key, r_table)
            if s2 > s:
                continue
            if tables.kind == "funcfl":
                params.setdefault("Z", {})
                params["Z"][a] = {"values": jnp.asarray(tables.Z[a])}
                params["Z"][b] = {"values": jnp.asarray(tables.Z[b])}
                lo, hi = sorted((a, b), key=tables.elements.index)
                pair[(s2, s)] = ("Z", FuncflPair(r_table, hi, lo))
            else:
                lo, hi = sorted((a, b), key=tables.elements.index)
                key = f"z2r_{hi}_{lo}"
                params[key] = {"values": jnp.asarray(tables.z2r[(hi, lo)])}
                pair[(s2, s)] = (key, RPhiTable(r_table))
    eam = EAM.create(len(types), tables.cutoff, pair, density, embedding)
    return eam, params
