"""Writing a structure's final (relaxed) geometry: ``<output file format>``.

poscar and extxyz are written by ASE; ASE cannot write LAMMPS dump files, so the text dump
(``ITEM:`` sections, restricted-triclinic box from ASE's Prism) is written here.
"""

from __future__ import annotations

import io

import numpy as np
from ase import Atoms

from rexfit.files import write_text


def to_atoms(system, species: tuple[str, ...]) -> Atoms:
    mask = np.asarray(system.mask)
    symbols = [species[k] for k in np.asarray(system.species)[mask]]
    return Atoms(symbols, positions=np.asarray(system.positions)[mask],
                 cell=np.asarray(system.cell), pbc=system.pbc)


def lammps_dump(atoms: Atoms, species: tuple[str, ...]) -> str:
    """A one-frame LAMMPS text dump (id type x y z) in LAMMPS's restricted triclinic frame."""
    from ase.calculators.lammps import Prism

    prism = Prism(np.asarray(atoms.cell), pbc=atoms.pbc)
    xhi, yhi, zhi, xy, xz, yz = prism.get_lammps_prism()
    pos = prism.vector_to_lammps(atoms.positions, wrap=True)
    xlo_b, xhi_b = min(0.0, xy, xz, xy + xz), xhi + max(0.0, xy, xz, xy + xz)
    ylo_b, yhi_b = min(0.0, yz), yhi + max(0.0, yz)
    bc = " ".join("pp" if p else "ff" for p in atoms.pbc)
    out = io.StringIO()
    out.write("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n")
    out.write(f"{len(atoms)}\nITEM: BOX BOUNDS xy xz yz {bc}\n")
    out.write(f"{xlo_b:.16g} {xhi_b:.16g} {xy:.16g}\n{ylo_b:.16g} {yhi_b:.16g} {xz:.16g}\n"
              f"0 {zhi:.16g} {yz:.16g}\n")
    out.write("ITEM: ATOMS id type element x y z\n")
    for k, (sym, p) in enumerate(zip(atoms.get_chemical_symbols(), pos)):
        out.write(f"{k + 1} {species.index(sym) + 1} {sym} {p[0]:.16g} {p[1]:.16g} {p[2]:.16g}\n")
    return out.getvalue()


def write_structure(path: str, fmt: str, system, species: tuple[str, ...]) -> None:
    atoms = to_atoms(system, species)
    if fmt == "lammps-dump":
        write_text(path, lammps_dump(atoms, species))
        return
    buf = io.StringIO()
    if fmt == "poscar":
        atoms.write(buf, format="vasp", direct=True, sort=False)
    elif fmt == "extxyz":
        atoms.write(buf, format="extxyz")
    else:
        raise ValueError(f"unknown structure format {fmt!r}")
    write_text(path, buf.getvalue())
