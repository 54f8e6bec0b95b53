"""From a ``<dataset>`` spec to its entries: read the files, subtract reference energies, split
into training and validation, weight them (energy weighting, group weights, per-frame weight
keys: :mod:`rexfit.model.dataset_weights`).

The result is host-side (NumPy); the dataset objective (``rexfit.datasets.engine``) stacks it
for the device.  File problems become :class:`~rexfit.errors.InputErrors` naming the file and
line, so a job with a broken dataset stops before anything is computed or written.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from rexfit.datasets.readers import (
    Entry,
    energy_weights,
    read_dataset,
    reference_energies,
    split,
)
from rexfit.errors import InputError, InputErrors, InputWarning
from rexfit.job import spec as s
from rexfit.model.dataset_weights import entry_weights
from rexfit.timing import progress


@dataclass(frozen=True)
class DatasetEntry:
    """One entry of a dataset, ready to fit: ``name`` (``id#k``), the set it belongs to, the
    job species index of every atom, the reference energy after reference energies are
    subtracted (eV, or None) and its weight within the dataset: ``weight`` multiplies all its
    quantities (energy weighting, mean 1 over the set, × group weight × ``weight-key``),
    ``quantity_weights`` one each ("energy", "forces" — a float or (N,) per atom —,
    "stress"; absent: 1).  ``group``: the group its metrics and group weights use."""

    name: str
    set: str
    entry: Entry
    species: np.ndarray
    energy: float | None
    weight: float
    group: str | None = None
    quantity_weights: dict = field(default_factory=dict)

    def factor(self, quantity: str):
        """The weight of ``quantity`` ("energy", "forces", "stress"): ``weight`` × its own."""
        own = self.quantity_weights.get(quantity)
        return self.weight if own is None else self.weight * own


@dataclass(frozen=True)
class LoadedDataset:
    spec: s.DatasetSpec
    entries: tuple[DatasetEntry, ...]

    def of(self, set_name: str) -> list[DatasetEntry]:
        return [e for e in self.entries if e.set == set_name]


#: The quantity of an entry each dataset property fits.
FITS = {"atomic-energy": "energy", "atomic-forces": "forces", "stress": "stress"}


def _read(ds: s.DatasetSpec, f: s.DatasetFileSpec) -> list[Entry]:
    group_from = f.group_from
    if group_from is None and (f.format == "pyfit" or (f.format is None
                                                       and f.path.endswith(".dat"))):
        group_from = "comment"  # PYFIT-FF groups by the comment line
    # every entry must bring something the dataset fits: an entry without it would be read
    # and silently contribute nothing
    use = tuple(dict.fromkeys(FITS[p.name] for p in ds.properties if p.name in FITS))
    try:
        return read_dataset(f.path, f.format, group_from=group_from,
                            energy_shift_per_atom=f.energy_shift_per_atom,
                            keys=dict(f.keys), use=use, index=f.index,
                            groups=f.groups, select=f.select, warn=_warner(f))
    except InputError as err:
        raise InputErrors([InputError(err.message, err.origin or f.origin)]) from None
    except (ValueError, OSError) as exc:
        raise InputErrors([InputError(f"{f.path}: {exc}", f.origin)]) from None


def _warner(f: s.DatasetFileSpec):
    """Issues a reader's warning as an InputWarning, at the <file> element when the warning
    has no line of the data file."""

    def warn(w: InputError) -> None:
        warnings.warn(InputWarning(InputError(w.message, w.origin or f.origin,
                                              severity="warning")), stacklevel=2)

    return warn


def _check_fitted(ds: s.DatasetSpec, entries: list[Entry]) -> None:
    """Every fitted quantity must be carried by some entry of the dataset."""
    errors = []
    for p in ds.properties:
        q = FITS.get(p.name)
        if q is not None and not any(getattr(e, q) is not None for e in entries):
            names = ", ".join(os.path.basename(f.path) for f in ds.files)
            errors.append(InputError(
                f"dataset '{ds.id}' fits {q} (<{p.name}/>) but no entry of its files ({names}) "
                f"has {q}: name the key with {q}-key=\"...\" on the <file> (rexfit "
                f"dataset-info FILE lists what each file holds), or remove <{p.name}/>",
                p.origin))
    if errors:
        raise InputErrors(errors)


def load_dataset(ds: s.DatasetSpec, species: tuple[str, ...]) -> LoadedDataset:
    """Read every file of ``ds`` and build its entries (see :class:`DatasetEntry`)."""
    train: list[Entry] = []
    held: list[Entry] = []
    file_of: dict[int, s.DatasetFileSpec] = {}  # id(entry) -> its <file>
    for f in ds.files:
        progress(f"dataset '{ds.id}': reading {os.path.basename(f.path)}")
        got = _read(ds, f)
        file_of.update((id(e), f) for e in got)
        (held if f.validation or not ds.fit else train).extend(got)
    progress("")
    if ds.fit and ds.validation_fraction > 0 and train:
        t_idx, v_idx = split(train, ds.validation_fraction, ds.seed, ds.keep_extreme_volumes)
        held = [train[k] for k in v_idx] + held
        train = [train[k] for k in t_idx]
    errors = []
    for e in train + held:
        unknown = sorted(set(e.symbols) - set(species))
        if unknown:
            errors.append(InputError(
                f"dataset '{ds.id}': entry {e.source} has species {', '.join(unknown)}, which "
                f"are not in <atom-types>", ds.origin))
    if errors:
        raise InputErrors(errors[:10])
    _check_fitted(ds, train + held)
    every = train + held
    try:
        weighted = entry_weights(ds, every, [file_of[id(e)].origin for e in every],
                                 [file_of[id(e)].format for e in every])
    except InputError as err:
        raise InputErrors([err]) from None
    extra = {id(e): w for e, w in zip(every, weighted)}
    refs = dict(ds.reference_energies)
    out: list[DatasetEntry] = []
    for set_name, entries in (("training", train), ("validation", held)):
        if not entries:
            continue
        energies: list[float | None] = [e.energy for e in entries]
        if refs:
            with_e = [k for k, e in enumerate(entries) if e.energy is not None]
            try:
                shifted = reference_energies([entries[k] for k in with_e], refs)
            except InputError as err:
                raise InputErrors([InputError(err.message, ds.origin)]) from None
            for k, value in zip(with_e, shifted):
                energies[k] = float(value)
        weights = np.ones(len(entries))
        if ds.energy_weighting is not None:
            scale, form, cap = ds.energy_weighting
            with_e = [k for k, e in enumerate(entries) if e.energy is not None]
            if with_e:
                try:
                    w = energy_weights([entries[k] for k in with_e], scale, form=form,
                                       per_element=refs or None, max_above_min=cap)
                except InputError as err:
                    raise InputErrors([InputError(err.message, ds.origin)]) from None
                weights[with_e] = w
        for k, e in enumerate(entries):
            w = extra[id(e)]
            out.append(DatasetEntry(
                name=f"{ds.id}#{len(out)}", set=set_name, entry=e,
                species=np.array([species.index(x) for x in e.symbols], dtype=np.int32),
                energy=energies[k], weight=float(weights[k]) * w.weight, group=w.group,
                quantity_weights=w.quantity))
    return LoadedDataset(ds, tuple(out))


def auto_kappa(loaded: LoadedDataset) -> float:
    """pacemaker's ``kappa: auto`` of a dataset: κ = σ_E² / (σ_E² + σ_F²) over its training
    entries, σ_E the standard deviation (n − 1 in the denominator, as pandas) of the reference
    energies per atom (reference energies subtracted), σ_F that (n in the denominator) of the
    force magnitudes |F_i| of all their atoms."""
    ds = loaded.spec
    train = loaded.of("training")
    energies = [e.energy / len(e.species) for e in train if e.energy is not None]
    norms = [np.linalg.norm(np.asarray(e.entry.forces, float), axis=1) for e in train
             if e.entry.forces is not None]
    f_var = float(np.var(np.concatenate(norms))) if norms else 0.0
    e_var = float(np.var(energies, ddof=1)) if len(energies) > 1 else 0.0
    if not e_var + f_var > 0.0:
        raise InputErrors([InputError(
            f"dataset '{ds.id}': kappa=\"auto\" needs training entries whose energies per atom "
            "or force magnitudes differ (it is σ_E²/(σ_E² + σ_F²)); give kappa as a number",
            ds.origin)])
    return e_var / (e_var + f_var)


def with_kappa(job: s.JobSpec, kappas: dict[str, float]) -> s.JobSpec:
    """``job`` with the datasets named in ``kappas`` ({id: κ}) weighting their energies 1 − κ
    and their forces κ."""
    if not kappas:
        return job
    share = {"atomic-energy": lambda k: 1.0 - k, "atomic-forces": lambda k: k}

    def walk(member):
        if isinstance(member, s.GroupSpec):
            return replace(member, members=tuple(walk(m) for m in member.members))
        if isinstance(member, s.DatasetSpec) and member.id in kappas:
            k = kappas[member.id]
            return replace(member, properties=tuple(
                replace(p, relative_weight=share[p.name](k)) if p.name in share else p
                for p in member.properties))
        return member

    return replace(job, structures=walk(job.structures))
