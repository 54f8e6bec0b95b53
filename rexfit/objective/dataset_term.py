"""The part of the objective contributed by one ``<dataset>`` in one set (training or
validation), evaluated by the batched engine (:mod:`rexfit.datasets.engine`).

A dataset is one member of its group (SPEC §4 nesting): each fitted quantity P gets the
absolute weight w_abs(P) of (dataset id, P), shared by the n entries of the set, each entry e
with its weight w_P(e) (energy weighting × group weights × per-frame weights,
:class:`~rexfit.model.datasets.DatasetEntry`):

    L_dataset = Σ_P w_abs(P) · (1/n) Σ_e w_P(e) · r_P(e),

with the squared residuals r_atomic-energy = ((E − E*)/(N δ))², r_atomic-forces = the mean over
the 3N components of ((F − F*)/δ)², r_stress = the mean over the six components of
((σ − σ*)/δ)² (the dataset's defaults; ``component-residuals="sum"`` sums over the components,
``energy-residual="total"`` drops the 1/N, δ in eV).  Per-atom force weights multiply each
atom's three components.  Entries without a reference for P skip that term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rexfit.datasets.engine import DatasetObjective
from rexfit.datasets.items import ENERGY, FORCE, STRESS, Item
from rexfit.errors import CalculationFailed, GeometryError, InputError, InputErrors
from rexfit.model.datasets import FITS, DatasetEntry, LoadedDataset
from rexfit.job import spec as s
from rexfit.objective.weights import tolerance
from rexfit.physics.properties import EV_PER_A3_TO_GPA
from rexfit.potentials.lists import build_lists
from rexfit.structures.neighbors import build_neighbor_list, pair_displacements
from rexfit.structures.system import make_system

#: Dataset entries named at most in one error report (the rest are counted).
MAX_NAMED_ENTRIES = 10
#: Atoms closer than this (Å) are pointed out when a structure's values are not finite.
CLOSE_DISTANCE = 0.5


def entry_label(ds_id: str, e: DatasetEntry) -> str:
    """How messages name a dataset entry: dataset id, entry name and where it came from
    (``path#frame``, ``path:line`` or ``path#id=K``)."""
    return f"dataset '{ds_id}', entry {e.name} ({e.entry.source})"


def file_origin(ds, e: DatasetEntry):
    """The origin of the ``<file>`` element ``e`` was read from (else the dataset's)."""
    for f in ds.files:
        if e.entry.source.startswith(f.path) and e.entry.source[len(f.path):][:1] in "#:":
            return f.origin
    return ds.origin


def _close_atoms(item: Item) -> str:
    """"; atoms i and j are d Å apart" for the closest pair of ``item`` closer than
    :data:`CLOSE_DISTANCE`, else ""."""
    try:
        system = make_system(item.positions, item.cell, item.species, item.pbc)
        nbrs = build_neighbor_list(system, CLOSE_DISTANCE, 0.0, half=True)
    except GeometryError:
        return ""
    n = int(np.count_nonzero(np.asarray(nbrs.mask)))
    if not n:
        return ""
    d = np.linalg.norm(np.asarray(pair_displacements(system, nbrs))[:n], axis=1)
    k = int(np.argmin(d))
    i, j = int(np.asarray(nbrs.i)[k]), int(np.asarray(nbrs.j)[k])
    return f"; atoms {i + 1} and {j + 1} are {d[k]:.3g} Å apart"


def _geometry_errors(ds, entries, items, potential, n_species) -> InputErrors:
    """The entries whose neighbour lists cannot be built, each named (failure path only:
    every entry's list is built again, one at a time)."""
    failed: dict[str, list[str]] = {}  # message -> entries (a cutoff fails them all alike)
    origins: dict = {}  # message -> the <file> element of its first entry
    for e, it in zip(entries, items):
        try:
            system = make_system(it.positions, it.cell, it.species, it.pbc)
            build_lists(potential, system, 0.0, n_species=n_species)  # the engine's skin
        except GeometryError as exc:
            failed.setdefault(str(exc), []).append(f"{e.name} ({e.entry.source})")
            origins.setdefault(str(exc), file_origin(ds, e))
    errors = []
    for text, names in list(failed.items())[:MAX_NAMED_ENTRIES]:
        which = (f"entry {names[0]}" if len(names) == 1 else
                 f"entries {', '.join(names[:3])}"
                 + (f" and {len(names) - 3} more" if len(names) > 3 else ""))
        errors.append(InputError(f"dataset '{ds.id}', {which}: {text}",
                                 origins.get(text, ds.origin)))
    if len(failed) > MAX_NAMED_ENTRIES:
        errors.append(InputError(f"dataset '{ds.id}': more entries cannot be listed either",
                                 ds.origin))
    if not errors:  # not reproduced entry by entry: report it for the dataset
        errors = [InputError(f"dataset '{ds.id}': a neighbour list cannot be built for its "
                             "entries", ds.origin)]
    return InputErrors(errors)


@dataclass
class DatasetTerm:
    """Entries of one dataset in one set, their weights and tolerances, and the engine."""

    loaded: LoadedDataset
    set_name: str
    entries: list[DatasetEntry]
    weights: dict  # quantity -> w_abs (absent: not fitted)
    tolerances: dict  # quantity -> δ in the quantity's unit (eV/atom, eV/A, GPa)
    engine: DatasetObjective

    @property
    def id(self) -> str:
        return self.loaded.spec.id

    @property
    def per_atom_energy(self) -> bool:
        return self.loaded.spec.energy_residual == "per-atom"

    @property
    def mean_components(self) -> bool:
        return self.loaded.spec.component_residuals == "mean"

    @staticmethod
    def create(loaded: LoadedDataset, set_name: str, weights: dict, preset: str | None,
               potential, n_species: int, batch_structures: int | None = None) -> DatasetTerm:
        """``batch_structures``: make chunks of about this many structures (minibatches)."""
        ds = loaded.spec
        entries = loaded.of(set_name)
        n = max(len(entries), 1)
        w_abs = {p.name: weights[(ds.id, p.name)] for p in ds.properties
                 if (ds.id, p.name) in weights}
        tols = {p.name: tolerance(p, 1, preset) for p in ds.properties}
        per_atom = ds.energy_residual == "per-atom"
        mean = ds.component_residuals == "mean"
        if not per_atom:  # δ of a total energy: as for <total-energy> of a one-atom structure
            for p in ds.properties:
                if p.name == "atomic-energy":
                    tols[p.name] = tolerance(s.PropertySpec(name="total-energy", origin=p.origin,
                                                            tolerance=p.tolerance), 1, preset)
        items = []
        for e in entries:
            entry = e.entry
            periodic = all(entry.pbc) and abs(np.linalg.det(np.asarray(entry.cell))) > 0
            use_e = "atomic-energy" in w_abs and e.energy is not None
            use_f = "atomic-forces" in w_abs and entry.forces is not None
            use_s = "stress" in w_abs and entry.stress is not None and periodic
            items.append(Item(
                positions=np.asarray(entry.positions), cell=np.asarray(entry.cell),
                species=e.species, pbc=tuple(bool(p) for p in entry.pbc),
                energy=e.energy if use_e else None,
                forces=np.asarray(entry.forces) if use_f else None,
                stress=np.asarray(entry.stress) if use_s else None,
                weight_energy=w_abs.get("atomic-energy", 0.0) * e.factor("energy") / n,
                weight_forces=w_abs.get("atomic-forces", 0.0) * e.factor("forces") / n,
                weight_stress=w_abs.get("stress", 0.0) * e.factor("stress") / n,
                tol_energy=tols.get("atomic-energy", 1.0),
                tol_forces=tols.get("atomic-forces", 1.0),
                tol_stress=tols.get("stress", 1.0) / EV_PER_A3_TO_GPA,
                name=e.name, energy_per_atom=per_atom, mean_components=mean))
        kw = {}
        if batch_structures:
            sizes = sorted(len(it.positions) for it in items) or [1]
            kw["max_bucket_atoms"] = max(8, int(batch_structures) * sizes[len(sizes) // 2])
        try:
            engine = DatasetObjective(potential, items, n_species=n_species, **kw)
        except GeometryError:
            raise _geometry_errors(ds, entries, items, potential, n_species) from None
        return DatasetTerm(loaded, set_name, entries, w_abs, tols, engine)

    def explain(self, params, directions, *, jacobian: bool = False) -> list[str]:
        """A line per entry whose residuals (or their derivative along ``directions``, the
        (P, K) parameter directions of the fit) are not finite at ``params``: which
        quantities, and atoms on top of each other (failure reports only; at most
        :data:`MAX_NAMED_ENTRIES` entries named).  The residuals alone are computed first
        unless ``jacobian`` (its program is compiled already: a least-squares fit)."""
        rows = self.engine.rows
        if jacobian:
            r, jac = self.engine.residuals_and_jacobian(params, directions)
        else:
            r = self.engine.residuals(params)
            jac = None
            if np.all(np.isfinite(r)):
                r, jac = self.engine.residuals_and_jacobian(params, directions)
        bad_value = ~np.isfinite(r)
        bad_slope = (np.zeros_like(bad_value) if jac is None
                     else ~np.all(np.isfinite(jac), axis=1) & ~bad_value)
        lines = []
        named = {ENERGY: "energy", FORCE: "forces", STRESS: "stress"}
        for k in np.unique(rows.structure[bad_value | bad_slope]):
            e = self.entries[int(k)]
            mine = rows.structure == k
            parts = []
            values = sorted({int(q) for q in rows.kind[mine & bad_value]})
            slopes = sorted({int(q) for q in rows.kind[mine & bad_slope]} - set(values))
            if values:
                parts.append(", ".join(named[q] for q in values) + " not finite")
            if slopes:
                parts.append("the parameter derivative of " + ", ".join(named[q] for q in slopes)
                             + " not finite")
            lines.append(f"{entry_label(self.id, e)}: {'; '.join(parts)}"
                         + _close_atoms(self.engine.items[int(k)]))
        if len(lines) > MAX_NAMED_ENTRIES:
            more = len(lines) - MAX_NAMED_ENTRIES
            lines = lines[:MAX_NAMED_ENTRIES] + [f"dataset '{self.id}': and {more} more entries"]
        return lines

    def _check_finite(self, preds) -> None:
        """Raise :class:`CalculationFailed` naming the entries whose predicted energy or
        forces are not finite (at most :data:`MAX_NAMED_ENTRIES`)."""
        bad = []
        for k, (e, pred) in enumerate(zip(self.entries, preds)):
            what = [name for name, v in (("energy", pred.energy), ("forces", pred.forces))
                    if not np.all(np.isfinite(np.asarray(v, float)))]
            if what:
                bad.append(f"{entry_label(self.id, e)}: non-finite {', '.join(what)} at the "
                           f"current parameters{_close_atoms(self.engine.items[k])}")
        if bad:
            more = len(bad) - MAX_NAMED_ENTRIES
            raise CalculationFailed("\n  ".join(
                bad[:MAX_NAMED_ENTRIES] + ([f"and {more} more entries"] if more > 0 else [])))

    def squared_errors(self, params) -> dict[str, tuple[float, int]]:
        """Σ (predicted − reference)² and the number of values, per quantity, over the entries
        with a reference: ``energy_per_atom`` (eV/atom), ``forces`` (components, eV/Å),
        ``stress`` (Voigt components of cells of non-zero volume, GPa) — the progress RMSE of
        a fit.  One forward pass of the engine's ``predictions`` program (the one the output
        phase and the validation objective run anyway: no program of its own)."""
        preds = self.engine.predictions(params)
        sums = {"energy_per_atom": [0.0, 0], "forces": [0.0, 0], "stress": [0.0, 0]}
        with np.errstate(all="ignore"):  # a non-finite prediction makes its RMSE NaN
            for e, pred in zip(self.entries, preds):
                entry = e.entry
                if e.energy is not None:
                    d = (float(pred.energy) - e.energy) / entry.natoms
                    sums["energy_per_atom"][0] += d * d
                    sums["energy_per_atom"][1] += 1
                if entry.forces is not None:
                    d = np.asarray(pred.forces, float) - np.asarray(entry.forces, float)
                    sums["forces"][0] += float(np.sum(d * d))
                    sums["forces"][1] += d.size
                stress = np.asarray(pred.stress, float)
                if entry.stress is not None and np.all(np.isfinite(stress)):
                    d = (stress - np.asarray(entry.stress, float)) * EV_PER_A3_TO_GPA
                    sums["stress"][0] += float(np.sum(d * d))
                    sums["stress"][1] += d.size
        return {k: (v[0], v[1]) for k, v in sums.items() if v[1]}

    def records(self, params) -> list[dict]:
        """One results.json record per entry: energies, forces, stress with their targets and
        weighted residuals (their sum is this term's objective)."""
        preds = self.engine.predictions(params)
        self._check_finite(preds)
        n = max(len(self.entries), 1)
        out = []
        for e, pred in zip(self.entries, preds):
            entry = e.entry
            na = entry.natoms
            props: dict = {}

            def add(name, value, target, unit, r):
                rec = {"value": value, "target": target, "unit": unit,
                       "fit": name in self.weights and target is not None, "relaxed": False,
                       "output": True, "output_all": False}
                if name in self.weights and target is not None:
                    w = self.weights[name] * e.factor(FITS[name]) / n
                    if np.ndim(w):  # per-atom force weights; r holds each atom's residual
                        rec.update(tolerance=self.tolerances[name], residual_style="squared",
                                   abs_weight=float(np.mean(w)),
                                   weighted_residual=float(np.sum(w * r)),
                                   atom_weights=np.asarray(e.quantity_weights["forces"]).tolist())
                    else:
                        rec.update(tolerance=self.tolerances[name], residual_style="squared",
                                   abs_weight=w, weighted_residual=w * r)
                props[name] = rec

            energy = float(pred.energy)
            target = e.energy
            add("total-energy", energy, target, "eV", None)
            props["total-energy"]["fit"] = False
            props["total-energy"].pop("abs_weight", None)
            props["total-energy"].pop("weighted_residual", None)
            per = na if self.per_atom_energy else 1
            r_e = None if target is None else (
                (energy - target) / (per * self.tolerances.get("atomic-energy", 1.0))) ** 2
            add("atomic-energy", energy / na, None if target is None else target / na,
                "eV/atom", r_e)
            forces = np.asarray(pred.forces)
            f_ref = None if entry.forces is None else np.asarray(entry.forces)
            r_f = None
            if f_ref is not None:
                sq = ((forces - f_ref) / self.tolerances.get("atomic-forces", 1.0)) ** 2
                if np.ndim(e.quantity_weights.get("forces", 1.0)):
                    r_f = sq.sum(axis=1) / (sq.size if self.mean_components else 1)
                else:
                    r_f = float(np.mean(sq) if self.mean_components else np.sum(sq))
            add("atomic-forces", forces.tolist(), None if f_ref is None else f_ref.tolist(),
                "eV/A", r_f)
            stress = np.asarray(pred.stress) * EV_PER_A3_TO_GPA
            if np.all(np.isfinite(stress)):
                s_ref = None if entry.stress is None else np.asarray(entry.stress) * EV_PER_A3_TO_GPA
                r_s = None
                if s_ref is not None:
                    sq = ((stress - s_ref) / self.tolerances.get("stress", 1.0)) ** 2
                    r_s = float(np.mean(sq) if self.mean_components else np.sum(sq))
                add("stress", stress.tolist(), None if s_ref is None else s_ref.tolist(),
                    "GPa", r_s)
            out.append({
                "id": e.name, "group": e.group or self.id, "set": self.set_name,
                "natoms": na, "relative_weight": e.weight, "relaxation": "none",
                "relaxation_converged": True, "at_bound": [], "dataset": self.id,
                "source": entry.source, "properties": props})
        return out
