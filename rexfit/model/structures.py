"""From the JobSpec's structures to systems: lattices as differentiable functions of their
DOFs (lattice parameter, c/a, atom distance), user structures read from files, and the
reference data (energy, forces, stress) those files carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rexfit.errors import InputError, InputErrors
from rexfit.job import spec as s
from rexfit.structures import lattices
from rexfit.structures.system import System, make_system

#: Order in which a lattice builder takes its DOFs (those the structure has).
DOF_ORDER = ("lattice-parameter", "atom-distance", "ca-ratio")


def _lattice_maker(kind: str, species: tuple[int, ...]) -> Callable[[dict], System]:
    """dofs → System through the physics layer's builder for ``kind``."""
    builder = lattices.LATTICE_BUILDERS[kind]
    sp = species[0] if len(species) == 1 else species
    return lambda d: builder(*(d[k] for k in DOF_ORDER if k in d), sp)


@dataclass(frozen=True)
class Reference:
    """Reference data read with a structure (DFT or experiment): eV, eV/Å, eV/Å³ (Voigt)."""

    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None


@dataclass(frozen=True)
class StructureModel:
    """A structure ready to compute: ``make(dofs)`` builds its system.

    dofs: initial values of the lattice DOFs (empty for user structures); bounds: (min, max)
    per DOF (None = unbounded); relax: the DOFs to relax (names as in <relax>).
    """

    spec: s.StructureSpec
    make: Callable[[dict], System]
    dofs: dict[str, float]
    bounds: dict[str, tuple[float | None, float | None]]
    relax: frozenset[str]
    reference: Reference = field(default_factory=Reference)
    #: ``make`` as data (:class:`~rexfit.structures.lattices.LatticeForm`); None: not known
    form: lattices.LatticeForm | None = None

    @property
    def id(self) -> str:
        return self.spec.id


def build_structure(st: s.StructureSpec, species: tuple[str, ...]) -> StructureModel:
    bounds = {p.name: (p.min, p.max) for p in st.properties if p.name in
              ("lattice-parameter", "ca-ratio", "atom-distance")}
    if st.kind in lattices.LATTICE_BUILDERS:
        sp = tuple(species.index(x) for x in st.species)
        dofs = {k: v for k, v in (("lattice-parameter", st.lattice_parameter),
                                  ("ca-ratio", st.ca_ratio),
                                  ("atom-distance", st.atom_distance)) if v is not None}
        make = _lattice_maker(st.kind, sp)
        try:
            form = lattices.lattice_form(st.kind, sp[0] if len(sp) == 1 else sp)
        except (ValueError, TypeError, KeyError):  # as the builder: fails when it is called
            form = None
        return StructureModel(st, make, dofs, bounds, st.relax, form=form)
    system, ref = _read_user_structure(st, species)
    return StructureModel(st, lambda d, system=system: system, {}, bounds, st.relax, ref,
                          lattices.fixed_form(system))


def _read_user_structure(st: s.StructureSpec, species: tuple[str, ...]):
    if st.cell is not None:
        cell = np.array(st.cell, dtype=float)
        pos = np.array([a.position for a in st.atoms], dtype=float)
        reduced = np.array([a.reduced for a in st.atoms])
        pos[reduced] = pos[reduced] @ cell
        kinds = [a.species for a in st.atoms]
        return make_system(pos, cell, [species.index(k) for k in kinds], st.pbc), Reference()
    if st.poscar_file is not None:
        return _read_poscar(st, species)
    return _read_ase(st, species)


def _species_indices(st: s.StructureSpec, symbols, species) -> list[int]:
    missing = sorted(set(symbols) - set(species))
    if missing:
        raise InputErrors([InputError(
            f"structure '{st.id}': the file has species {', '.join(missing)}, which are not "
            f"declared in <atom-types>", st.origin)])
    return [species.index(x) for x in symbols]


def _read_poscar(st: s.StructureSpec, species):
    """POSCAR (VASP 5 with species line, or VASP 4 using the declared species in order);
    three extra numbers after a coordinate are that atom's reference force (eV/Å)."""
    with open(st.poscar_file, encoding="utf-8") as fh:
        lines = [ln.split() for ln in fh.read().splitlines()]
    try:
        scale = float(lines[1][0])
        cell = np.array([[float(x) for x in lines[k][:3]] for k in (2, 3, 4)]) * scale
        k = 5
        if all(t.isalpha() for t in lines[5]):
            names, k = lines[5], 6
        else:
            names = list(species)
        counts = [int(x) for x in lines[k]]
        k += 1
        if lines[k][0][0] in "sS":
            k += 1
        cartesian = lines[k][0][0] in "cCkK"
        k += 1
        n = sum(counts)
        rows = lines[k:k + n]
        pos = np.array([[float(x) for x in r[:3]] for r in rows])
        forces = np.array([[float(x) for x in r[3:6]] for r in rows]) if all(
            len(r) >= 6 and _is_number(r[3]) for r in rows) else None
    except (IndexError, ValueError) as exc:
        raise InputErrors([InputError(f"structure '{st.id}': cannot read POSCAR file "
                                      f"{st.poscar_file}: {exc}", st.origin)]) from None
    pos = pos * scale if cartesian else pos @ cell
    symbols = [nm for nm, c in zip(names, counts) for _ in range(c)]
    idx = _species_indices(st, symbols, species)
    return make_system(pos, cell, idx, st.pbc), Reference(forces=forces)


def _is_number(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def _read_ase(st: s.StructureSpec, species):
    import ase.io

    try:
        atoms = ase.io.read(st.atoms_file, format=st.atoms_format)
    except Exception as exc:  # ase raises many types for unreadable files
        raise InputErrors([InputError(f"structure '{st.id}': ASE cannot read {st.atoms_file}: "
                                      f"{exc}", st.origin)]) from None
    idx = _species_indices(st, atoms.get_chemical_symbols(), species)
    energy = forces = stress = None
    calc = atoms.calc
    if calc is not None:
        res = calc.results
        energy = res.get("energy", res.get("free_energy"))
        forces = res.get("forces")
        stress = res.get("stress")
        if stress is not None:
            stress = np.asarray(stress)
            if stress.shape == (3, 3):
                stress = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    pbc = tuple(bool(p) for p in atoms.pbc) if st.pbc == (True, True, True) else st.pbc
    system = make_system(atoms.positions, np.asarray(atoms.cell), idx, pbc)
    return system, Reference(energy=energy, forces=forces, stress=stress)
