"""Reading DFT datasets (structures with energies, forces and stresses) into one host-side form.

Every reader returns a list of :class:`Entry`: plain numpy arrays in eV, Å, eV/Å and eV/Å³
(stress in Voigt order xx yy zz yz xz xy, positive = tensile, as ASE's
``atoms.get_stress(voigt=True)``). Nothing here touches JAX; the fitting layer converts entries
into systems itself.

Formats (``format=`` or detected, see :func:`detect_format`):

``extxyz``   extended XYZ through ``ase.io`` (all frames).
``outcar``   VASP OUTCAR through ``ase.io`` (every ionic step).
``vasprun``  VASP vasprun.xml through ``ase.io`` (every ionic step).
``db``       ASE SQLite database through ``ase.db`` (every row, key-value pairs for grouping).
``poscar``   one POSCAR/CONTCAR; three numbers after a coordinate are that atom's force (eV/Å).
``pyfit``    the PYFIT-FF dataset file: Cartesian POSCAR blocks, each followed by a line with its
             total DFT energy (eV); the comment line's first word names the structure's group.
``pacemaker``, ``fitsnap``, ``mlearn``: :mod:`rexfit.datasets.formats` (pandas pickle, FitSNAP
             JSON, pymatgen structure dicts with outputs), converted to rexfit's units and signs.
any other ``ase.io`` format name (``traj``, ``cif``, ...): ``ase.io.read(path, index=":")``.

Which frames are kept (``index``, ``groups``, ``select``) is :mod:`rexfit.datasets.selection`.

Problems with the files are raised as :class:`~rexfit.errors.InputError`; the origin is the file
and line of the problem when it is known (POSCAR, pyfit, and for the ASE formats the first line
of the frame concerned where it can be located), otherwise the message names the file and the
entry.

Also here: :func:`reference_energies` (per-element reference subtraction), :func:`energy_weights`
(energy-based structure weights) and :func:`split` (deterministic, group-stratified
training/validation split). ``docs/datasets-formats.md`` describes all of it for users.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from rexfit.datasets import frame_cache
from rexfit.datasets.formats.record import Frame as _Raw
from rexfit.datasets.formats.record import scalar_info
from rexfit.datasets.selection import (  # noqa: F401 - parse_index, parse_select: job checks
    SELECT_GROUP_KEYS,
    parse_index,
    parse_select,
    parse_selection,
)
from rexfit.datasets.selection import select as select_frames
from rexfit.errors import InputError, InputWarning, Origin

#: Format names of rexfit's own readers (any other ``ase.io`` format name is accepted too, and
#: read with ``ase.io.read``).
FORMATS = ("extxyz", "outcar", "vasprun", "db", "poscar", "pyfit", "pacemaker", "fitsnap",
           "mlearn")
#: Other spellings accepted for ``format=`` (ASE's names among them).
FORMAT_ALIASES = {"xyz": "extxyz", "vasp-out": "outcar", "vasp-xml": "vasprun",
                  "ase-db": "db", "vasp": "poscar", "contcar": "poscar",
                  "pckl": "pacemaker", "fitsnap-json": "fitsnap", "pymatgen": "mlearn"}
#: Quantities an entry can carry (and that ``require=`` can ask for).
QUANTITIES = ("energy", "forces", "stress")
#: Names under which a structure's group may be stored in extxyz info / ase.db key-value pairs,
#: looked up in this order by ``group_from="comment"``.
GROUP_KEYS = ("group", "config_type")
#: Names other codes store reference data under.  When no frame of a file has a quantity under
#: ASE's name and exactly one of these names occurs in the file, that one is read (see
#: docs/datasets-formats.md); otherwise ``keys`` must name it.
ALTERNATIVE_KEYS = {
    "energy": ("REF_energy", "DFT_energy", "dft_energy", "energy_dft", "energy_corrected"),
    "forces": ("REF_forces", "DFT_forces", "dft_forces", "forces_dft", "dft_force"),
    "stress": ("REF_stress", "DFT_stress"),
}

_ASE_FORMAT = {"extxyz": "extxyz", "outcar": "vasp-out", "vasprun": "vasp-xml"}
#: ASE's format names that rexfit reads with its own readers.
_FROM_ASE = {"extxyz": "extxyz", "xyz": "extxyz", "vasp-out": "outcar", "vasp-xml": "vasprun",
             "db": "db", "vasp": "poscar"}
_OWN_READERS = ("pacemaker", "fitsnap", "mlearn")
_ENERGY_KEYS = ("energy", "free_energy")
_PACEMAKER_SUFFIXES = (".pckl.gzip", ".pckl.gz", ".pkl.gzip", ".pkl.gz", ".pckl", ".pkl")


@dataclass(frozen=True, eq=False)
class Entry:
    """One structure of a dataset with its reference data.

    positions: (N, 3) float64, Cartesian, Å.
    cell: (3, 3) float64, Å; rows are the lattice vectors (zeros for a non-periodic molecule
        without a cell).
    pbc: periodicity along the three lattice vectors.
    symbols: chemical symbols of the N atoms.
    energy: total energy in eV (after ``energy_shift_per_atom``), or None.
    forces: (N, 3) eV/Å, or None.
    stress: (6,) eV/Å³, Voigt order xx yy zz yz xz xy, positive = tensile (ASE), or None.
    group: the structure's group id, or None.
    source: where the entry came from: ``"path:LINE"`` (POSCAR, pyfit: the line of the POSCAR
        comment), ``"path#K"`` (ASE formats, pacemaker, mlearn, FitSNAP files with several
        structures: 0-based frame index as for ``ase.io.read(path, index=K)``) or
        ``"path#id=K"`` (ase.db row id).
    info: the structure's metadata as the file gives it, for selection and weights (read-only
        mapping): extxyz/ASE info keys and ase.db key-value pairs with str, int, float or bool
        values (``config_type``, a per-frame ``weight``, ...); pacemaker's other columns, among
        them ``w_energy`` (per-structure energy weight) and ``w_forces`` ((N,) per-atom force
        weights, a read-only array); mlearn's ``group``/``tag``/``description``; FitSNAP's
        ``group`` (directory name) and other scalar keys.  Nothing in rexfit weights by it
        unless the job says so.

    The arrays are read-only.
    """

    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool]
    symbols: tuple[str, ...]
    energy: float | None
    forces: np.ndarray | None
    stress: np.ndarray | None
    group: str | None
    source: str
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def natoms(self) -> int:
        return len(self.symbols)

    @property
    def volume(self) -> float:
        """|det(cell)| in Å³ (0 for a structure without a cell)."""
        return abs(float(np.linalg.det(self.cell)))


# ---------------------------------------------------------------------------------------------
# entry point


def detect_format(path: str | os.PathLike) -> str:
    """The format of ``path``: from its name first (``*.xyz``/``*.extxyz`` → extxyz, ``OUTCAR*``
    → outcar, ``vasprun*.xml`` → vasprun, ``*.db`` → db, ``POSCAR*``/``CONTCAR*``/``*.vasp``/
    ``*.poscar`` → poscar, ``*.dat`` → pyfit, ``*.pckl.gzip``/``*.pkl.gz``/... → pacemaker;
    ``*.json``: FitSNAP's ``{"Dataset": ...}``, mlearn's list of structure dicts, else ASE's
    JSON database; a directory → fitsnap), then ASE's own detection
    (``ase.io.formats.filetype``), giving ``"ase:NAME"`` for a format ASE reads and rexfit has
    no reader of its own for (``ase:traj``, ``ase:cif``, ...).  Raises InputError when neither
    recognises the file."""
    p = os.fspath(path)
    name = os.path.basename(p.rstrip(os.sep))
    low = name.lower()
    if os.path.isdir(p):
        return "fitsnap"
    if low.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if name.upper().startswith("OUTCAR"):
        return "outcar"
    if low.startswith("vasprun") and low.endswith(".xml"):
        return "vasprun"
    if low.endswith(".db"):
        return "db"
    if name.upper().startswith(("POSCAR", "CONTCAR")) or low.endswith((".vasp", ".poscar")):
        return "poscar"
    if low.endswith(".dat"):
        return "pyfit"
    if low.endswith(_PACEMAKER_SUFFIXES):
        return "pacemaker"
    if low.endswith(".json"):
        kind = _sniff_json(p)
        if kind is not None:
            return kind
    ase_name = _ase_filetype(p)
    if ase_name is None:
        raise InputError(
            f"cannot tell the format of dataset file {p}; give the format explicitly "
            f"(one of {', '.join(FORMATS)}, or any format name ASE reads, e.g. traj, cif, "
            f"lammps-dump-text) or name the file *.xyz/*.extxyz, OUTCAR*, vasprun*.xml, *.db, "
            f"POSCAR*/CONTCAR*/*.vasp, *.dat (PYFIT-FF), *.pckl.gzip (pacemaker) or *.json "
            f"(FitSNAP, mlearn)")
    return _from_ase_name(ase_name)


def _sniff_json(path: str) -> str | None:
    """fitsnap or mlearn from the first bytes of a JSON file, else None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    body = head.lstrip()
    if body[:1] not in ("{", "["):                   # FitSNAP's optional comment line
        body = body.partition("\n")[2].lstrip()
    if body.startswith("{") and body[1:].lstrip().startswith('"Dataset"'):
        return "fitsnap"
    if body.startswith("[") and body[1:].lstrip().startswith("{") and '"structure"' in body:
        return "mlearn"
    if body.startswith("{") and '"structure"' in body and '"outputs"' in body:
        return "mlearn"
    return None


