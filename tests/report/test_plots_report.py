"""The plots pacemaker and MedeA users expect and report.md: errors against E − E_min and |F|
coloured by group with RMSE/MAE in meV, a learning curve with markers only at measured
iterations (a table for a linear solve), no overlapping text in any figure (label bounding
boxes), and a report that links every image it names."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from rexfit.report import plots
from rexfit.report.metrics import dataset_metrics
from rexfit.report.report_md import REPORT_FILE, write_plots_and_report

GROUPS = ("bulk", "surface", "vacancy")


def records(seed=7, scale=0.01):
    """Twelve small structures in three groups, every fourth in the validation set."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(12):
        n = int(rng.integers(1, 5))
        fr = rng.normal(size=(n, 3))
        er = -3.0 * n + 0.2 * i
        out.append({"id": f"s{i}", "set": "validation" if i % 4 == 0 else "training",
                    "group": GROUPS[i % 3], "natoms": n,
                    "energy": (er + scale * rng.normal(), er),
                    "forces": (fr + scale * rng.normal(size=(n, 3)), fr),
                    "stress": (np.full(6, 0.1) + scale, np.full(6, 0.1) + 0.01 * i)})
    return out


def visible_texts(fig) -> list[tuple[str, object]]:
    """(name, artist) of every visible, non-empty text element of ``fig``: titles, axis
    labels, offset texts, tick labels within the view, legends and text boxes."""
    out = []
    for k, ax in enumerate(fig.axes):
        out += [(f"{k} title", ax.title), (f"{k} xlabel", ax.xaxis.label),
                (f"{k} ylabel", ax.yaxis.label), (f"{k} x offset", ax.xaxis.offsetText),
                (f"{k} y offset", ax.yaxis.offsetText)]
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lo, hi), max(lo, hi)
            for loc, label in zip(axis.get_majorticklocs(), axis.get_ticklabels()):
                if lo <= loc <= hi:
                    out.append((f"{k} tick {label.get_text()}", label))
        if ax.get_legend() is not None:
            out.append((f"{k} legend", ax.get_legend()))
        out += [(f"{k} box", a) for a in ax.artists]
        out += [(f"{k} text", t) for t in ax.texts]
    out += [("figure legend", lg) for lg in fig.legends]

    def shown(a) -> bool:
        return a.get_visible() and (not hasattr(a, "get_text") or a.get_text() != "")

    return [(n, a) for n, a in out if shown(a)]


def overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible text elements of ``fig`` whose rendered bounding boxes overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(n, a.get_window_extent(renderer)) for n, a in visible_texts(fig)]
    return [(n1, n2) for (n1, b1), (n2, b2) in itertools.combinations(boxes, 2)
            if b1.overlaps(b2)]


def test_new_plots_are_written_coloured_by_group_with_mev_metrics(tmp_path):
    recs = records()
    paths = plots.write_dataset_plots(str(tmp_path), recs, None)
    names = [os.path.basename(p) for p in paths]
    assert "errors_vs_energy.png" in names and "errors_vs_force.png" in names
    for p in paths:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = dataset_metrics(recs)
    for fig, quantity, unit in ((plots.error_vs_energy_figure(recs), "energy_per_atom",
                                 "meV/atom"),
                                (plots.error_vs_force_figure(recs), "forces", "meV/Å")):
        ax = fig.axes[0]
        # one colour per group, one marker per set; the legend names both
        points = [ln for ln in ax.get_lines() if ln.get_linestyle() == "None"]
        by_group = {}
        for ln in points:
            by_group.setdefault(to_hex(ln.get_color()), set()).add(ln.get_marker())
        assert len(by_group) == 3 and set().union(*by_group.values()) == {"o", "^"}
        (legend,) = fig.legends
        assert [t.get_text() for t in legend.get_texts()] == [*GROUPS, "training",
                                                             "validation"]
        # RMSE and MAE of each set in meV in the panel, equal to the metrics
        (box,) = ax.artists
        text = box.txt.get_text()
        for set_name in ("training", "validation"):
            mm = m[set_name]["all"][quantity]
            assert (f"{set_name}: RMSE = {1000 * mm['rmse']:.4g}, "
                    f"MAE = {1000 * mm['mae']:.4g} {unit}") in text
    # E − E_min: the lowest reference energy per atom of all structures is at x = 0
    pts = plots.energy_points(recs)
    xs = np.concatenate([x for x, _ in pts.values()])
    assert xs.min() == 0.0 and np.all(xs >= 0)
    # |F|: three points (components) per atom, at the norm of the atom's reference force
    fpts = plots.force_points(recs)
    assert sum(x.size for x, _ in fpts.values()) == 3 * sum(r["natoms"] for r in recs)
    # parity plots and histograms carry the meV metrics too
    fig = plots.parity_figure("energy per atom", "eV/atom", ([1.0, 2.0], [1.01, 2.0]))
    assert "training: RMSE = 7.071, MAE = 5 meV/atom" in fig.axes[0].artists[0].txt.get_text()


