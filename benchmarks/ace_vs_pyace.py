"""Time rexfit's ACE energy + forces against pyace's on the same potential, per atom.

The potential: a B-basis YAML given with ``--potential`` (e.g. a pacemaker
``output_potential.yaml``), or by default one built by pyace for Cu (SBessel, r_c 5 Å, ranks
1–4, two densities, random coefficients written by rexfit).  Rattled fcc Cu cells of 32 …
``--max-atoms`` atoms.  For each size: rexfit's first call (compilation included), its best
of ``--repeat`` calls after that (µs/atom), pyace's best of ``--repeat`` calls (µs/atom, a
changed position each time so that the ASE calculator recomputes), and the largest
differences of energy per atom and forces between them.  Usage:

    python benchmarks/ace_vs_pyace.py [--potential file.yaml] [--max-atoms 4000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)


def default_potential(directory: Path) -> Path:
    """A Cu basis built by pyace, with random coefficients written by rexfit."""
    import pyace

    from rexfit.potentials.ace.files import read_bbasis, write_bbasis
    from rexfit.potentials.ace.model import ACE

    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0,
                          "dcut": 0.01}},
        "functions": {"ALL": {"nradmax_by_orders": [8, 3, 2, 1],
                              "lmax_by_orders": [0, 2, 2, 1]}}})
    path = directory / "basis.yaml"
    config.save(str(path))
    basis = read_bbasis(path)
    _, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(0)
    new = jax.tree_util.tree_map(lambda v: 0.1 * rng.normal(size=np.shape(v)), params)
    new["crad"] = jax.tree_util.tree_map(lambda v: rng.normal(size=np.shape(v)), params["crad"])
    potential, _ = ACE.from_bbasis(basis)
    write_bbasis(directory / "random.yaml", potential.to_bbasis(basis, new))
    return directory / "random.yaml"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--potential", type=Path)
    parser.add_argument("--max-atoms", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import pyace
    from ase.build import bulk

    from rexfit.potentials.ace.files import read_bbasis
    from rexfit.potentials.ace.model import ACE
    from rexfit.structures.neighbors import build_neighbor_list
    from rexfit.structures.system import make_system

    with tempfile.TemporaryDirectory() as tmp:
        path = args.potential or default_potential(Path(tmp))
        basis = read_bbasis(path)
        potential, params = ACE.from_bbasis(basis)
        element = basis.elements[0]

        @jax.jit
        def energy_forces(params, system, nbrs):
            def energy(x):
                return potential.energy(params, system.replace(positions=x), nbrs)

            e, g = jax.value_and_grad(energy)(system.positions)
            return e, -g

        print(f"{path}: {sum(len(f) for _, f in potential.functions)} functions, "
              f"cutoff {potential.cutoff} Å")
        for repeat in (2, 3, 4, 6, 8, 10, 14):
            atoms = bulk(element, "fcc", 3.6, cubic=True).repeat(repeat)
            n = len(atoms)
            if n > args.max_atoms:
                break
            rng = np.random.default_rng(repeat)
            atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
            system = make_system(atoms.positions, atoms.cell.array, np.zeros(n, int))
            nbrs = build_neighbor_list(system, potential.cutoff, 0.0, half=False)
            start = time.perf_counter()
            e, f = jax.block_until_ready(energy_forces(params, system, nbrs))
            first = time.perf_counter() - start
            ours = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                jax.block_until_ready(energy_forces(params, system, nbrs))
                ours.append(time.perf_counter() - start)
            atoms.calc = pyace.PyACECalculator(str(path))
            e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
            theirs = []
            for k in range(args.repeat):
                atoms.positions[0, 0] += 1e-9 * (-1) ** k  # a change: pyace recomputes
                start = time.perf_counter()
                atoms.get_forces()
                theirs.append(time.perf_counter() - start)
            print(f"{n:6d} atoms: rexfit first call {first:6.2f} s, then "
                  f"{min(ours) / n * 1e6:8.1f} µs/atom; pyace {min(theirs) / n * 1e6:8.1f} µs/atom;"
                  f" |ΔE|/atom {abs(float(e) - e_ref) / n:.1e} eV, "
                  f"max |ΔF| {np.abs(np.asarray(f) - f_ref).max():.1e} eV/Å "
                  f"(max |F| {np.abs(f_ref).max():.1e})")


if __name__ == "__main__":
    main()