def _ase_filetype(path: str) -> str | None:
    """ASE's name for the format of ``path`` (by name and content), or None."""
    from ase.io.formats import filetype, ioformats

    if not os.path.isfile(path):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            name = filetype(path, guess=False)
    except Exception:  # ase raises UnknownFileTypeError, OSError, ...
        return None
    return name if name in ioformats and ioformats[name].can_read else None


def _from_ase_name(name: str) -> str:
    return _FROM_ASE.get(name, f"ase:{name}")


def read_dataset(path: str | os.PathLike, format: str | None = None, *,
                 group_from: str | None = None, energy_shift_per_atom: float = 0.0,
                 require: Iterable[str] = (), energy_key: str = "energy",
                 species: Sequence[str] | None = None, keys: dict | None = None,
                 use: Iterable[str] | None = None, index: str | int | None = None,
                 groups: Iterable[str] | str | None = None, select: str | None = None,
                 warn: Callable[[InputError], None] | None = None) -> list[Entry]:
    """Read the structures of a dataset file (all, or those selected).

    format: one of :data:`FORMATS` (or an alias in :data:`FORMAT_ALIASES`), or any format name
        ``ase.io`` reads (``traj``, ``cif``, ``lammps-dump-text``, ...); None detects it
        (:func:`detect_format`).
    group_from: where each entry's ``group`` comes from. None: no groups. ``"comment"``: the
        first word of the POSCAR comment line (poscar, pyfit), or the ``group``/``config_type``
        info key (ASE formats, pacemaker, mlearn, fitsnap) or key-value pair (db).
        ``"info:KEY"``: the info key (or ase.db key-value pair, pacemaker column) KEY. An
        entry without the requested group is an error.
    energy_shift_per_atom: eV/atom added to every energy: E = E_file + N × shift (PYFIT-FF's
        ``u_shift``).
    require: quantities ("energy", "forces", "stress") every entry must have; an entry without
        one is an error.
    energy_key: which ASE result is the energy when a file carries two: ``"energy"`` (the
        default; for VASP energy(sigma→0)) or ``"free_energy"`` (VASP's TOTEN, the energy the
        forces are derivatives of). When the chosen one is absent, the other is used.
    species: element names, in order, for POSCAR blocks without a species line (VASP 4).
    keys: {quantity: name} for reference data stored under other names than ASE's ("energy",
        "forces", "stress"): e.g. ``{"energy": "REF_energy", "forces": "REF_forces"}`` as in
        pacemaker and MACE files (info keys and per-atom arrays, ase.db key-value pairs and
        data, pacemaker columns, mlearn outputs, FitSNAP keys; a value read by name is taken in
        eV, eV/Å and eV/Å³ with ASE's sign).  A named key found in no entry of the file is an
        error.  Without ``keys``, a quantity no frame has under ASE's name is read from the one
        name of :data:`ALTERNATIVE_KEYS` the file uses, if it uses exactly one.
    use: the quantities the caller will use ("energy", "forces", "stress"); when given, an
        entry that has none of them is an error naming the frame, the keys it does carry and
        how to name them with ``keys``, and entries that lack some of them are reported
        through ``warn`` with their count.
    index: which frames, in ASE's index syntax: ``"3"``, ``"-1"``, ``"0:100"``, ``"::2"``,
        ``"-10:"`` (positions in the file, 0-based; rows of a database in row-id order).
    groups: keep the entries whose group is one of these names (a list, or names separated by
        blanks); the group is taken as ``group_from`` says, or else from the ``config_type``
        or ``group`` info key.
    select: ``"KEY=PATTERN ..."``: keep the entries whose info value KEY matches the
        shell-style PATTERN (``fnmatch``: ``*``, ``?``, ``[abc]``; ``a|b`` for either);
        ``KEY!=PATTERN`` keeps those that do not match; several conditions separated by blanks
        must all hold.  Index, groups and select combine (all must hold); a selection that
        keeps no frame is an error.
    warn: called with an :class:`InputError` of severity "warning" for each problem that does
        not stop the reading (some entries lack a quantity of ``use``); None issues it as an
        :class:`~rexfit.errors.InputWarning` with :func:`warnings.warn`.

    A stress on an entry without a periodic cell of non-zero volume is an error (it could not
    be used).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(f"dataset file {p} not found")
    fmt = _resolve_format(p, format)
    group = _parse_group_from(group_from, fmt)
    required = _parse_require(require)
    used = None if use is None else _parse_require(use)
    keys = _parse_keys(keys, fmt)
    picks = parse_selection(index, groups, select)
    if energy_key not in _ENERGY_KEYS:
        raise InputError(f"energy_key must be one of {', '.join(_ENERGY_KEYS)}, not "
                         f"'{energy_key}'")
    if not math.isfinite(energy_shift_per_atom):
        raise InputError(f"energy shift per atom must be a finite number, not "
                         f"{energy_shift_per_atom}")
    if os.path.isdir(p) and fmt != "fitsnap":
        raise InputError(f"dataset file {p} is a directory (only FitSNAP JSON is read from a "
                         "directory)")

    if fmt in _ASE_FORMAT or fmt.startswith("ase:"):
        raws = _read_ase_file(p, fmt, group, energy_key, keys)
    elif fmt == "db":
        raws = _read_db(p, group, energy_key, keys)
    elif fmt in _OWN_READERS:
        raws = _read_own(p, fmt, group, keys)
    else:
        raws = _read_poscar_file(p, fmt, group, species)
    if not raws:
        raise InputError(f"no structures found (read as {fmt})", Origin(p, 1))

    locate = _Locator(p, fmt)
    raws = select_frames(raws, picks, group_from, p, fmt)
    _use_alternatives(raws, keys)
    _check_keys_found(raws, keys, p, locate)
    entries = [_finish(r, p, locate, energy_shift_per_atom) for r in raws]
    _check_required(entries, raws, required, p, locate)
    if used is not None:
        _check_used(entries, raws, used, p, locate)
        _warn_partial(entries, raws, used, p, locate, warn)
    return entries


#: Formats without named data (``keys`` cannot apply).
_NO_NAMES = ("outcar", "vasprun", "poscar", "pyfit")
#: Where ``keys`` may rename reference data, and the attribute of ``<file>`` that does it.
KEY_ATTRIBUTES = {"energy": "energy-key", "forces": "forces-key", "stress": "stress-key"}


def _parse_keys(keys: dict | None, fmt: str) -> dict:
    keys = {q: str(k).strip() for q, k in (keys or {}).items() if k is not None}
    bad = [q for q in keys if q not in QUANTITIES]
    if bad:
        raise InputError(f"unknown quantity {', '.join(map(repr, bad))} in keys; choose from "
                         f"{', '.join(QUANTITIES)}")
    if keys and fmt in _NO_NAMES:
        names = ", ".join(KEY_ATTRIBUTES[q] for q in keys)
        raise InputError(f"{names}: a {fmt} file stores no data under names of its own (only "
                         f"extxyz and other ASE formats, ASE databases, pacemaker, FitSNAP and "
                         f"mlearn files do)")
    empty = [KEY_ATTRIBUTES[q] for q, k in keys.items() if not k]
    if empty:
        raise InputError(f"{', '.join(empty)} is empty: give the name of the key")
    return keys


def _check_keys_found(raws: list[_Raw], keys: dict, path: str, locate: _Locator) -> None:
    for q, key in keys.items():
        if not any(getattr(r, q) is not None for r in raws):
            first = raws[0]
            raise _err(path, locate(first), f"{KEY_ATTRIBUTES[q]}=\"{key}\": no entry of the "
                       f"file has it; {first.what} has{_describe_keys(first) or ' none'}")


def _describe_keys(r: _Raw) -> str:
    """" (info keys: a, b; arrays: c)" — the names an ASE entry carries besides its data."""
    if r.keys_kind[0] is None:
        return ""
    info, arrays = r.extra
    parts = [f"{r.keys_kind[0]}: {', '.join(info) if info else 'none'}"]
    if r.keys_kind[1]:
        parts.append(f"{r.keys_kind[1]}: {', '.join(arrays) if arrays else 'none'}")
    return f" ({'; '.join(parts)})"


def _key_hint(r: _Raw, q: str) -> str:
    """"; name it with forces-key=\"X\"" when ``r`` has a key that looks like ``q``, else ""."""
    names = _candidates(r)[q]
    return f'; name it with {KEY_ATTRIBUTES[q]}="{names[0]}"' if names else ""


def _candidates(r: _Raw) -> dict[str, list[str]]:
    """Names among ``r``'s keys that look like reference energies, forces, stresses."""
    info, arrays = r.extra
    return {
        "energy": [k for k in info if "energy" in k.lower() and "weight" not in k.lower()
                   and not k.lower().startswith("w_")],
        "forces": [k for k in arrays + info if "force" in k.lower()
                   and "weight" not in k.lower() and not k.lower().startswith("w_")],
        "stress": [k for k in info if "stress" in k.lower() or "virial" in k.lower()],
    }