def test_many_groups_share_a_grey_other():
    recs = [dict(r, group=f"g{k}") for k, r in enumerate(records() * 2)]
    fig = plots.error_vs_force_figure(recs)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[-3:] == [plots.OTHER_GROUPS, "training", "validation"]
    assert len(texts) == len(plots.GROUP_COLOURS) + 3


def test_long_group_names_fit_in_the_figure(tmp_path):
    recs = [dict(r, group=f"a rather long group name {k % 12}") for k, r in
            enumerate(records() * 2)]
    fig = plots.error_vs_force(str(tmp_path / "f.png"), recs)
    (legend,) = fig.legends
    box = legend.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width
    assert overlaps(fig) == []


def marker_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() not in ("None", "", None)]


def test_learning_curve_marks_measured_iterations_only():
    # training measured at 0..5 and 9..12 (a gap), validation every 3rd iteration
    history = [(i, 100.0 / (i + 1), 120.0 / (i + 1) if i % 3 == 0 else None)
               for i in [*range(6), *range(9, 13)]]
    ax = plots.learning_curve_figure(history).axes[0]
    measured = {"training": [h[0] for h in history],
                "validation": [h[0] for h in history if h[2] is not None]}
    lines = marker_lines(ax)
    assert len(lines) == 2
    for ln in lines:  # markers, no line through them
        name = ln.get_label().split(":")[0]
        assert ln.get_linestyle() == "None"
        assert list(ln.get_xdata()) == measured[name]
        assert ln.get_label().startswith(f"{name}: {len(measured[name])} measured")
    # the only drawn line joins training measurements one iteration apart, never the gap
    (joined,) = [ln for ln in ax.get_lines() if ln not in lines]
    assert joined.get_marker() in ("None", "", None)
    x = np.asarray(joined.get_xdata(), float)
    for seg in np.split(x, np.flatnonzero(np.isnan(x))):
        seg = seg[~np.isnan(seg)]
        if not seg.size:
            continue
        assert len(seg) == 2 and seg[1] - seg[0] == 1 and set(seg) <= set(measured["training"])
    assert not any(5 < v < 9 for v in x[~np.isnan(x)])
    # whole iterations on the axis
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)


def test_direct_solves_and_short_histories_get_no_curve():
    linear = [[0, 1.6e9, 1.7e9], [1, 1.6e9], [2, 4.6e-8, 6.8e-8]]
    assert not plots.has_learning_curve(linear, "linear-solve")
    assert not plots.has_learning_curve(linear, "BFGS")  # 3 iterations: a table
    long = [[k, 10.0 - k] for k in range(6)]
    assert plots.has_learning_curve(long, "BFGS")
    assert not plots.has_learning_curve(long, "linear-solve")
    assert not plots.has_learning_curve([], None)


def test_no_text_overlaps_in_any_plot(tmp_path):
    recs = records()
    tiny = records(scale=1e-9)  # errors of 1e-6 meV: tick values need a ×10ⁿ factor
    history = [(i, 10.0 ** (5 - i), 10.0 ** (5 - i) if i % 2 == 0 else None)
               for i in range(12)]
    figs = {
        "histogram, tiny errors": plots.error_histogram(
            str(tmp_path / "h.png"), "force component", "eV/A",
            np.random.default_rng(0).normal(scale=1e-10, size=500), np.full(20, 3e-11)),
        "histogram": plots.error_histogram(str(tmp_path / "h2.png"), "stress component",
                                           "GPa", np.linspace(-1, 1, 50)),
        "parity, offset": plots.parity_plot(str(tmp_path / "p.png"), "energy per atom",
                                            "eV/atom", ([-5.41231, -5.41229, -5.4122],
                                                        [-5.41232, -5.41228, -5.41221])),
        "energy errors": plots.error_vs_energy(str(tmp_path / "e.png"), tiny),
        "force errors": plots.error_vs_force(str(tmp_path / "f.png"), recs),
        "learning curve": plots.learning_curve(str(tmp_path / "l.png"), history),
    }
    for name, fig in figs.items():
        assert overlaps(fig) == [], name
        for ax in fig.axes:  # offsets live in the axis labels, not at the axis ends
            for axis in (ax.xaxis, ax.yaxis):
                assert not axis.offsetText.get_visible() or not axis.offsetText.get_text()
    xlabel = figs["histogram, tiny errors"].axes[0].get_xlabel()
    assert xlabel.startswith("error of force component, predicted − reference (meV/Å) ")
    # the factor in plain Unicode (not mathtext), e.g. "×10⁻⁷"
    assert re.search(r" ×10⁻[⁰¹²³⁴⁵⁶⁷⁸⁹]+$", xlabel) and "$" not in xlabel
    # the check finds the overlap the unfolded offset text made
    fig = plots.error_histogram_figure("force component", "eV/A", np.linspace(-1e-9, 1e-9, 9))
    fig.axes[0].set_xlabel("error of force component, predicted − reference (meV/Å) " * 2)
    for ax in fig.axes:
        ax.xaxis.get_major_formatter().set_useOffset(False)
    assert any("x offset" in a or "x offset" in b for a, b in overlaps(fig))


