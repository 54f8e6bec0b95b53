"""LAMMPS Stillinger–Weber (``.sw``) and Tersoff (``.tersoff``) parameter files, in and out.

Both formats are lists of entries "e1 e2 e3 v1 … vK" (K = 11 for ``sw``, 14 for ``tersoff``)
for element triplets (e1 = the central atom i, e2 = j, e3 = k), as LAMMPS reads them: ``#``
starts a comment (to the end of the line), blank lines are skipped, and an entry may continue
over following lines until it has its 3 + K words.  A ``UNITS:`` tag in the first line must
say ``metal`` (the only unit system rexfit uses).

In memory a file is a dict ``{(e1, e2, e3): {name: value}}`` in file order, with LAMMPS's
parameter names (:data:`SW_PARAMETERS`, :data:`TERSOFF_PARAMETERS`).  The potentials take a
params pytree ``{tag: {name: float64}}``, tag = :func:`triplet_tag` (``"SiSiC"``, the
atomicrex ``<fit-dof tag=...>`` spelling); :func:`params_from_entries` and
:func:`entries_from_params` convert between the two.
"""

from __future__ import annotations

import os
from itertools import product
from pathlib import Path
from typing import Iterable, Mapping

import jax.numpy as jnp
import numpy as np

SW_PARAMETERS = ("epsilon", "sigma", "a", "lambda", "gamma", "costheta0", "A", "B", "p", "q",
                 "tol")
"""LAMMPS ``pair_style sw`` entry values, in file order (ε eV, σ Å, the rest unitless)."""

TERSOFF_PARAMETERS = ("m", "gamma", "lambda3", "c", "d", "costheta0", "n", "beta", "lambda2",
                      "B", "R", "D", "lambda1", "A")
"""LAMMPS ``pair_style tersoff`` entry values, in file order (A, B eV; λ 1/Å; R, D Å).
``costheta0`` is Tersoff's h."""

Entries = dict[tuple[str, str, str], dict[str, float]]


def triplet_tag(e1: str, e2: str, e3: str) -> str:
    """The params key of an element triplet: the names concatenated, e.g. ``"SiSiC"``."""
    return f"{e1}{e2}{e3}"