def _suggest(r: _Raw) -> str:
    """A hint naming the keys of ``r`` that look like reference data."""
    pick = _candidates(r)
    hints = [f'{KEY_ATTRIBUTES[q]}="{names[0]}"' for q, names in pick.items() if names]
    if hints:
        return "; name the keys on the dataset's <file>: " + " ".join(hints)
    return ("; the file holds no reference data for it: add its energy, forces or stress, or "
            "leave it out")


def _check_used(entries: list[Entry], raws: list[_Raw], used: tuple[str, ...], path: str,
                locate: _Locator) -> None:
    """Every entry must carry at least one quantity in ``used`` (else it contributes nothing)."""
    empty = [k for k, e in enumerate(entries) if all(getattr(e, q) is None for q in QUANTITIES)]
    unused = [k for k, e in enumerate(entries)
              if k not in empty and all(getattr(e, q) is None for q in used)]
    if empty:
        first = raws[empty[0]]
        more = _more(raws, empty, len(entries))
        raise _err(path, locate(first),
                   f"{first.what} has no energy, forces or stress{more}{_describe_keys(first)}"
                   f"{_suggest(first)}")
    if unused:
        first, e = raws[unused[0]], entries[unused[0]]
        has = [q for q in QUANTITIES if getattr(e, q) is not None]
        more = _more(raws, unused, len(entries))
        prop = {"energy": "<atomic-energy/>", "forces": "<atomic-forces/>", "stress": "<stress/>"}
        raise _err(path, locate(first),
                   f"{first.what} has only {' and '.join(has)}{more}, which the dataset does "
                   f"not fit (it fits {', '.join(used)}): add {' '.join(prop[q] for q in has)} "
                   "to the dataset's <properties>, or leave the entry out")