def report_links(text: str) -> list[tuple[str, str]]:
    return re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)


def results_of(method, history, recs):
    return {"rexfit_version": "0", "job": "test job",
            "objective": {"training": history[-1][1], "validation": None,
                          "initial": history[0][1]},
            "fit": {"method": method, "iterations": history[-1][0], "evaluations": 3,
                    "converged": True, "message": "done", "seconds": 0.1,
                    "history": history},
            "metrics": dataset_metrics(recs)}


def test_report_links_every_image_and_the_files_exist(tmp_path):
    recs = records()
    history = [[k, 10.0 / (k + 1), 12.0 / (k + 1) if k % 2 == 0 else None] for k in range(6)]
    results = results_of("BFGS", history, recs)
    results["fit"].update(verdict="converged in plain words",
                          warnings=["validation error rises"])
    paths = write_plots_and_report(str(tmp_path), recs, results)
    report = tmp_path / REPORT_FILE
    assert paths[-1] == str(report) and report.exists()
    text = report.read_text()
    links = report_links(text)
    images = sorted(os.path.relpath(p, tmp_path) for p in paths[:-1])
    assert sorted(target for _, target in links) == images
    assert "plots/learning_curve.png" in images
    for alt, target in links:
        assert not os.path.isabs(target)
        assert (tmp_path / target).is_file()
        assert alt == os.path.basename(target)  # the report names each image it links
    assert "## Objective history" not in text  # a curve, not a table
    assert "| converged | yes |" in text and "| how it ended | converged in plain words |" in text
    assert "**Warning:** validation error rises" in text
    # metrics tables in meV
    rmse = 1000 * dataset_metrics(recs)["training"]["all"]["forces"]["rmse"]  # meV/Å
    (row,) = [ln for ln in text.splitlines() if ln.startswith("| all | forces |")][:1]
    assert f"| {rmse:.4g} |" in row and row.endswith("| meV/Å |")
    assert "| bulk | energy_per_atom |" in text


def test_linear_solve_gets_a_table_not_a_curve(tmp_path):
    recs = [dict(r, forces=None, stress=None) for r in records()]
    history = [[0, 1.582945e9, 1.660873e9], [1, 1.582945e9], [2, 4.599e-8, 6.839e-8]]
    paths = write_plots_and_report(str(tmp_path), recs,
                                   results_of("linear-solve", history, recs))
    assert not (tmp_path / "plots" / "learning_curve.png").exists()
    assert "learning_curve.png" not in [os.path.basename(p) for p in paths]
    text = (tmp_path / REPORT_FILE).read_text()
    assert "learning_curve" not in text
    assert "`<linear-solve>` is a direct solve" in text
    assert "| iteration | training objective | validation objective |" in text
    assert "| 0 | 1.582945e+09 | 1.660873e+09 |" in text
    assert "| 1 | 1.582945e+09 | – |" in text
    assert "| 2 | 4.599e-08 | 6.839e-08 |" in text


@pytest.mark.parametrize("method", [None, "BFGS"])
def test_report_without_fit_or_history(tmp_path, method):
    recs = [dict(r, forces=None, stress=None) for r in records()[:2]]
    results = {"rexfit_version": "0", "job": "j", "objective": {"training": 1.0},
               "fit": None, "metrics": None}
    if method:
        results["fit"] = {"method": method, "history": [[0, 1.0]], "converged": False,
                          "message": "m", "iterations": 0, "evaluations": 1, "seconds": 0.0}
    write_plots_and_report(str(tmp_path), recs, results)
    text = (tmp_path / REPORT_FILE).read_text()
    for _, target in report_links(text):
        assert (tmp_path / target).is_file()
    assert "## Error metrics" in text  # computed from the records
