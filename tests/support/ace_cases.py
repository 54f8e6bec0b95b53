"""ACE test cases shared by the ACE tests: a small linear Cu basis that pyace builds, rattled
and strained 4-atom Cu cells as extxyz keeps them, cells labelled by a pyace potential, and
the text of a job with one ``<ace>``. Needs pyace (the tests that use it skip without it)."""

from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from rexfit.potentials.ace.files import read_bbasis, write_bbasis
from rexfit.potentials.ace.model import ACE

#: pyace's description of a linear ACE of 10 functions (one density, F = ρ)
LINEAR = dict(
    elements=["Cu"],
    embeddings={"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1],
                        "ndensity": 1}},
    bonds={"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 4.5,
                   "dcut": 0.01}},
    functions={"ALL": {"nradmax_by_orders": [4, 2], "lmax_by_orders": [0, 1]}},
)


#: a ``<dataset>`` of the cells :func:`labelled_cells` writes to cu.xyz: energies and
#: (lightly weighted) stresses
CU_DATASET = """    <dataset id="cu">
      <file>cu.xyz</file>
      <properties>
        <atomic-energy tolerance="0.001"/>
        <stress tolerance="10"/>
      </properties>
    </dataset>"""


def linear_basis(directory, rng=None):
    """(B-basis with random coefficients 'truth.yaml', its coefficients, the same basis with
    every coefficient moved 'start.yaml'), written to ``directory``: a linear ACE built by
    pyace from :data:`LINEAR`. ``rng``: the generator to draw from (default: seed 4)."""
    import pyace

    rng = np.random.default_rng(4) if rng is None else rng
    config = pyace.create_multispecies_basis_config({"deltaSplineBins": 0.001, **LINEAR})
    config.save(str(directory / "basis.yaml"))
    basis = read_bbasis(directory / "basis.yaml")
    potential, params = ACE.from_bbasis(basis)
    truth = rng.normal(size=params["c"]["Cu"].shape)
    start = truth + 0.3 * rng.normal(size=truth.shape)
    for name, c in (("truth.yaml", truth), ("start.yaml", start)):
        write_bbasis(directory / name, potential.to_bbasis(basis, {"crad": params["crad"],
                                                                   "c": {"Cu": c}}))
    return directory / "truth.yaml", truth.ravel(), directory / "start.yaml"


def rattled_cell(k: int, rng):
    """The k-th 4-atom fcc Cu cell (a = 3.45 + 0.06 k Å), strained and rattled from ``rng``,
    with the cell and positions rounded as extxyz writes them (8 decimals), so that a
    reference labels the cell rexfit reads."""
    atoms = bulk("Cu", "fcc", 3.45 + 0.06 * k, cubic=True)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))),
                   scale_atoms=True)
    atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
    atoms.set_cell(np.round(atoms.cell[:], 8))
    atoms.positions = np.round(atoms.positions, 8)
    return atoms


def labelled_cells(path, reference, count=6, rng=None, noise=0.0, stress=True):
    """``count`` :func:`rattled_cell` s labelled by the pyace potential ``reference``
    (energy, forces and, with ``stress``, stress; ``noise`` eV and eV/Å of Gaussian noise on
    energy and forces), written to ``path`` (extxyz); the frames. ``rng``: default seed 2."""
    import pyace

    rng = np.random.default_rng(2) if rng is None else rng
    frames = []
    for k in range(count):
        atoms = rattled_cell(k, rng)
        atoms.calc = pyace.PyACECalculator(str(reference))
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        if noise:
            energy = energy + noise * rng.normal()
            forces = forces + noise * rng.normal(size=(len(atoms), 3))
        labels = dict(energy=energy, forces=forces)
        if stress:
            labels["stress"] = atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, **labels)
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return frames


def ace_job(param_file, structures: str, extra: str = "", fitting: str = "",
            name: str = "Cu ACE") -> str:
    """A job of Cu with one ``<ace id="Cu">`` reading ``param_file`` (``extra``: its other
    children), the ``structures`` and ``fitting`` given."""
    return f"""<job>
  <name>{name}</name>
  <atom-types><species>Cu</species></atom-types>
  <potentials>
    <ace id="Cu">
      <param-file>{param_file}</param-file>
      {extra}
    </ace>
  </potentials>
  <structures>
{structures}
  </structures>
  {fitting}
</job>
"""