def _more(raws: list[_Raw], bad: list[int], total: int) -> str:
    if len(bad) == 1:
        return ""
    names = ", ".join(raws[k].what for k in bad[1:4])
    rest = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
    return f" (so do {names}{rest}: {len(bad)} of {total} entries)"


def resolve_format(path: str, format: str | None) -> str:
    """The reader for ``path``: a name of :data:`FORMATS` or ``"ase:NAME"`` (read with
    ``ase.io``), from ``format`` or detected (:func:`detect_format`)."""
    if format is None:
        return detect_format(path)
    f = format.strip().lower()
    f = FORMAT_ALIASES.get(f, f)
    if f in FORMATS:
        return f
    name = format.strip()
    if is_ase_format(name):
        return _from_ase_name(name)
    raise InputError(f"unknown dataset format '{format}' for {path}; accepted formats: "
                     f"{', '.join(FORMATS)}, or any format name ASE reads (see 'ase info "
                     f"--formats')")


_resolve_format = resolve_format


def is_format_name(name: str) -> bool:
    """True if ``format=name`` is accepted: rexfit's names, their aliases, ASE's names."""
    f = name.strip().lower()
    return f in FORMATS or f in FORMAT_ALIASES or is_ase_format(name.strip())


def is_ase_format(name: str) -> bool:
    """True if ``ase.io`` can read the format ``name``."""
    from ase.io.formats import ioformats

    return name in ioformats and ioformats[name].can_read


def _parse_group_from(group_from: str | None, fmt: str) -> tuple[str, str | None] | None:
    if group_from is None:
        return None
    if group_from == "comment":
        if fmt in ("outcar", "vasprun"):
            raise InputError(f"group_from='comment': a {fmt} file carries no comment or group "
                             f"key; groups can come from poscar, pyfit, extxyz, db, "
                             f"pacemaker, fitsnap or mlearn files")
        return ("comment", None)
    if group_from.startswith("info:") and group_from[5:].strip():
        if fmt in _NO_NAMES:
            raise InputError(f"group_from='{group_from}': a {fmt} file has no info keys to "
                             "name groups")
        return ("info", group_from[5:].strip())
    raise InputError(f"group_from must be 'comment' or 'info:KEY', not '{group_from}'")


def _use_alternatives(raws: list[_Raw], keys: dict) -> None:
    """A quantity no frame has under ASE's name, and not named in ``keys``: read it from the one
    name of :data:`ALTERNATIVE_KEYS` the frames use, if they use exactly one."""
    for q in QUANTITIES:
        if q in keys or any(getattr(r, q) is not None for r in raws):
            continue
        names = {n for r in raws for n in r.alternatives.get(q, {})}
        if len(names) != 1:
            continue
        (name,) = names
        for r in raws:
            if name in r.alternatives.get(q, {}):
                setattr(r, q, r.alternatives[q][name])
                if q == "stress":
                    r.virial = None


def _missing(entries: list[Entry], raws: list[_Raw], quantity: str, shown: int):
    """(indices of the entries without ``quantity``, the first one's raw frame, the first
    ``shown`` named, " and N more")."""
    missing = [k for k, e in enumerate(entries) if getattr(e, quantity) is None]
    if not missing:
        return missing, None, "", ""
    names = ", ".join(raws[k].what for k in missing[:shown])
    more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
    return missing, raws[missing[0]], names, more


def _warn_partial(entries: list[Entry], raws: list[_Raw], used: tuple[str, ...], path: str,
                  locate: _Locator, warn) -> None:
    """Entries that lack some (not all) of the used quantities: one warning per quantity."""
    for q in used:
        missing, first, names, more = _missing(entries, raws, q, 3)
        if not missing:
            continue
        fits = [x for x in used if x != q]
        hint = _key_hint(first, q) if len(missing) == len(entries) else ""
        line = locate(first)
        message = (f"{q} missing in {len(missing)} of {len(entries)} entries ({names}{more}); "
                   f"they fit {' and '.join(fits) if fits else 'nothing else'}{hint}")
        err = (InputError(message, Origin(path, line), severity="warning") if line is not None
               else InputError(f"{path}: {message}", severity="warning"))
        if warn is None:
            warnings.warn(InputWarning(err), stacklevel=3)
        else:
            warn(err)


def _read_own(path: str, fmt: str, group, keys: dict) -> list[_Raw]:
    """pacemaker, fitsnap and mlearn files (rexfit.datasets.formats)."""
    from importlib import import_module

    reader = import_module(f"rexfit.datasets.formats.{fmt}")
    raws = reader.read(path)
    for r in raws:
        for q, key in keys.items():
            setattr(r, q, r.named.get(key))
        for q in QUANTITIES:
            found = {n: r.named[n] for n in ALTERNATIVE_KEYS[q] if n in r.named}
            r.alternatives = {**r.alternatives, q: {**found, **r.alternatives.get(q, {})}}
        if group is not None:
            names = GROUP_KEYS if group[0] == "comment" else (group[1],)
            for n in names:
                if n in r.info:
                    r.group = r.info[n]
                    break
            else:
                raise InputError(f"{path}: {r.what}: no {' or '.join(map(repr, names))} to "
                                 "take the group from")
    return raws


def _parse_require(require: Iterable[str]) -> tuple[str, ...]:
    req = (require,) if isinstance(require, str) else tuple(require)
    bad = [q for q in req if q not in QUANTITIES]
    if bad:
        raise InputError(f"unknown required quantity {', '.join(map(repr, bad))}; "
                         f"choose from {', '.join(QUANTITIES)}")
    return req


