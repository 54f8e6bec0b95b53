"""The dataset engine's pair lists (stacking.list_items, from neighbors.pair_list) equal those
of the per-structure search (stacking.list_item, i.e. build_neighbor_list): same pairs, same
order, same dtypes, for full and half lists, skewed, tiny and large cells, clusters and partly
periodic cells; and the search's candidate test and distances, taken per Cartesian component,
give the pairs a direct all-images search gives."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rexfit.datasets.items import Item
from rexfit.errors import GeometryError
from rexfit.datasets.stacking import list_item, list_items
from rexfit.potentials.pair import LennardJones

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _cells(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n, a in ((1, 2.2), (2, 3.1), (5, 3.7), (16, 6.0), (60, 9.5), (250, 14.0)):
        cell = a * (np.eye(3) + rng.uniform(-0.25, 0.25, (3, 3)))
        pos = rng.uniform(-0.2, 1.2, (n, 3)) @ cell  # some atoms outside the cell
        out.append(Item(pos, cell, rng.integers(0, 2, n), (True, True, True)))
    pos = rng.uniform(0.0, 6.0, (7, 3))
    out.append(Item(pos, np.zeros((3, 3)), np.zeros(7, int), (False, False, False)))
    out.append(Item(pos, 6.0 * np.eye(3), np.zeros(7, int), (True, True, False)))
    lattice = 3.0 * np.eye(3)  # atoms exactly on lattice points and cell faces
    grid = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    out.append(Item(grid * 1.5, lattice, np.zeros(8, int), (True, True, True)))
    return out


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for f in ("positions", "cell", "species", "i", "j", "shifts"):
            u, v = getattr(x, f), getattr(y, f)
            assert u.dtype == v.dtype and u.shape == v.shape, f
            np.testing.assert_array_equal(u, v)
        assert (x.pbc, x.meta, x.triplets, x.pruned) == (y.pbc, y.meta, y.triplets, y.pruned)


@pytest.mark.parametrize("kernel", ["analytic", "descriptor"])
@pytest.mark.parametrize("cutoff", [2.0, 4.6, 6.5])
def test_same_lists_as_per_structure(kernel, cutoff):
    pot = LennardJones(cutoff)
    items = _cells()
    _same(list_items(items, pot, kernel, 0.0, 2),
          [list_item(it, pot, kernel, 0.0, 2) for it in items])


class _FullList:
    """A term that reads every neighbour (as descriptor models do): full lists."""

    cutoff = 4.6
    full_list = True


def test_full_lists_with_skin():
    pot = _FullList()
    items = _cells(1)
    _same(list_items(items, pot, "descriptor", 0.3, 2),
          [list_item(it, pot, "descriptor", 0.3, 2) for it in items])


def test_bad_geometries_raise_as_the_per_structure_search():
    pot = LennardJones(5.0)
    for pos, cell in ((np.zeros((1, 3)), np.eye(3) * 1e-3),  # far too small for the cutoff
                      (np.full((1, 3), np.nan), np.eye(3))):
        item = Item(pos, cell, np.zeros(len(pos), int), (True, True, True))
        with pytest.raises(GeometryError) as per_structure:
            list_item(item, pot, "analytic", 0.0, 1)
        with pytest.raises(GeometryError) as listed:
            list_items([item], pot, "analytic", 0.0, 1)
        assert str(listed.value) == str(per_structure.value)


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False,) * 3])
def test_pairs_against_a_direct_search(pbc):
    """Every pair within the reach, found by brute force over a generous block of images."""
    from rexfit.structures.neighbors import pair_list

    rng = np.random.default_rng(3)
    cell = 4.0 * (np.eye(3) + rng.uniform(-0.2, 0.2, (3, 3)))
    pos = rng.uniform(-0.3, 1.3, (6, 3)) @ cell
    reach = 5.5
    i, j, n = pair_list(pos, cell, pbc, reach, 0.0, half=False)
    found = set(zip(i.tolist(), j.tolist(), map(tuple, n.tolist())))
    r = [range(-4, 5) if p else range(1) for p in pbc]
    expected = set()
    for a in range(6):
        for b in range(6):
            for s in ((x, y, z) for x in r[0] for y in r[1] for z in r[2]):
                d = pos[b] + np.asarray(s) @ cell - pos[a]
                if (a != b or any(s)) and np.linalg.norm(d) <= reach:
                    expected.add((a, b, s))
    assert found == expected


def test_job_data():
    from rexfit.datasets.readers import read_dataset

    pot = _FullList()
    entries = read_dataset(os.path.join(ROOT, "jobs/mo-snap-dataset/mo.xyz"))
    items = [Item(e.positions, e.cell, np.zeros(len(e.positions), int), e.pbc)
             for e in entries]
    _same(list_items(items, pot, "descriptor", 0.0, 1),
          [list_item(it, pot, "descriptor", 0.0, 1) for it in items])
