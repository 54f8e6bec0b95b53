"""Resource bombs in geometry: a cell far smaller than the cutoff, a cutoff of kilometres, a
non-finite or absurd coordinate, a relaxation that collapses a cell.  The neighbour-list
builders check their bounds before allocating; the CLI exits 2 naming the structure (or
dataset entry) and its file:line for bad input, 3 naming the structure and what happened for a
collapsing relaxation — never a traceback, a MemoryError or a hang."""

from __future__ import annotations


import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from scipy.spatial import cKDTree

from rexfit.errors import GeometryError
from rexfit.structures import neighbors, triplets
from rexfit.structures.neighbors import build_neighbor_list
from rexfit.structures.system import make_system
from rexfit.structures.triplets import build_triplet_neighbor_list
from tests.support.cli import line_of, run_cli

LJ_JOB = """<?xml version="1.0" encoding="UTF-8"?>
<job>
  <name>bounds</name>
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="ArAr" species-a="*" species-b="*">
      <sigma>3.40</sigma>
      <epsilon>{eps}</epsilon>
      <cutoff>{cutoff}</cutoff>
      <fit-dof><sigma min="3.0" max="4.0"/></fit-dof>
    </lennard-jones>
  </potentials>
  <structures>
    <fcc-lattice id="ok">
      <atom-type>Ar</atom-type>
      <lattice-parameter>5.26</lattice-parameter>
      <properties><atomic-energy fit="true" target="-0.080"/></properties>
    </fcc-lattice>
{structures}
  </structures>
  {fitting}
</job>
"""

FCC = """    <fcc-lattice id="{sid}">
      <atom-type>Ar</atom-type>
      <lattice-parameter>{a}</lattice-parameter>
      {relax}
      <properties>
        <lattice-parameter fit="true" target="5.311"/>
        <atomic-energy fit="true" target="-0.080"/>
      </properties>
    </fcc-lattice>"""

DATASET = """    <dataset id="frames">
      <file>{file}</file>
      <properties><atomic-energy/><atomic-forces/></properties>
    </dataset>"""

FIT = '<fitting><BFGS max-iter="2"/></fitting>'


def job_file(tmp_path, structures, *, eps="0.0104", cutoff="8.5", fitting=FIT, name="job.xml"):
    text = LJ_JOB.format(eps=eps, cutoff=cutoff, structures=structures, fitting=fitting)
    path = tmp_path / name
    path.write_text(text)
    return path, text


def run(capsys, tmp_path, path, *extra, limit=30.0) -> tuple[int, str]:
    return run_cli(capsys, tmp_path, path, *extra, limit=limit)


def frames(tmp_path, name, change=None):
    """An extxyz file of three rattled 4-atom fcc argon cells; ``change(k, atoms)`` edits
    frame k before it is written."""
    out = []
    for k, a in enumerate((5.2, 5.3, 5.4)):
        atoms = bulk("Ar", "fcc", a=a, cubic=True)
        atoms.rattle(0.05, seed=k)
        if change is not None:
            change(k, atoms)
        atoms.info["energy"] = -0.3 + 0.01 * k
        atoms.arrays["forces"] = np.zeros((len(atoms), 3))
        out.append(atoms)
    write(tmp_path / name, out, format="extxyz")
    return name


# ----------------------------------------------------------------------------- bad input: exit 2


@pytest.mark.parametrize("a, fragment", [
    ("1e-3", "the cell is far too small for the cutoff"),  # 3e13 images of a 1 mÅ cell
    ("1e200", "cell vectors must be finite and at most"),  # squared distances overflow
])
def test_absurd_lattice_parameter_is_bad_input(capsys, tmp_path, a, fragment):
    path, text = job_file(tmp_path, FCC.format(sid="tiny", a=a, relax=""))
    code, err = run(capsys, tmp_path, path)
    assert code == 2, err
    line = line_of(text, '<fcc-lattice id="tiny"')
    assert f"{path}:{line}: structure 'tiny': " in err
    assert fragment in err
    assert "structure 'ok'" not in err  # only the culprit is named
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("cutoff, fragment", [
    ("1e4", "the cell is far too small for the cutoff"),  # 3e11 images: 8.6 TiB before
    ("1e9", "the potential's cutoff is 1e+09 Å: it must be a finite number of at most"),
])
def test_absurd_cutoff_names_every_structure(capsys, tmp_path, cutoff, fragment):
    path, text = job_file(tmp_path, FCC.format(sid="other", a="5.3", relax=""), cutoff=cutoff)
    code, err = run(capsys, tmp_path, path, "--no-fit")
    assert code == 2, err
    for sid in ("ok", "other"):  # all at once, each at its own line
        line = line_of(text, f'<fcc-lattice id="{sid}"')
        assert f"{path}:{line}: structure '{sid}': " in err
    assert fragment in err


def test_tiny_dataset_frame_is_named_with_its_file_and_frame(capsys, tmp_path):
    def squash(k, atoms):
        if k == 2:
            atoms.set_cell(atoms.cell * 1e-3, scale_atoms=True)

    name = frames(tmp_path, "frames.xyz", squash)
    path, text = job_file(tmp_path, DATASET.format(file=name))
    code, err = run(capsys, tmp_path, path)
    assert code == 2, err
    line = line_of(text, "<file>frames.xyz</file>")  # the <file> element it came from
    assert f"{path}:{line}: dataset 'frames', entry frames#2 (" in err
    assert "frames.xyz#2): the cell is far too small for the cutoff" in err
    assert "frames#0" not in err and "frames#1" not in err