# ---------------------------------------------------------------------------------------------
# the common record the readers produce, and its checks


class _Locator:
    """Finds, only when an error needs it, the line where frame ``k`` of an ASE file starts."""

    _MARK = {"outcar": "FREE ENERGIE OF THE ION-ELECTRON SYSTEM", "vasprun": "<calculation"}

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt, self._lines = path, fmt, None

    def __call__(self, raw: _Raw) -> int | None:
        if raw.line is not None or self.fmt not in ("extxyz", "outcar", "vasprun"):
            return raw.line
        if self._lines is None:
            try:
                self._lines = self._scan()
            except (OSError, UnicodeDecodeError, ValueError):
                self._lines = []
        return self._lines[raw.index] if raw.index < len(self._lines) else None

    def _scan(self) -> list[int]:
        starts = []
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            if self.fmt == "extxyz":
                skip = 0
                for no, line in enumerate(fh, 1):
                    if skip:
                        skip -= 1
                    elif line.strip():
                        starts.append(no)
                        skip = int(line.split()[0]) + 1
            else:
                mark = self._MARK[self.fmt]
                for no, line in enumerate(fh, 1):
                    if mark in line:
                        starts.append(no)
        return starts


def _err(path: str, line: int | None, message: str) -> InputError:
    if line is None:
        return InputError(f"{path}: {message}")
    return InputError(message, Origin(path, line))


def _finish(r: _Raw, path: str, locate: _Locator, shift: float) -> Entry:
    """Checks shapes and finiteness, converts a virial, applies the energy shift."""

    def fail(message: str, offset: int | None = None) -> InputError:
        """An error at the entry's first line; ``offset``: the problem is that many lines
        below it (extxyz: 1 is the comment line, 2 + i the line of atom i), said in the
        message."""
        line = locate(r)
        if line is not None and offset is not None and locate.fmt == "extxyz":
            message += f" (line {line + offset})"
        return _err(path, line, f"{r.what}: {message}")

    def array(x, shape, name, per_atom=False):
        try:
            a = np.array(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise fail(f"{name} is not numeric") from None
        if a.shape != shape:
            raise fail(f"{name} has shape {a.shape}, expected {shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            if per_atom:
                i = int(np.argwhere(bad)[0][0])
                raise fail(f"{name} of atom {i} ({r.symbols[i]}) are not finite "
                           f"({', '.join(str(v) for v in a[i])})", 2 + i)
            raise fail(f"{name} contains a non-finite number", 1)
        a.setflags(write=False)
        return a

    n = len(r.symbols)
    if n == 0:
        raise fail("the structure has no atoms")
    positions = array(r.positions, (n, 3), "positions", per_atom=True)
    cell = array(r.cell, (3, 3), "cell")
    pbc = tuple(bool(b) for b in np.broadcast_to(np.asarray(r.pbc, dtype=bool), (3,)))
    forces = None if r.forces is None else array(r.forces, (n, 3), "forces", per_atom=True)
    stress = None
    if r.stress is not None:
        try:
            s = np.asarray(r.stress, dtype=np.float64)
        except (TypeError, ValueError):
            raise fail("stress is not numeric") from None
        s = s.reshape(3, 3) if s.shape == (9,) else s
        stress = array(_to_voigt(s) if s.shape == (3, 3) else s, (6,), "stress")
        if not (all(bool(b) for b in np.broadcast_to(np.asarray(r.pbc, dtype=bool), (3,)))
                and abs(float(np.linalg.det(cell))) > 1e-12):
            raise fail("it has a stress but no periodic cell (a stress needs the cell volume "
                       "and would be ignored): give its lattice and pbc (extxyz: Lattice=\"...\""
                       " pbc=\"T T T\"), or remove the stress")
    elif r.virial is not None:
        stress = array(_stress_from_virial(r.virial, cell, pbc, fail), (6,), "stress")
    energy = None
    if r.energy is not None:
        try:
            energy = float(r.energy)
        except (TypeError, ValueError):
            raise fail(f"energy {r.energy!r} is not a number") from None
        if not math.isfinite(energy):
            raise fail("the energy is not a finite number", 1)
        energy += n * shift
    group = None if r.group is None else str(r.group)
    return Entry(positions, cell, pbc, tuple(str(x) for x in r.symbols), energy, forces,
                 stress, group, r.source, _frozen_info(r.info))


def _frozen_info(info: dict):
    """A read-only view of ``info`` with read-only copies of its arrays."""
    from types import MappingProxyType

    out = {}
    for k, v in info.items():
        if isinstance(v, np.ndarray):
            v = v.copy()
            v.setflags(write=False)
        out[k] = v
    return MappingProxyType(out)


def _to_voigt(m: np.ndarray) -> np.ndarray:
    return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])


def _stress_from_virial(virial, cell: np.ndarray, pbc, fail) -> np.ndarray:
    """σ = −W/V (eV/Å³, ASE sign) from the virial W (eV) as written in extxyz files (the
    libAtoms/QUIP convention W = −V σ, used by GAP, MACE and NequIP data)."""
    w = np.asarray(virial, dtype=np.float64)
    if w.shape == (9,):
        w = w.reshape(3, 3)
    if w.shape == (6,):                    # already Voigt xx yy zz yz xz xy
        w_voigt = w
    elif w.shape == (3, 3):
        w_voigt = _to_voigt(w)
    else:
        raise fail(f"the virial has shape {w.shape}, expected 3×3, 9 or 6 numbers")
    volume = abs(float(np.linalg.det(cell)))
    if not all(pbc) or volume < 1e-12:
        raise fail("a virial is given but the structure has no periodic cell to divide it by")
    return -w_voigt / volume


def _check_required(entries: list[Entry], raws: list[_Raw], required: tuple[str, ...],
                    path: str, locate: _Locator) -> None:
    for q in required:
        missing, first, names, more = _missing(entries, raws, q, 5)
        if not missing:
            continue
        raise _err(path, locate(first),
                   f"{q} is required but missing in {len(missing)} of {len(entries)} "
                   f"structures ({names}{more})")


# ---------------------------------------------------------------------------------------------
# formats read by ase.io / ase.db


def _ase_results(atoms, energy_key: str) -> tuple[Any, Any, Any]:
    res = atoms.calc.results if atoms.calc is not None else {}
    other = _ENERGY_KEYS[1 - _ENERGY_KEYS.index(energy_key)]
    energy = res.get(energy_key, res.get(other))
    return energy, res.get("forces"), res.get("stress")


