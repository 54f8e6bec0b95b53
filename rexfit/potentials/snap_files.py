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

from rexfit.potentials.tokens import PotentialFileError, Token, line_words, read_text, to_float, to_int

#: The LAMMPS pair style of SNAP (and the job's element for it).
PAIR_STYLE = "snap"
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


def _lines(path, kind: str) -> list[list[Token]]:
    """The tokens of each non-blank line, comments removed (each token knows its line)."""
    return list(line_words(read_text(path, kind)))


def read_snapcoeff(path) -> dict[str, SnapElement]:
    """{element: SnapElement} of a .snapcoeff file, in file order.

    Raises :class:`PotentialFileError` (a ``ValueError``) at the line of the offending word.
    """
    lines = _lines(path, "SNAP coefficient")
    if not lines or len(lines[0]) < 2:
        raise PotentialFileError("expected 'nelements ncoeff' as the first line", path,
                                 lines[0][0].line if lines else 1)
    nelem = to_int(lines[0][0], path, "nelements")
    ncoeff = to_int(lines[0][1], path, "ncoeff")
    if nelem < 1 or ncoeff < 1:
        raise PotentialFileError(f"nelements and ncoeff must be positive, got {nelem} "
                                 f"{ncoeff}", path, lines[0][0].line)
    out: dict[str, SnapElement] = {}
    pos = 1
    for _ in range(nelem):
        if pos + ncoeff > len(lines) - 1:
            last = lines[-1][0].line
            raise PotentialFileError(f"incomplete file: expected {nelem} elements of {ncoeff} "
                                     f"coefficients (a line 'name R w', then one coefficient "
                                     f"per line), the file ends after {len(out)}", path, last)
        words = lines[pos]
        name = words[0].text
        if len(words) < 3:
            raise PotentialFileError(f"expected 'name R w' for element {len(out) + 1}, got "
                                     f"{' '.join(t.text for t in words)!r}", path, words[0].line)
        if name in out:
            raise PotentialFileError(f"duplicate element {name}", path, words[0].line)
        radius = to_float(words[1], path, f"the radius R of {name}")
        weight = to_float(words[2], path, f"the weight w of {name}")
        coeffs = np.array([to_float(lines[pos + 1 + k][0], path, f"coefficient {k} of {name}")
                           for k in range(ncoeff)], dtype=np.float64)
        out[name] = SnapElement(radius, weight, coeffs)
        pos += 1 + ncoeff
    return out


def read_snapparam(path) -> dict[str, float | int]:
    """Settings of a .snapparam file with LAMMPS defaults filled in."""
    out = dict(SNAPPARAM_DEFAULTS)
    for words in _lines(path, "SNAP parameter"):
        key = words[0].text
        if key in _IGNORED:
            continue
        if key not in SNAPPARAM_DEFAULTS or len(words) < 2:
            raise PotentialFileError(f"unknown or incomplete SNAP setting '{key}' (known: "
                                     f"{', '.join(SNAPPARAM_DEFAULTS)})", path, words[0].line)
        out[key] = to_float(words[1], path, key) if key in _FLOATS else \
            to_int(words[1], path, key)
    missing = [k for k in ("rcutfac", "twojmax") if out[k] is None]
    if missing:
        raise PotentialFileError(f"required SNAP setting(s) {', '.join(missing)} missing", path,
                                 1)
    return out


def _g(x: float) -> str:
    return format(float(x), ".17g")


def snapcoeff_text(elements: Mapping[str, SnapElement], header: Iterable[str] = ()) -> str:
    """The text of a .snapcoeff file (every element must have the same number of
    coefficients); ``header`` lines become ``#`` comments."""
    sizes = {len(e.coefficients) for e in elements.values()}
    if len(sizes) != 1:
        raise ValueError("snapcoeff_text: all elements need the same number of coefficients")
    lines = [f"# {h}" for h in header] + [f"{len(elements)} {sizes.pop()}"]
    for name, e in elements.items():
        lines.append(f"{name} {_g(e.radius)} {_g(e.weight)}")
        lines += [_g(c) for c in np.asarray(e.coefficients, dtype=np.float64)]
    return "\n".join(lines) + "\n"


def snapparam_text(settings: Mapping[str, float | int], header: Iterable[str] = ()) -> str:
    """The text of a .snapparam file (keys of :data:`SNAPPARAM_DEFAULTS`)."""
    lines = [f"# {h}" for h in header]
    for key, value in settings.items():
        if key not in SNAPPARAM_DEFAULTS:
            raise ValueError(f"snapparam_text: unknown SNAP setting '{key}'")
        lines.append(f"{key} {_g(value) if key in _FLOATS else int(value)}")
    return "\n".join(lines) + "\n"


def read_snap_include(path) -> tuple[Path, Path, tuple[str, ...]]:
    """(snapcoeff, snapparam, elements) named by the ``pair_coeff * * [snap] C P e1 e2 ...`` line
    of a LAMMPS ``.snap`` include file (paths relative to the file's directory).  Other terms
    of a ``hybrid/overlay`` (e.g. ZBL) are not read."""
    path = Path(path)
    text = read_text(path, "SNAP include").replace("&\n", " ")
    for line in text.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        if len(words) >= 5 and words[0] == "pair_coeff" and words[1:3] == ["*", "*"]:
            rest = words[3:]
            if rest[0] == PAIR_STYLE:
                rest = rest[1:]
            if rest and rest[0].endswith("snapcoeff"):
                base = path.parent
                return base / rest[0], base / rest[1], tuple(rest[2:])
    raise ValueError(f"{path}: no 'pair_coeff * * ... .snapcoeff .snapparam elements' line")