def assert_engines_agree(ours, ref, params, tol: float, relative) -> None:
    """Two dataset engines of the same data give the same predictions (energies, forces,
    stresses, virials), residuals, loss, gradient (every group non-zero), VJP and Jacobian
    to ``tol`` (``relative`` the tests' relative-difference measure)."""
    import jax
    import jax.flatten_util

    for a, b in zip(ours.predictions(params), ref.predictions(params)):
        assert abs(a.energy - b.energy) <= tol * abs(b.energy)
        assert relative(a.forces, b.forces) < tol
        assert relative(a.stress, b.stress) < tol
        assert relative(a.virial, b.virial) < tol
    assert relative(ours.residuals(params), ref.residuals(params)) < tol
    value, grad = ours.value_and_grad(params)
    value_ref, grad_ref = ref.value_and_grad(params)
    assert abs(value - value_ref) <= tol * value_ref
    for group in grad_ref:
        for key in grad_ref[group]:
            assert np.abs(grad_ref[group][key]).max() > 0.0
            assert relative(grad[group][key], grad_ref[group][key]) < tol, (group, key)
    c = np.random.default_rng(1).normal(size=ours.n_rows)
    for a, b in zip(jax.tree_util.tree_leaves(ours.vjp(params, c)),
                    jax.tree_util.tree_leaves(ref.vjp(params, c))):
        assert relative(a, b) < tol
    size = jax.flatten_util.ravel_pytree(params)[0].size
    d = np.random.default_rng(2).normal(size=(size, 2))
    assert relative(ours.jacobian(params, d), ref.jacobian(params, d)) < tol


def zbl_basis(directory, elements=("Al", "Cu"), embedding=(1.0, 1.0, 1.0, 0.5), ndensity=2,
              radbase="ChebExpCos", seed=3):
    """(potential, params) of a basis pyace builds with the ``zbl`` inner cutoff (ZBL between
    the elements, prefactor 1, r_in = 2.6 Å, δ_in = 0.6 Å, so that rattled fcc cells near
    a = 3.7–4.1 Å have atoms on both sides of the switch and in it), random radial and
    function coefficients written by rexfit and read back."""
    import jax
    import pyace

    config = pyace.create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": list(elements),
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": list(embedding), "ndensity": ndensity}},
        "bonds": {"ALL": {"radbase": radbase, "radparameters": [5.25], "rcut": 4.5,
                          "dcut": 0.5, "core-repulsion": [1.0, 0.0], "r_in": 2.6,
                          "delta_in": 0.6, "inner_cutoff_type": "zbl"}},
        "functions": {"ALL": {"nradmax_by_orders": [4, 2, 1], "lmax_by_orders": [0, 1, 1]}}})
    config.save(str(directory / "zbl_basis.yaml"))
    basis = read_bbasis(directory / "zbl_basis.yaml")
    potential, params = ACE.from_bbasis(basis)
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda v: rng.normal(size=np.shape(v)), params)
    write_bbasis(directory / "zbl.yaml", potential.to_bbasis(basis, params))
    return ACE.from_bbasis(read_bbasis(directory / "zbl.yaml"))


def zbl_extra_items(species, seed=9):
    """Structures for the ``zbl`` weight's corners, species drawn from ``species``: a
    two-atom strained cell much narrower than the cutoff whose nearest neighbours sit inside
    r_in − δ_in (weight 0, pure ZBL), and a free cluster whose middle atom has two nearest
    neighbours at exactly the same distance (2.25 Å, inside the switch: the tie), one further
    off the axis and an atom with no neighbour (weight 1)."""
    from rexfit.datasets.items import Item

    rng = np.random.default_rng(seed)
    cell = np.array([[1.9, 0.1, 0.0], [0.2, 3.1, 0.1], [-0.1, 0.3, 3.3]])
    narrow = Item(np.array([[0.0, 0.0, 0.0], [0.8, 1.5, 1.7]]), cell,
                  rng.choice(species, 2), energy=rng.normal(), forces=rng.normal(size=(2, 3)),
                  stress=0.01 * rng.normal(size=6), weight_forces=0.5, weight_stress=0.2,
                  tol_energy=0.01, tol_forces=0.1, tol_stress=1e-3, name="narrow")
    positions = np.array([[-2.25, 0.0, 0.0], [0.0, 0.0, 0.0], [2.25, 0.0, 0.0],
                          [0.0, 3.0, 0.5], [12.0, 12.0, 12.0]])
    cluster = Item(positions, np.eye(3) * 30.0, rng.choice(species, 5),
                   pbc=(False, False, False), energy=rng.normal(),
                   forces=rng.normal(size=(5, 3)), tol_energy=0.01, tol_forces=0.1,
                   name="tie")
    return [narrow, cluster]