def _group_of(mapping: dict, group, what: str, path: str, line, kind: str):
    if group is None:
        return None
    keys = GROUP_KEYS if group[0] == "comment" else (group[1],)
    for k in keys:
        if k in mapping:
            return mapping[k]
    raise _err(path, line, f"{what}: no {' or '.join(repr(k) for k in keys)} {kind} to take "
                           f"the group from")


_STANDARD_ARRAYS = {"numbers", "positions"}


def _lookup(key: str | None, default, *maps):
    """The value of ``key`` in the first mapping that has it, or ``default`` without a key."""
    if key is None:
        return default
    for m in maps:
        if key in m:
            return m[key]
    return None


def _read_ase_file(path: str, fmt: str, group, energy_key: str,
                   keys: dict | None = None) -> list[_Raw]:
    def parse():
        import ase.io

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ase.io.read(path, index=":", format=_ASE_FORMAT.get(fmt) or fmt[4:])

    try:
        frames = frame_cache.read_frames(path, _ASE_FORMAT.get(fmt) or fmt[4:], ":", parse)
    except Exception as exc:  # ase raises many exception types for malformed files
        msg = str(exc) or type(exc).__name__
        raise _err(path, _line_of_quoted_word(path, msg),
                   f"cannot read the file as {fmt.removeprefix('ase:')}: {msg}") from None
    if not isinstance(frames, list):
        frames = [frames]
    locate = _Locator(path, fmt)
    word = "ionic step" if fmt in ("outcar", "vasprun") else "frame"
    raws = []
    keys = keys or {}
    for k, atoms in enumerate(frames):
        energy, forces, stress = _ase_results(atoms, energy_key)
        res = atoms.calc.results if atoms.calc is not None else {}
        energy = _lookup(keys.get("energy"), energy, atoms.info, res)
        forces = _lookup(keys.get("forces"), forces, atoms.arrays, res)
        stress = _lookup(keys.get("stress"), stress, atoms.info, res)
        what = f"{word} {k}"
        raw = _Raw(atoms.positions, np.asarray(atoms.cell), atoms.pbc,
                   atoms.get_chemical_symbols(), energy, forces, stress, None,
                   f"{path}#{k}", what, k, info=scalar_info(atoms.info))
        raw.extra = (tuple(sorted(str(x) for x in atoms.info)),
                     tuple(sorted(str(x) for x in atoms.arrays if x not in _STANDARD_ARRAYS)))
        raw.keys_kind = ("info keys", "arrays")
        raw.alternatives = {
            "energy": {n: atoms.info[n] for n in ALTERNATIVE_KEYS["energy"] if n in atoms.info},
            "forces": {n: atoms.arrays[n] for n in ALTERNATIVE_KEYS["forces"]
                       if n in atoms.arrays},
            "stress": {n: atoms.info[n] for n in ALTERNATIVE_KEYS["stress"] if n in atoms.info}}
        if fmt not in ("outcar", "vasprun"):
            if stress is None and "virial" in atoms.info:
                raw.virial = atoms.info["virial"]
            if group is not None:
                raw.group = _group_of(atoms.info, group, what, path, locate(raw), "info key")
        raws.append(raw)
    return raws


def _line_of_quoted_word(path: str, message: str) -> int | None:
    """The first line of ``path`` holding, as a word of its own, the word an ASE message quotes
    ("could not convert string to float: 'x1'"), or None."""
    import re

    m = re.search(r"'([^'\s]+)'\s*$", message)
    if m is None:
        return None
    word = m.group(1)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for no, line in enumerate(fh, 1):
                if word in line.split():
                    return no
    except OSError:
        return None
    return None


def _read_db(path: str, group, energy_key: str, keys: dict | None = None) -> list[_Raw]:
    import sqlite3

    import ase.db

    # Refuse files that are not ASE databases before ase.db would add its tables to them.
    try:
        con = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            ok = con.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='systems'"
                             ).fetchone()[0] == 1
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise _err(path, None, f"cannot read the file as an ASE database: {exc}") from None
    if not ok:
        raise _err(path, None, "not an ASE database (it has no 'systems' table)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with ase.db.connect(path, type="db", create_indices=False,
                                use_lock_file=False) as db:
                rows = list(db.select())
                frames = [(row.id, row.toatoms(), dict(row.key_value_pairs),
                           row.get("data", {})) for row in rows]
    except Exception as exc:  # sqlite and ase raise many types
        raise _err(path, None, f"cannot read the ASE database: {exc}") from None
    raws = []
    for k, (rid, atoms, kvp, data) in enumerate(frames):
        energy, forces, stress = _ase_results(atoms, energy_key)
        # PyXtal_FF stores its reference data in the row's data dictionary.
        if energy is None and "dft_energy" in data:
            energy = data["dft_energy"]
        if forces is None and "dft_force" in data:
            forces = data["dft_force"]
        keys = keys or {}
        res = atoms.calc.results if atoms.calc is not None else {}
        energy = _lookup(keys.get("energy"), energy, kvp, data, res)
        forces = _lookup(keys.get("forces"), forces, data, kvp, res)
        stress = _lookup(keys.get("stress"), stress, kvp, data, res)
        what = f"row id={rid}"
        g = None if group is None else _group_of(kvp, group, what, path, None, "key-value pair")
        raw = _Raw(atoms.positions, np.asarray(atoms.cell), atoms.pbc,
                   atoms.get_chemical_symbols(), energy, forces, stress, g,
                   f"{path}#id={rid}", what, k, info=scalar_info(kvp))
        raw.alternatives = {q: {n: m[n] for m in (kvp, data) for n in ALTERNATIVE_KEYS[q]
                                if n in m} for q in QUANTITIES}
        raw.extra = (tuple(sorted(str(x) for x in kvp)), tuple(sorted(str(x) for x in data)))
        raw.keys_kind = ("key-value pairs", "data")
        raws.append(raw)
    return raws


# ---------------------------------------------------------------------------------------------
# POSCAR and PYFIT-FF files, read here (ASE's POSCAR reader has no force columns)


