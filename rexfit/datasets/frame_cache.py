"""Frames that ``ase.io`` parsed from a dataset file, kept in the cache directory so that a run
of the same file reads them back without importing ``ase.io`` (which brings SciPy) or parsing
the text again (pacemaker keeps its parsed datasets for the same reason).

An entry is keyed by the SHA-256 of the file's bytes, the ASE format name and index, ASE's
version and :data:`VERSION`: a changed file, format or ASE gives a new entry, never a stale
one. It holds, per frame, everything :func:`rexfit.datasets.readers` takes from an
``ase.Atoms``: numbers, positions, cell, pbc, its other per-atom arrays, its ``info`` and the
results of its single-point calculator, with their NumPy dtypes and shapes (NumPy's ``.npz``
without pickles; ``info`` as JSON with arrays and NumPy scalars tagged). Frames with
constraints, or a calculator other than ASE's single-point one, or ``info`` values of other
types, are not kept (the file is parsed every run). A damaged entry is parsed again.

``REXFIT_FRAME_CACHE=0`` turns it off; :func:`enable` is called with the run's cache
directory (``rexfit.run.api.prepare_jax``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from rexfit.files import atomic_write

#: Bumped whenever what an entry holds changes.
VERSION = 2
#: At most this many entries are kept (the oldest half is removed beyond it).
MAX_ENTRIES = 200

_directory: list[Path | None] = [None]


def enable(directory: str | os.PathLike | None) -> None:
    """Keep parsed frames under ``directory`` (None, or ``REXFIT_FRAME_CACHE=0``: do not)."""
    if directory is not None and os.environ.get("REXFIT_FRAME_CACHE", "1") == "0":
        directory = None
    _directory[0] = None if directory is None else Path(directory)


def _key(path: str, fmt: str, index) -> str | None:
    import ase

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    h.update(f"\0{fmt}\0{index}\0{ase.__version__}\0{VERSION}".encode())
    return h.hexdigest()


def _tag(value):
    """``value`` (an info value) in JSON form with NumPy types tagged, or raise TypeError."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise TypeError(value.dtype)
        return {"__array__": [value.dtype.str, list(value.shape), value.ravel().tolist()]}
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biufU":
            raise TypeError(value.dtype)
        return {"__scalar__": [value.dtype.str, value.item()]}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise TypeError(type(value))


def _untag(value):
    if isinstance(value, dict) and "__array__" in value:
        dtype, shape, flat = value["__array__"]
        return np.array(flat, dtype=np.dtype(dtype)).reshape(shape)
    if isinstance(value, dict) and "__scalar__" in value:
        dtype, item = value["__scalar__"]
        return np.array(item, dtype=np.dtype(dtype))[()]
    return value


def _pack(frames) -> dict | None:
    """The npz arrays of ``frames``, or None if a frame holds what an entry cannot.

    The arrays of all frames are kept in a few npz members, not a few per frame: every
    frame's array of one name (and dtype) raveled into one member, the cells and pbc flags
    stacked; each frame's meta entry holds the shapes that cut them apart again (reading a
    member costs a zip-member open and a header parse: per frame, they took most of the
    read of a 360-frame file)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    parts: dict[str, list[np.ndarray]] = {}
    meta = []
    cells, pbcs = [], []
    for atoms in frames:
        calc = atoms.calc
        if atoms.constraints or (calc is not None and type(calc) is not SinglePointCalculator):
            return None
        arrays = {name: np.asarray(a) for name, a in atoms.arrays.items()}
        results = dict(calc.results) if calc is not None else {}
        if any(a.dtype.kind not in "biufU" for a in arrays.values()):
            return None
        try:
            info = {str(name): _tag(v) for name, v in atoms.info.items()}
            scalars = {name: _tag(v) for name, v in results.items()
                       if not isinstance(v, np.ndarray)}
        except TypeError:
            return None
        result_arrays = {name: v for name, v in results.items() if isinstance(v, np.ndarray)}
        shapes = {}
        for kind, group in (("a", arrays), ("r", result_arrays)):
            shapes[kind] = []
            for name, a in group.items():
                member = f"{kind}/{a.dtype.str}/{name}"
                parts.setdefault(member, []).append(a.ravel())
                shapes[kind].append([name, member, list(a.shape)])
        cells.append(np.asarray(atoms.cell[:], np.float64))
        pbcs.append(np.asarray(atoms.pbc, bool))
        meta.append({"info": info, "scalars": scalars, "arrays": shapes["a"],
                     "results": shapes["r"], "calc": calc is not None})
    out = {member: np.concatenate(chunks) for member, chunks in parts.items()}
    out["cell"] = np.asarray(cells, np.float64).reshape(-1, 3, 3)
    out["pbc"] = np.asarray(pbcs, bool).reshape(-1, 3)
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return out


def _unpack(data) -> list:
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    meta = json.loads(bytes(data["meta"]).decode())
    members: dict[str, np.ndarray] = {}
    offsets: dict[str, int] = {}

    def take(member: str, shape: list) -> np.ndarray:
        if member not in members:
            members[member], offsets[member] = data[member], 0
        start = offsets[member]
        stop = start + int(np.prod(shape, dtype=np.int64))
        offsets[member] = stop
        return members[member][start:stop].reshape(shape)

    cells, pbcs = data["cell"], data["pbc"]
    frames = []
    for k, m in enumerate(meta):
        arrays = {name: take(member, shape) for name, member, shape in m["arrays"]}
        atoms = Atoms(numbers=arrays.pop("numbers"), positions=arrays.pop("positions"),
                      cell=cells[k], pbc=pbcs[k])
        for name, a in arrays.items():
            atoms.arrays[name] = a
        atoms.info = {name: _untag(v) for name, v in m["info"].items()}
        if m["calc"]:
            results = {name: _untag(v) for name, v in m["scalars"].items()}
            results.update({name: take(member, shape) for name, member, shape in m["results"]})
            atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return frames


def read_frames(path: str, fmt: str, index, parse) -> list:
    """The frames ``parse()`` gives for ``path`` (format ``fmt``, ASE's ``index``), read from
    the cache when an entry for the file's contents is there, else parsed and kept."""
    folder = _directory[0]
    key = None if folder is None else _key(path, fmt, index)
    if key is None:
        return parse()
    entry = folder / f"{key}.npz"
    if entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as data:
                return _unpack(data)
        except Exception:  # noqa: BLE001 - a damaged entry: parse the file again
            pass
    frames = parse()
    packed = _pack(frames if isinstance(frames, list) else [frames])
    if packed is not None:
        _store(folder, entry, packed)
    return frames


def _store(folder: Path, entry: Path, packed: dict) -> None:
    """Write ``entry`` atomically (never a half-written entry) and keep at most
    :data:`MAX_ENTRIES`; a cache that cannot be written is skipped."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **packed)

    try:
        atomic_write(str(entry), write)
        entries = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime)
        for old in entries[:len(entries) // 2] if len(entries) > MAX_ENTRIES else ():
            old.unlink(missing_ok=True)
    except OSError:
        return