def _text(source) -> str:
    """Contents of a path, or ``source`` itself if it is a string with newlines."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source):
        return Path(source).read_text()
    return str(source)


def _where(source, kind: str) -> str:
    return f"{kind} file" if isinstance(source, str) and "\n" in source else str(source)


def _check_units(first_line: str, where: str) -> None:
    words = first_line.split()
    for k, word in enumerate(words[:-1]):
        if word == "UNITS:" and words[k + 1] != "metal":
            raise ValueError(f"{where}: UNITS: {words[k + 1]} (only metal units are supported)")


def read_entries(source, names: tuple[str, ...], kind: str = "potential") -> Entries:
    """Entries of a LAMMPS many-body file (path, or the text itself if it has newlines).

    ``names``: the K value names in file order.  Raises ``ValueError`` on an incomplete or
    overlong entry, a non-numeric value, a duplicate triplet or non-metal units.
    """
    text = _text(source)
    where = _where(source, kind)
    lines = text.splitlines()
    if lines:
        _check_units(lines[0], where)
    per_entry = 3 + len(names)
    entries: Entries = {}
    words: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        line_words = line.split("#", 1)[0].split()
        if not line_words:
            continue
        if not words:
            start = number
        words.extend(line_words)
        if len(words) < per_entry:
            continue
        if len(words) > per_entry:
            raise ValueError(f"{where}:{start}: entry has {len(words)} words, expected "
                             f"{per_entry} (3 elements + {len(names)} values)")
        key = (words[0], words[1], words[2])
        try:
            values = [float(w) for w in words[3:]]
        except ValueError as exc:
            raise ValueError(f"{where}:{start}: {exc}") from None
        if key in entries:
            raise ValueError(f"{where}:{start}: duplicate entry for {' '.join(key)}")
        entries[key] = dict(zip(names, values))
        words = []
    if words:
        raise ValueError(f"{where}:{start}: incomplete entry ({len(words)} of {per_entry} words)")
    return entries


def _check_sw(entries: Entries, where: str) -> None:
    for key, v in entries.items():
        negative = [n for n in SW_PARAMETERS if n != "costheta0" and v[n] < 0.0]
        if negative:
            raise ValueError(f"{where}: illegal Stillinger-Weber parameter(s) {negative} "
                             f"< 0 for {' '.join(key)}")


def _check_tersoff(entries: Entries, where: str) -> None:
    for key, v in entries.items():
        bad = [n for n in ("c", "d", "n", "beta", "lambda2", "B", "R", "D", "lambda1", "A",
                           "gamma") if v[n] < 0.0]
        if v["D"] > v["R"]:
            bad.append("D > R")
        if v["m"] not in (1.0, 3.0):
            bad.append("m not 1 or 3")
        if bad:
            raise ValueError(f"{where}: illegal Tersoff parameter(s) {bad} for {' '.join(key)}")


def read_sw_file(source) -> Entries:
    """Entries of a LAMMPS ``.sw`` file, checked as LAMMPS does (no negative values)."""
    entries = read_entries(source, SW_PARAMETERS, "Stillinger-Weber")
    _check_sw(entries, _where(source, "Stillinger-Weber"))
    return entries


def read_tersoff_file(source) -> Entries:
    """Entries of a LAMMPS ``.tersoff`` file, checked as LAMMPS does (m ∈ {1, 3}, D ≤ R, …)."""
    entries = read_entries(source, TERSOFF_PARAMETERS, "Tersoff")
    _check_tersoff(entries, _where(source, "Tersoff"))
    return entries


def format_entries(entries: Mapping[tuple[str, str, str], Mapping[str, float]],
                   names: tuple[str, ...], header: Iterable[str] = ()) -> str:
    """File text: a ``UNITS: metal`` line, ``header`` comment lines, a column comment, then
    one entry per line with values in shortest round-trip form (``repr``)."""
    lines = ["# UNITS: metal  (written by rexfit)"]
    lines += [f"# {h}" if not h.startswith("#") else h for h in header]
    lines.append("# element1 element2 element3  " + " ".join(names))
    width = max((len(e) for key in entries for e in key), default=2)
    for key, values in entries.items():
        elems = " ".join(e.ljust(width) for e in key)
        lines.append(f"{elems}  " + " ".join(repr(float(values[n])) for n in names))
    return "\n".join(lines) + "\n"


def write_sw_file(path, entries, header: Iterable[str] = ()) -> None:
    """Write ``entries`` ({triplet: {name: value}}) as a LAMMPS ``.sw`` file."""
    _check_sw({k: {n: float(v[n]) for n in SW_PARAMETERS} for k, v in entries.items()},
              str(path))
    Path(path).write_text(format_entries(entries, SW_PARAMETERS, header))


def write_tersoff_file(path, entries, header: Iterable[str] = ()) -> None:
    """Write ``entries`` ({triplet: {name: value}}) as a LAMMPS ``.tersoff`` file."""
    _check_tersoff({k: {n: float(v[n]) for n in TERSOFF_PARAMETERS}
                    for k, v in entries.items()}, str(path))
    Path(path).write_text(format_entries(entries, TERSOFF_PARAMETERS, header))


def params_from_entries(entries: Mapping, elements: Iterable[str],
                        names: tuple[str, ...]) -> dict:
    """Params pytree {tag: {name: float64 scalar}} for every triplet of ``elements``.

    Entries for other elements are ignored (as LAMMPS does); a missing triplet raises.
    """
    elements = tuple(elements)
    params = {}
    missing = []
    for key in product(elements, repeat=3):
        if key not in entries:
            missing.append(" ".join(key))
            continue
        params[triplet_tag(*key)] = {n: jnp.float64(entries[key][n]) for n in names}
    if missing:
        raise ValueError(f"potential file is missing entries for: {', '.join(missing)}")
    return params


def entries_from_params(params: Mapping, elements: Iterable[str],
                        names: tuple[str, ...]) -> Entries:
    """{(e1, e2, e3): {name: float}} from a params pytree (every triplet of ``elements``)."""
    elements = tuple(elements)
    return {key: {n: float(np.asarray(params[triplet_tag(*key)][n])) for n in names}
            for key in product(elements, repeat=3)}


def stack_params(params: Mapping, elements: tuple[str, ...],
                 names: tuple[str, ...]) -> dict:
    """{name: (S³,) array} stacked over triplets in slot order s_i·S² + s_j·S + s_k.

    Traceable (used inside the potentials' ``energy``), so gradients reach ``params``.
    """
    tags = [triplet_tag(*key) for key in product(elements, repeat=3)]
    return {n: jnp.stack([jnp.asarray(params[t][n]) for t in tags]) for n in names}


def check_tags(elements: tuple[str, ...]) -> None:
    """Raise if two element triplets would share a params key (e.g. 'A'+'BC' vs 'AB'+'C')."""
    tags = [triplet_tag(*key) for key in product(elements, repeat=3)]
    if len(set(tags)) != len(tags):
        raise ValueError(f"element names {elements} give ambiguous triplet tags")
    if len(set(elements)) != len(elements):
        raise ValueError(f"element names {elements} repeat")