class _Text:
    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, encoding="utf-8") as fh:
                self.lines = fh.read().splitlines()
        except UnicodeDecodeError as exc:
            raise _err(path, None, f"not a text file: {exc}") from None
        except OSError as exc:
            raise _err(path, None, f"cannot read the file: {exc}") from None

    def error(self, i: int, message: str) -> InputError:
        return InputError(message, Origin(self.path, min(i, max(len(self.lines) - 1, 0)) + 1))

    def tokens(self, i: int, expected: str, context: str) -> list[str]:
        if i >= len(self.lines):
            raise self.error(i, f"{context}: the file ends where {expected} was expected")
        toks = self.lines[i].split()
        if not toks:
            raise self.error(i, f"{context}: empty line where {expected} was expected")
        return toks

    def numbers(self, i: int, count: int, expected: str, context: str) -> list[float]:
        toks = self.tokens(i, expected, context)
        try:
            vals = [float(t) for t in toks[:count]]
        except ValueError:
            vals = []
        if len(vals) < count or not all(math.isfinite(v) for v in vals):
            raise self.error(i, f"{context}: expected {expected}, found '{self.lines[i].strip()}'")
        return vals

    def skip_blank(self, i: int) -> int:
        while i < len(self.lines) and not self.lines[i].strip():
            i += 1
        return i


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def _is_count(t: str) -> bool:
    return t.isascii() and t.isdigit()


def _element(name: str) -> str | None:
    """'Si', 'Si_pv', 'Si/8a1b…' (VASP 6 hashes) → 'Si'; None when not an element."""
    from ase.data import chemical_symbols

    sym = name.split("/")[0].split("_")[0]
    return sym if sym in chemical_symbols and sym != "X" else None


def _poscar_block(t: _Text, i: int, species: Sequence[str] | None) -> tuple[dict, int]:
    """Parses one POSCAR starting at line index ``i`` (its comment line); returns the structure
    and the index of the first line after its coordinates."""
    start = i
    ctx = f"POSCAR starting at line {start + 1}"
    comment = t.lines[i] if i < len(t.lines) else ""
    i += 1

    toks = t.tokens(i, "the scaling factor", ctx)
    if len(toks) >= 3 and all(_is_float(x) for x in toks[:3]):     # VASP 6: one per axis
        scale = np.array([float(x) for x in toks[:3]])
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise t.error(i, f"{ctx}: three scaling factors must all be positive")
    elif _is_float(toks[0]) and math.isfinite(float(toks[0])) and float(toks[0]) != 0.0:
        scale = float(toks[0])
    else:
        raise t.error(i, f"{ctx}: expected the scaling factor, found '{t.lines[i].strip()}'")
    i += 1
    cell = np.array([t.numbers(i + k, 3, "three lattice-vector components", ctx)
                     for k in range(3)])
    i += 3
    if isinstance(scale, np.ndarray):
        factors = scale
    elif scale < 0:            # VASP: a negative scale is the cell volume
        vol = abs(np.linalg.det(cell))
        if vol < 1e-12:
            raise t.error(start + 2, f"{ctx}: the lattice vectors are linearly dependent")
        factors = np.full(3, (-scale / vol) ** (1.0 / 3.0))
    else:
        factors = np.full(3, scale)
    cell = cell * factors[None, :]

    toks = t.tokens(i, "the species names or atom counts", ctx)
    if all(_is_count(x) for x in toks):
        if species is None:
            raise t.error(i, f"{ctx}: no species line (VASP 4 layout); add the element names "
                             f"above the atom counts or give the species explicitly")
        names = list(species)
    else:
        names = []
        for x in toks:
            el = _element(x)
            if el is None:
                raise t.error(i, f"{ctx}: '{x}' is not a chemical element")
            names.append(el)
        i += 1
        toks = t.tokens(i, "the atom counts", ctx)
    if not all(_is_count(x) for x in toks):
        raise t.error(i, f"{ctx}: expected the atom counts (integers), found "
                         f"'{t.lines[i].strip()}'")
    counts = [int(x) for x in toks]
    if len(counts) != len(names):
        raise t.error(i, f"{ctx}: {len(counts)} atom counts for {len(names)} species "
                         f"({' '.join(names)})")
    n = sum(counts)
    if n == 0:
        raise t.error(i, f"{ctx}: the structure has no atoms")
    i += 1

    toks = t.tokens(i, "'Direct' or 'Cartesian'", ctx)
    selective = toks[0][0] in "sS"
    if selective:
        i += 1
        toks = t.tokens(i, "'Direct' or 'Cartesian'", ctx)
    mode = toks[0][0].lower()
    if mode not in "cdk":
        raise t.error(i, f"{ctx}: expected 'Direct' or 'Cartesian', found "
                         f"'{t.lines[i].strip()}'")
    cartesian = mode in "ck"
    i += 1

    pos = np.empty((n, 3))
    forces = np.empty((n, 3))
    has_force = []
    for a in range(n):
        pos[a] = t.numbers(i + a, 3, f"the coordinates of atom {a + 1} of {n}", ctx)
        rest = t.lines[i + a].split()[3:]
        if selective:
            rest = rest[3:]
        if rest and _is_float(rest[0]):
            if len(rest) < 3 or not all(_is_float(x) for x in rest[:3]):
                raise t.error(i + a, f"{ctx}: atom {a + 1}: expected three force components "
                                     f"after the coordinates")
            forces[a] = [float(x) for x in rest[:3]]
            if not np.all(np.isfinite(forces[a])):
                raise t.error(i + a, f"{ctx}: atom {a + 1}: non-finite force component")
            has_force.append(True)
        else:
            has_force.append(False)
    if any(has_force) and not all(has_force):
        a = has_force.index(not has_force[0])
        raise t.error(i + a, f"{ctx}: atom {a + 1} {'has' if has_force[a] else 'lacks'} force "
                             f"columns, atom 1 {'has' if has_force[0] else 'does not'}; either "
                             f"all atoms carry forces or none")
    pos = pos * factors[None, :] if cartesian else pos @ cell
    symbols = [nm for nm, c in zip(names, counts) for _ in range(c)]
    block = dict(comment=comment, positions=pos, cell=cell, symbols=symbols,
                 forces=forces if all(has_force) else None)
    return block, i + n


def _comment_group(comment: str, group, what: str, t: _Text, line: int):
    if group is None:
        return None
    words = comment.split()
    if not words:
        raise t.error(line, f"{what}: the comment line is empty, so it names no group")
    return words[0]


