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
:func:`entries_from_params` convert between the two.  Importing this module imports no JAX
(the family records read :data:`SW_PARAMETERS`); the functions that build arrays import it.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from rexfit.potentials import tokens as tok
from rexfit.potentials.tokens import PotentialFileError, Token, source_text, to_float

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


def _where(source, kind: str) -> str:
    return f"{kind} file" if isinstance(source, str) and "\n" in source else str(source)


def _check_units(first_line: str, where: str) -> None:
    words = first_line.split()
    for k, word in enumerate(words[:-1]):
        if word == "UNITS:" and words[k + 1] != "metal":
            raise PotentialFileError(f"UNITS: {words[k + 1]} (only metal units are supported)",
                                     where, 1)


def _read_located(source, names: tuple[str, ...], kind: str):
    """(entries, {triplet: line of its first word}, name for messages)."""
    text, where = source_text(source, kind)
    lines = text.splitlines()
    if lines:
        _check_units(lines[0], where)
    per_entry = 3 + len(names)
    entries: Entries = {}
    starts: dict[tuple[str, str, str], int] = {}
    words: list[Token] = []
    for line_words in tok.line_words(text):
        words.extend(line_words)
        if len(words) < per_entry:
            continue
        start = words[0].line
        if len(words) > per_entry:
            raise PotentialFileError(f"entry has {len(words)} words, expected {per_entry} "
                                     f"(3 elements + {len(names)} values)", where, start)
        key = (words[0].text, words[1].text, words[2].text)
        label = " ".join(key)
        values = [to_float(t, where, f"{n} of {label}") for n, t in zip(names, words[3:])]
        if key in entries:
            raise PotentialFileError(f"duplicate entry for {label}", where, start)
        entries[key] = dict(zip(names, values))
        starts[key] = start
        words = []
    if words:
        raise PotentialFileError(f"incomplete entry ({len(words)} of {per_entry} words)", where,
                                 words[0].line)
    return entries, starts, where


def read_entries(source, names: tuple[str, ...], kind: str = "potential") -> Entries:
    """Entries of a LAMMPS many-body file (path, or the text itself if it has newlines).

    ``names``: the K value names in file order.  Raises :class:`PotentialFileError` (a
    ``ValueError``, ``"path:line: message"``) on an incomplete or overlong entry, a value
    that is not a finite number, a duplicate triplet or non-metal units.
    """
    return _read_located(source, names, kind)[0]


def _fail(where: str | None, starts, key, message: str):
    if starts and key in starts:
        raise PotentialFileError(message, where, starts[key])
    raise ValueError(message if where is None else f"{where}: {message}")


def _check_sw(entries: Entries, where: str | None, starts=None) -> None:
    for key, v in entries.items():
        negative = [n for n in SW_PARAMETERS if n != "costheta0" and v[n] < 0.0]
        if negative:
            _fail(where, starts, key, f"illegal Stillinger-Weber parameter(s) {negative} "
                                      f"< 0 for {' '.join(key)}")


def _check_tersoff(entries: Entries, where: str | None, starts=None) -> None:
    for key, v in entries.items():
        bad = [n for n in ("c", "d", "n", "beta", "lambda2", "B", "R", "D", "lambda1", "A",
                           "gamma") if v[n] < 0.0]
        if v["D"] > v["R"]:
            bad.append("D > R")
        if v["m"] not in (1.0, 3.0):
            bad.append("m not 1 or 3")
        if bad:
            _fail(where, starts, key, f"illegal Tersoff parameter(s) {bad} for {' '.join(key)}")


def read_sw_file(source) -> Entries:
    """Entries of a LAMMPS ``.sw`` file, checked as LAMMPS does (no negative values)."""
    entries, starts, where = _read_located(source, SW_PARAMETERS, "Stillinger-Weber")
    _check_sw(entries, where, starts)
    return entries


def read_tersoff_file(source) -> Entries:
    """Entries of a LAMMPS ``.tersoff`` file, checked as LAMMPS does (m ∈ {1, 3}, D ≤ R, …)."""
    entries, starts, where = _read_located(source, TERSOFF_PARAMETERS, "Tersoff")
    _check_tersoff(entries, where, starts)
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


def sw_text(entries, header: Iterable[str] = ()) -> str:
    """The text of a LAMMPS ``.sw`` file of ``entries`` ({triplet: {name: value}}); raises
    ``ValueError`` for values LAMMPS would refuse."""
    _check_sw({k: {n: float(v[n]) for n in SW_PARAMETERS} for k, v in entries.items()}, None)
    return format_entries(entries, SW_PARAMETERS, header)


def tersoff_text(entries, header: Iterable[str] = ()) -> str:
    """The text of a LAMMPS ``.tersoff`` file of ``entries`` ({triplet: {name: value}});
    raises ``ValueError`` for values LAMMPS would refuse."""
    _check_tersoff({k: {n: float(v[n]) for n in TERSOFF_PARAMETERS}
                    for k, v in entries.items()}, None)
    return format_entries(entries, TERSOFF_PARAMETERS, header)


def write_sw_file(path, entries, header: Iterable[str] = ()) -> None:
    """Write ``entries`` as a LAMMPS ``.sw`` file (:func:`sw_text`; for tests and benchmarks:
    rexfit writes its fitted files through :mod:`rexfit.export`)."""
    _write(path, sw_text, entries, header)


def write_tersoff_file(path, entries, header: Iterable[str] = ()) -> None:
    """Write ``entries`` as a LAMMPS ``.tersoff`` file (:func:`tersoff_text`; for tests and
    benchmarks: rexfit writes its fitted files through :mod:`rexfit.export`)."""
    _write(path, tersoff_text, entries, header)


def _write(path, text, entries, header) -> None:
    try:
        content = text(entries, header)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    Path(path).write_text(content)


def params_from_entries(entries: Mapping, elements: Iterable[str],
                        names: tuple[str, ...]) -> dict:
    """Params pytree {tag: {name: float64 scalar}} for every triplet of ``elements``.

    Entries for other elements are ignored (as LAMMPS does); a missing triplet raises.
    """
    import jax

    elements = tuple(elements)
    params = {}
    missing = []
    for key in product(elements, repeat=3):
        if key not in entries:
            missing.append(" ".join(key))
            continue
        # put on the device as they are (jnp.float64 would compile a conversion program)
        params[triplet_tag(*key)] = {n: jax.device_put(np.float64(entries[key][n]))
                                     for n in names}
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
    import jax.numpy as jnp

    tags = [triplet_tag(*key) for key in product(elements, repeat=3)]
    return {n: jnp.stack([jnp.asarray(params[t][n]) for t in tags]) for n in names}


def check_tags(elements: tuple[str, ...]) -> None:
    """Raise if two element triplets would share a params key (e.g. 'A'+'BC' vs 'AB'+'C')."""
    tags = [triplet_tag(*key) for key in product(elements, repeat=3)]
    if len(set(tags)) != len(tags):
        raise ValueError(f"element names {elements} give ambiguous triplet tags")
    if len(set(elements)) != len(elements):
        raise ValueError(f"element names {elements} repeat")