def test_loose_relaxation_bounds_are_not_an_error(capsys, tmp_path):
    """Capacities are made for the densest geometry the bounds allow only while that is
    sensible: a lattice parameter bounded below by 1 mÅ is not an error in itself."""
    structure = FCC.format(sid="loose", a="5.3", relax="<relax><lattice-parameter/></relax>")
    structure = structure.replace('target="5.311"/>', 'target="5.311" min="0.001" max="9"/>')
    path, _ = job_file(tmp_path, structure)
    code, err = run(capsys, tmp_path, path, "--no-fit")
    assert code == 0, err


# ----------------------------------------------------------------------------- collapse: exit 3


def test_collapsing_relaxation_output_phase(capsys, tmp_path):
    """A negative ε makes the LJ energy → −∞ as r → 0: the relaxed lattice parameter runs to
    zero.  Before: MemoryError after trying to allocate 8.6 TiB of images."""
    path, text = job_file(tmp_path, FCC.format(sid="fcc", a="5.26",
                                                relax="<relax><lattice-parameter/></relax>"),
                          eps="-0.0104")
    code, err = run(capsys, tmp_path, path, "--no-fit")
    assert code == 3, err
    line = line_of(text, '<fcc-lattice id="fcc"')
    assert f"structure 'fcc' ({path}:{line})" in err
    assert "the relaxation collapsed" in err
    assert "cell volume" in err and "energy" in err and "eV/atom" in err


def test_collapsing_relaxation_training_phase(capsys, tmp_path):
    path, text = job_file(tmp_path, FCC.format(sid="fcc", a="5.26",
                                                relax="<relax><lattice-parameter/></relax>"),
                          eps="-0.0104")
    code, err = run(capsys, tmp_path, path)
    assert code == 3, err
    line = line_of(text, '<fcc-lattice id="fcc"')
    assert "the objective is not finite at the given parameters" in err
    assert f"structure 'fcc' ({path}:{line}): the relaxation collapsed" in err
    assert "ArAr[LJ].sigma = 3.4" in err


# ----------------------------------------------------------------------------- the builders


def _fcc_system(n=1, a=5.26):
    atoms = bulk("Ar", "fcc", a=a, cubic=n > 1) * ((n, n, n) if n > 1 else (1, 1, 1))
    return make_system(atoms.positions, np.asarray(atoms.cell), pbc=(True, True, True))


@pytest.mark.parametrize("cutoff", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_cutoff_raises_geometry_error(cutoff):
    with pytest.raises(GeometryError, match="cutoff"):
        build_neighbor_list(_fcc_system(), cutoff, 0.5)


def test_non_finite_position_names_the_atom():
    system = _fcc_system(2)
    system = system.replace(positions=system.positions.at[5, 1].set(jnp.nan))
    with pytest.raises(GeometryError, match=r"atom 6 has position \(.*nan.*\) Å"):
        build_neighbor_list(system, 8.5, 0.5)


def test_degenerate_periodic_cell_raises_geometry_error():
    system = make_system(np.zeros((1, 3)), np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]]))
    with pytest.raises(GeometryError, match="linearly dependent"):
        build_neighbor_list(system, 5.0, 0.5)


class _NoBuild(cKDTree):
    """cKDTree whose pair query must not run: the bound fires before anything is built."""

    def sparse_distance_matrix(self, *args, **kwargs):
        raise AssertionError("pairs were built before the bound was checked")


@pytest.mark.parametrize("n", [2, 7])  # 32 atoms (exact count), 1372 atoms (sampled first)
def test_pair_bound_is_checked_before_the_pairs_are_built(monkeypatch, n):
    system = _fcc_system(n)
    expected = build_neighbor_list(system, 8.5, 0.5, half=False)
    pairs = int(np.count_nonzero(np.asarray(expected.mask)))
    monkeypatch.setattr(neighbors, "cKDTree", _NoBuild)
    monkeypatch.setattr(neighbors, "MAX_PAIRS", pairs // 4)
    with pytest.raises(GeometryError, match=r"neighbours each within 9 Å"):
        build_neighbor_list(system, 8.5, 0.5)


def test_pairs_per_atom_bound(monkeypatch):
    system = _fcc_system(1)  # one atom, 78 neighbours within 9 Å
    full = build_neighbor_list(system, 8.5, 0.5, half=False)
    count = int(np.count_nonzero(np.asarray(full.mask)))
    monkeypatch.setattr(neighbors, "MAX_PAIRS_PER_ATOM", count - 1)
    with pytest.raises(GeometryError, match=f"at most {count - 1} per atom"):
        build_neighbor_list(system, 8.5, 0.5)
    monkeypatch.setattr(neighbors, "MAX_PAIRS_PER_ATOM", count)
    assert build_neighbor_list(system, 8.5, 0.5).capacity > 0


def test_image_bound_is_checked_before_the_images_are_made(monkeypatch):
    def no_grid(*args, **kwargs):
        raise AssertionError("the image grid was made before the bound was checked")

    monkeypatch.setattr(neighbors.np, "meshgrid", no_grid)
    with pytest.raises(GeometryError, match="periodic images"):
        build_neighbor_list(_fcc_system(1, a=1e-6), 8.5, 0.5)


def test_triplet_bound(monkeypatch):
    system = _fcc_system(1)
    full = build_triplet_neighbor_list(system, 4.0, 0.5)
    count = full.triplets.count
    monkeypatch.setattr(triplets, "MAX_TRIPLETS", count - 1)
    with pytest.raises(GeometryError, match="neighbour triplets"):
        build_triplet_neighbor_list(system, 4.0, 0.5)