def _read_poscar_file(path: str, fmt: str, group, species) -> list[_Raw]:
    t = _Text(path)
    if not any(ln.strip() for ln in t.lines):
        raise InputError(f"no structures found (read as {fmt}): the file is empty",
                         Origin(path, 1))
    raws = []
    i = 0 if fmt == "poscar" else t.skip_blank(0)
    while True:
        start = i
        what = f"structure {len(raws)} (line {start + 1})"
        block, i = _poscar_block(t, i, species)
        energy = None
        if fmt == "pyfit":
            i = t.skip_blank(i)
            ctx = f"POSCAR starting at line {start + 1}"
            toks = t.tokens(i, "the structure's DFT energy (eV)", ctx)
            if not _is_float(toks[0]) or len(toks) > 1 and _is_float(toks[1]):
                raise t.error(i, f"{ctx}: expected one number, the structure's DFT energy in "
                                 f"eV, after the coordinates; found '{t.lines[i].strip()}'")
            energy = float(toks[0])
            if not math.isfinite(energy):
                raise t.error(i, f"{ctx}: the energy is not a finite number")
            i = t.skip_blank(i + 1)
        raws.append(_Raw(block["positions"], block["cell"], (True, True, True),
                         block["symbols"], energy, block["forces"], None,
                         _comment_group(block["comment"], group, what, t, start),
                         f"{path}:{start + 1}", what, len(raws), line=start + 1))
        if fmt == "poscar" or i >= len(t.lines):
            return raws


# ---------------------------------------------------------------------------------------------
# reference energies, weights, split


def reference_energies(entries: Sequence[Entry], per_element: dict[str, float]) -> np.ndarray:
    """E − Σ_atoms e_ref[symbol] for every entry (eV), e.g. cohesive energies when
    ``per_element`` holds the free-atom energies. Every entry needs an energy and every element
    a reference; otherwise InputError (filter entries without energy first)."""
    out = np.empty(len(entries))
    for k, e in enumerate(entries):
        if e.energy is None:
            raise InputError(f"{e.source}: the structure has no energy to reference")
        missing = sorted(set(e.symbols) - set(per_element))
        if missing:
            raise InputError(f"{e.source}: no reference energy given for element(s) "
                             f"{', '.join(missing)}")
        out[k] = e.energy - sum(float(per_element[s]) for s in e.symbols)
    return out


WEIGHT_FORMS = ("inverse-square", "exponential")


def energy_weights(entries: Sequence[Entry], scale: float, *, form: str = "inverse-square",
                   per_element: dict[str, float] | None = None,
                   max_above_min: float | None = None) -> np.ndarray:
    """Energy-based structure weights, mean 1 over the entries (the idea of pacemaker's
    EnergyBasedWeightingPolicy: low-energy structures matter most).

    With e_i = E_i/N_i (or the referenced energy (E_i − Σ e_ref)/N_i when ``per_element`` is
    given, recommended for datasets of several compositions) and ΔE_i = e_i − min_j e_j ≥ 0
    (eV/atom):

    - ``form="inverse-square"``: u_i = (δ / (ΔE_i + δ))², with δ = ``scale`` (eV/atom): the
      lowest-energy structures get u = 1, a structure δ above them 1/4;
    - ``form="exponential"``: u_i = exp(−ΔE_i / scale).

    ``max_above_min`` (eV/atom): structures with ΔE_i above it get weight 0 (excluded).
    The weights are w_i = u_i · M / Σ_j u_j over all M entries, so their mean is 1.
    """
    if form not in WEIGHT_FORMS:
        raise InputError(f"energy weighting form must be one of {', '.join(WEIGHT_FORMS)}, not "
                         f"'{form}'")
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"the energy weighting scale must be a positive number (eV/atom), "
                         f"not {scale}")
    if max_above_min is not None and not max_above_min >= 0:
        raise InputError(f"max_above_min must be ≥ 0 eV/atom, not {max_above_min}")
    if not entries:
        return np.zeros(0)
    if per_element is not None:
        energies = reference_energies(entries, per_element)
    else:
        missing = [e.source for e in entries if e.energy is None]
        if missing:
            raise InputError(f"energy-based weights need an energy for every structure; "
                             f"{len(missing)} have none (first: {missing[0]})")
        energies = np.array([e.energy for e in entries], dtype=float)
    per_atom = energies / np.array([e.natoms for e in entries], dtype=float)
    de = per_atom - per_atom.min()
    if form == "inverse-square":
        u = (scale / (de + scale)) ** 2
    else:
        u = np.exp(-de / scale)
    if max_above_min is not None:
        u = np.where(de > max_above_min, 0.0, u)
    return u * (len(u) / u.sum())


def _volume_per_atom(entry: Entry) -> float | None:
    """|det cell| / N of a fully periodic entry, else None."""
    if not all(entry.pbc):
        return None
    return abs(float(np.linalg.det(np.asarray(entry.cell, float)))) / len(entry.positions)


def split(entries: Sequence[Entry], validation_fraction: float,
          seed: int | None, keep_extreme_volumes: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic training/validation split, stratified by group.

    Entries are grouped by ``entry.group`` (all entries without a group form one stratum);
    strata are visited in order of first appearance. From a stratum of n entries,
    v = min(floor(f·n + ½), n − 1) entries go to validation, chosen with one
    ``numpy.random.default_rng(seed)`` generator shared across the strata in that order; so every
    group keeps at least one training entry, and the same entries, fraction and seed give the
    same split. Returns (training indices, validation indices), each sorted ascending.

    ``keep_extreme_volumes`` (PYFIT-FF's practice): in every stratum the entries with the
    smallest and the largest volume per atom (periodic cells) stay in training, so the fit
    sees the whole volume range; validation entries are drawn from the others.
    """
    if not (0.0 <= validation_fraction < 1.0):
        raise InputError(f"the validation fraction must be in [0, 1), not {validation_fraction}")
    rng = np.random.default_rng(seed)
    strata: dict[str | None, list[int]] = {}
    for k, e in enumerate(entries):
        strata.setdefault(e.group, []).append(k)
    train: list[int] = []
    val: list[int] = []
    for members in strata.values():
        n = len(members)
        kept: list[int] = []
        if keep_extreme_volumes:
            volumes = [(_volume_per_atom(entries[k]), k) for k in members]
            volumes = [(v, k) for v, k in volumes if v is not None]
            if volumes:
                kept = sorted({min(volumes)[1], max(volumes)[1]})
                members = [k for k in members if k not in kept]
                train.extend(kept)
        v = min(int(math.floor(validation_fraction * n + 0.5)), n - 1, len(members))
        order = rng.permutation(len(members))
        val.extend(members[j] for j in order[:v])
        train.extend(members[j] for j in order[v:])
    return np.array(sorted(train), dtype=int), np.array(sorted(val), dtype=int)
