"""Error metrics: hand-computed values, independent plain-Python formulas on random data,
weights, degenerate inputs, set/group splitting of a dataset and the text table."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rexfit.report.metrics import (NO_GROUP, dataset_metrics, dataset_records, metrics,
                                   metrics_table)


def reference_metrics(pred, ref, w=None) -> dict:
    """The definitions of docs/metrics-and-plots.md, written with plain Python loops."""
    pred, ref = [float(x) for x in np.ravel(pred)], [float(x) for x in np.ravel(ref)]
    w = [1.0] * len(pred) if w is None else [float(x) for x in np.ravel(w)]
    items = [(p, r, wi) for p, r, wi in zip(pred, ref, w) if wi > 0]
    W = math.fsum(wi for _, _, wi in items)
    mean_ref = math.fsum(wi * r for _, r, wi in items) / W
    ss_res = math.fsum(wi * (p - r) ** 2 for p, r, wi in items)
    ss_tot = math.fsum(wi * (r - mean_ref) ** 2 for _, r, wi in items)
    return {"rmse": math.sqrt(ss_res / W),
            "mae": math.fsum(wi * abs(p - r) for p, r, wi in items) / W,
            "max": max(abs(p - r) for p, r, _ in items),
            "r2": 1 - ss_res / ss_tot, "count": len(items)}


def assert_close(got: dict, want: dict, rel=1e-12, count=True):
    assert set(got) == {"rmse", "mae", "max", "r2", "count"}
    if count:
        assert got["count"] == want["count"]
    for k in ("rmse", "mae", "max", "r2"):
        assert got[k] == pytest.approx(want[k], rel=rel, abs=1e-14), k


# ---------------------------------------------------------------------------- metrics


def test_hand_computed():
    # errors 0, 1, -1, 2; reference mean 2 → SS_tot = 1 + 1 + 4 + 0 = 6 = SS_res
    m = metrics([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 4.0, 2.0])
    assert m == {"rmse": math.sqrt(1.5), "mae": 1.0, "max": 2.0, "r2": 0.0, "count": 4}
    # a perfect prediction
    assert metrics([[1, 2], [3, 5]], [[1, 2], [3, 5]]) == {
        "rmse": 0.0, "mae": 0.0, "max": 0.0, "r2": 1.0, "count": 4}
    # predicting the mean of the reference: R² = 0; worse than that: negative
    assert metrics([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])["r2"] == 0.0
    assert metrics([3.0, 2.0, 1.0], [1.0, 2.0, 3.0])["r2"] == pytest.approx(-3.0)


def test_plain_python_types_and_json():
    m = metrics(np.float32([1.5, 2.5]), np.array([1, 3]))
    assert all(type(m[k]) is float for k in ("rmse", "mae", "max", "r2"))
    assert type(m["count"]) is int
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize("seed", range(5))
def test_random_against_independent_formulas(seed):
    rng = np.random.default_rng(seed)
    ref = rng.normal(scale=3.0, size=(int(rng.integers(2, 300)), 3))
    pred = ref + rng.normal(scale=0.2, size=ref.shape) + 0.05
    assert_close(metrics(pred, ref), reference_metrics(pred, ref))
    w = rng.uniform(0.0, 2.0, size=ref.shape)
    w[0, 0] = 0.0
    assert_close(metrics(pred, ref, w), reference_metrics(pred, ref, w))


def test_weights():
    rng = np.random.default_rng(7)
    ref = rng.normal(size=20)
    pred = ref + rng.normal(scale=0.1, size=20)
    # integer weights are repetitions (but count counts the values, not the weights)
    reps = rng.integers(1, 4, size=20)
    m = metrics(pred, ref, reps)
    assert_close(m, metrics(np.repeat(pred, reps), np.repeat(ref, reps)), count=False)
    assert m["count"] == 20
    # a constant weight changes nothing; weights broadcast (one per row of forces)
    assert_close(metrics(pred, ref, 3.7), metrics(pred, ref))
    f_ref, f_pred = ref.reshape(10, 2), pred.reshape(10, 2)
    row_w = rng.uniform(0.5, 1.5, size=(10, 1))
    assert_close(metrics(f_pred, f_ref, row_w),
                 metrics(f_pred, f_ref, np.broadcast_to(row_w, (10, 2))))
    # zero weight drops an element, also from max and count
    pred2 = pred.copy()
    pred2[3] += 100.0
    w = np.ones(20)
    w[3] = 0.0
    assert_close(metrics(pred2, ref, w), metrics(np.delete(pred, 3), np.delete(ref, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        metrics(pred, ref, -w)
    with pytest.raises(ValueError, match="do not match"):
        metrics(pred, ref, np.ones(3))


def test_degenerate_cases():
    empty = {"rmse": None, "mae": None, "max": None, "r2": None, "count": 0}
    assert metrics([], []) == empty
    assert metrics([1.0, 2.0], [1.0, 3.0], [0.0, 0.0]) == empty
    # constant reference (SS_tot = 0): R² undefined, the rest defined
    m = metrics([0.1, 0.2, 0.4], [0.1, 0.1, 0.1])
    assert m["r2"] is None and m["count"] == 3
    assert m["max"] == pytest.approx(0.3) and m["mae"] == pytest.approx(0.4 / 3)
    assert metrics([5.0], [4.0]) == {"rmse": 1.0, "mae": 1.0, "max": 1.0, "r2": None,
                                      "count": 1}
    assert metrics([0.1] * 3, [0.1] * 3)["r2"] is None
    json.dumps(m, allow_nan=False)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="non-finite"):
        metrics([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        metrics([1.0, 2.0], [1.0, float("inf")])


# ---------------------------------------------------------------------------- datasets


def record(set_name, group, natoms, energy=None, forces=None, stress=None, id=None):
    return {"id": id, "set": set_name, "group": group, "natoms": natoms, "energy": energy,
            "forces": forces, "stress": stress}


def test_energy_per_atom_forces_stress():
    f_ref = np.array([[0.1, 0.0, -0.1], [0.2, 0.3, 0.0]])
    f_pred = f_ref + np.array([[0.01, 0.0, 0.0], [0.0, -0.03, 0.0]])
    s_ref = np.array([1.0, 2.0, 3.0, 0.0, 0.0, 0.5])
    recs = [record("training", None, 2, energy=(-7.0, -7.2), forces=(f_pred, f_ref),
                   stress=(s_ref + 0.5, s_ref)),
            record("training", None, 4, energy=(-16.0, -16.0))]
    res = dataset_metrics(recs)
    assert list(res) == ["training"]
    assert res["training"]["groups"] == {}
    allq = res["training"]["all"]
    assert list(allq) == ["energy_per_atom", "forces", "stress"]
    # energies per atom: errors 0.1 (−3.5 vs −3.6) and 0 (−4 vs −4)
    assert_close(allq["energy_per_atom"], reference_metrics([-3.5, -4.0], [-3.6, -4.0]))
    assert allq["energy_per_atom"]["max"] == pytest.approx(0.1)
    assert_close(allq["forces"], reference_metrics(f_pred, f_ref))
    assert allq["forces"]["count"] == 6
    assert allq["stress"]["count"] == 6 and allq["stress"]["mae"] == pytest.approx(0.5)
    json.dumps(res, allow_nan=False)


def test_sets_and_groups():
    rng = np.random.default_rng(3)
    recs = []
    for i in range(24):
        n = int(rng.integers(1, 6))
        fr = rng.normal(size=(n, 3))
        er = float(rng.normal()) * n
        recs.append(record("validation" if i % 4 == 0 else "training",
                           [None, "bulk", "surface"][i % 3], n,
                           energy=(er + 0.01 * i, er), forces=(fr * 1.01, fr),
                           stress=None, id=f"s{i}"))
    res = dataset_metrics(recs)
    assert list(res) == ["training", "validation"]
    for set_name, part in res.items():
        mine = [r for r in recs if r["set"] == set_name]
        assert "stress" not in part["all"]
        groups = list(dict.fromkeys(r["group"] or NO_GROUP for r in mine))
        assert list(part["groups"]) == groups
        for g in groups:
            sub = [r for r in mine if (r["group"] or NO_GROUP) == g]
            e = [(r["energy"][0] / r["natoms"], r["energy"][1] / r["natoms"]) for r in sub]
            assert_close(part["groups"][g]["energy_per_atom"],
                         reference_metrics([p for p, _ in e], [r for _, r in e]))
            fp = np.concatenate([r["forces"][0] for r in sub])
            fr = np.concatenate([r["forces"][1] for r in sub])
            assert_close(part["groups"][g]["forces"], reference_metrics(fp, fr))
        assert sum(q["forces"]["count"] for q in part["groups"].values()) \
            == part["all"]["forces"]["count"] == sum(3 * r["natoms"] for r in mine)
        assert part["all"]["energy_per_atom"]["count"] == len(mine)


def test_absent_quantities_are_omitted_per_set_and_group():
    recs = [record("training", "a", 1, energy=(1.0, 1.5)),
            record("training", "b", 1, stress=(np.ones(6), np.zeros(6))),
            record("validation", None, 2, forces=(np.ones((2, 3)), np.ones((2, 3))))]
    res = dataset_metrics(recs)
    assert list(res["training"]["all"]) == ["energy_per_atom", "stress"]
    assert list(res["training"]["groups"]["a"]) == ["energy_per_atom"]
    assert list(res["training"]["groups"]["b"]) == ["stress"]
    assert list(res["validation"]["all"]) == ["forces"]
    assert res["validation"]["groups"] == {}
    assert dataset_metrics([]) == {}
    # "" is no group (rexfit's structure records), as None
    recs[2]["group"] = ""
    assert dataset_metrics(recs)["validation"]["groups"] == {}


def test_dataset_bad_records():
    with pytest.raises(ValueError, match="natoms"):
        dataset_metrics([record("training", None, 0, energy=(1.0, 1.0))])
    with pytest.raises(ValueError, match="'x'.*shape"):
        dataset_metrics([record("training", None, 1, forces=(np.ones((2, 3)), np.ones((3, 3))),
                                id="x")])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        dataset_metrics([record("training", None, 1, forces=(np.ones((2, 2)), np.ones((2, 2))))])


def test_dataset_records_from_structure_records():
    """The structure records of rexfit.run (results.json) become dataset records."""
    structures = [
        {"id": "a", "set": "training", "group": "g", "natoms": 2, "properties": {
            "total-energy": {"value": -7.0, "target": -7.2, "unit": "eV"},
            "atomic-energy": {"value": -3.5, "target": None, "unit": "eV/atom"},
            "atomic-forces": {"value": [[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]],
                              "target": [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], "unit": "eV/A"},
            "stress": {"value": [1.0] * 6, "target": None, "unit": "GPa"}}},
        {"id": "b", "set": "validation", "group": None, "natoms": 4, "properties": {
            "total-energy": {"value": -16.0, "target": None, "unit": "eV"},
            "atomic-energy": {"value": -4.0, "target": -4.1, "unit": "eV/atom"}}},
        {"id": "c", "set": "training", "group": None, "natoms": 1, "properties": {
            "lattice-parameter": {"value": 4.05, "target": 4.05, "unit": "A"}}},
    ]
    recs = dataset_records(structures)
    assert [r["id"] for r in recs] == ["a", "b"]
    assert recs[0]["energy"] == (-7.0, -7.2) and recs[0]["stress"] is None
    assert recs[0]["forces"][1] == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert recs[1]["energy"] == pytest.approx((-16.0, -16.4)) and recs[1]["forces"] is None
    res = dataset_metrics(recs)
    assert res["training"]["all"]["energy_per_atom"]["mae"] == pytest.approx(0.1)
    assert res["training"]["all"]["forces"]["rmse"] == pytest.approx(math.sqrt(0.02 / 6))
    assert res["validation"]["all"]["energy_per_atom"]["mae"] == pytest.approx(0.1)


# ---------------------------------------------------------------------------- table


def test_metrics_table():
    recs = [record("training", "bulk", 2, energy=(-7.0, -7.2),
                   forces=(np.ones((2, 3)), np.zeros((2, 3)))),
            record("training", None, 1, energy=(-3.0, -3.0)),
            record("validation", None, 1, energy=(-3.0, -3.1))]
    res = dataset_metrics(recs)
    lines = metrics_table(res, digits=4)
    header = re.split(r"\s{2,}", lines[0].strip())
    assert header == ["set", "group", "quantity", "count", "RMSE", "MAE", "max", "R^2", "unit"]
    rows = [re.split(r"\s{2,}", ln.strip()) for ln in lines[1:]]
    assert [r[:3] for r in rows] == [
        ["training", "all", "energy_per_atom"], ["training", "all", "forces"],
        ["training", "bulk", "energy_per_atom"], ["training", "bulk", "forces"],
        ["training", NO_GROUP, "energy_per_atom"],
        ["validation", "all", "energy_per_atom"]]
    # values formatted with 4 significant digits, "-" for an undefined R², units last
    m = res["training"]["all"]["energy_per_atom"]
    assert rows[0][3:] == ["2", f"{m['rmse']:.4g}", f"{m['mae']:.4g}", f"{m['max']:.4g}",
                           f"{m['r2']:.4g}", "eV/atom"]
    assert rows[1][3:] == ["6", "1", "1", "1", "-", "eV/A"]
    assert rows[5][3:] == ["1", "0.1", "0.1", "0.1", "-", "eV/atom"]
    # aligned: every row has its columns at the header's positions (numbers right-aligned)
    ends = [lines[0].index(h) + len(h) for h in ("count", "RMSE", "MAE", "max", "R^2")]
    for ln in lines[1:]:
        for end in ends:
            assert ln[end - 1] != " " and (end == len(ln) or ln[end] == " ")
        assert ln.startswith("  ")
    assert metrics_table({}) == []
