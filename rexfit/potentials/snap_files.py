"""LAMMPS SNAP files: ``.snapcoeff`` (per-element R, w, coefficients), ``.snapparam``
(descriptor settings) and the ``.snap`` include snippet that names them.

.snapcoeff: ``#`` comments and blank lines anywhere; then ``nelements ncoeff``; then per element
a line ``name R w`` followed by ncoeff lines, one coefficient each (text after it ignored):
β0, the linear β (bispectrum order), then for quadraticflag 1 the K(K+1)/2 quadratic ones.
.snapparam: ``keyword value`` lines (rcutfac and twojmax required).  Numbers are written with
17 significant digits, so LAMMPS reads back exactly the same float64 values.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

#: .snapparam keywords with their LAMMPS defaults (types: float, int flag)
SNAPPARAM_DEFAULTS = {
    "rcutfac": None, "twojmax": None, "rfac0": 0.99363, "rmin0": 0.0, "switchflag": 1,
    "bzeroflag": 1, "quadraticflag": 0, "chemflag": 0, "bnormflag": 0, "wselfallflag": 0,
    "switchinnerflag": 0,
}
_FLOATS = {"rcutfac", "rfac0", "rmin0"}
_IGNORED = {"chunksize", "parallelthresh"}  # performance knobs of LAMMPS's kernels


@dataclass(frozen=True)
class SnapElement:
    """One element of a .snapcoeff file: radius R (Å), weight w, coefficients (ncoeff,)."""

    radius: float
    weight: float
    coefficients: np.ndarray


def _lines(path) -> list[tuple[int, list[str]]]:
    """(line number, words) of the non-blank lines with comments removed."""
    text = Path(path).read_text()
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split("#", 1)[0].split()
        if words:
            out.append((number, words))
    return out


def read_snapcoeff(path) -> dict[str, SnapElement]:
    """{element: SnapElement} of a .snapcoeff file, in file order."""
    lines = _lines(path)
    if not lines or len(lines[0][1]) < 2:
        raise ValueError(f"{path}: expected 'nelements ncoeff' as the first line")
    try:
        nelem, ncoeff = int(lines[0][1][0]), int(lines[0][1][1])
    except ValueError as exc:
        raise ValueError(f"{path}:{lines[0][0]}: expected 'nelements ncoeff'") from exc
    out: dict[str, SnapElement] = {}
    pos = 1
    for _ in range(nelem):
        if pos + ncoeff >= len(lines) + 1 or len(lines[pos][1]) < 3:
            raise ValueError(f"{path}: incomplete file: expected {nelem} elements of "
                             f"{ncoeff} coefficients")
        number, words = lines[pos]
        name = words[0]
        if name in out:
            raise ValueError(f"{path}:{number}: duplicate element {name}")
        try:
            radius, weight = float(words[1]), float(words[2])
            coeffs = np.array([float(lines[pos + 1 + k][1][0]) for k in range(ncoeff)])
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}:{number}: malformed entry of element {name}") from exc
        out[name] = SnapElement(radius, weight, coeffs)
        pos += 1 + ncoeff
    return out


def read_snapparam(path) -> dict[str, float | int]:
    """Settings of a .snapparam file with LAMMPS defaults filled in."""
    out = dict(SNAPPARAM_DEFAULTS)
    for number, words in _lines(path):
        key = words[0]
        if key in _IGNORED:
            continue
        if key not in SNAPPARAM_DEFAULTS or len(words) < 2:
            raise ValueError(f"{path}:{number}: unknown or incomplete SNAP setting '{key}'")
        out[key] = float(words[1]) if key in _FLOATS else int(words[1])
    missing = [k for k in ("rcutfac", "twojmax") if out[k] is None]
    if missing:
        raise ValueError(f"{path}: required SNAP setting(s) {', '.join(missing)} missing")
    return out


def _g(x: float) -> str:
    return format(float(x), ".17g")


def write_snapcoeff(path, elements: Mapping[str, SnapElement], header: Iterable[str] = ()):
    """Write a .snapcoeff file (every element must have the same number of coefficients)."""
    sizes = {len(e.coefficients) for e in elements.values()}
    if len(sizes) != 1:
        raise ValueError("write_snapcoeff: all elements need the same number of coefficients")
    lines = [f"# {h}" for h in header] + [f"{len(elements)} {sizes.pop()}"]
    for name, e in elements.items():
        lines.append(f"{name} {_g(e.radius)} {_g(e.weight)}")
        lines += [_g(c) for c in np.asarray(e.coefficients, dtype=np.float64)]
    Path(path).write_text("\n".join(lines) + "\n")


def write_snapparam(path, settings: Mapping[str, float | int], header: Iterable[str] = ()):
    """Write a .snapparam file (keys of :data:`SNAPPARAM_DEFAULTS`)."""
    lines = [f"# {h}" for h in header]
    for key, value in settings.items():
        if key not in SNAPPARAM_DEFAULTS:
            raise ValueError(f"write_snapparam: unknown SNAP setting '{key}'")
        lines.append(f"{key} {_g(value) if key in _FLOATS else int(value)}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_snap_include(path) -> tuple[Path, Path, tuple[str, ...]]:
    """(snapcoeff, snapparam, elements) named by the ``pair_coeff * * [snap] C P e1 e2 ...`` line
    of a LAMMPS ``.snap`` include file (paths relative to the file's directory).  Other terms
    of a ``hybrid/overlay`` (e.g. ZBL) are not read."""
    path = Path(path)
    text = path.read_text().replace("&\n", " ")
    for line in text.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        if len(words) >= 5 and words[0] == "pair_coeff" and words[1:3] == ["*", "*"]:
            rest = words[3:]
            if rest[0] == "snap":
                rest = rest[1:]
            if rest and rest[0].endswith("snapcoeff"):
                base = path.parent
                return base / rest[0], base / rest[1], tuple(rest[2:])
    raise ValueError(f"{path}: no 'pair_coeff * * ... .snapcoeff .snapparam elements' line")
