"""Diagnostic plots: PNG files written atomically, labels, the fit line against numpy.polyfit,
the learning curve's scale, the files of a dataset, no pyplot, and a 1e6-point parity plot."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rexfit.report import plots
from rexfit.report.metrics import metrics
from rexfit.report.plots import (error_histogram, learning_curve, linear_fit, parity_plot,
                                 write_dataset_plots)

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """Width and height from the IHDR chunk of a PNG file (checks the signature)."""
    data = Path(path).read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    try:
        from PIL import Image
    except ImportError:
        return width, height
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG" and im.size == (width, height)
    return width, height


def no_temporaries(directory) -> None:
    assert not [p for p in os.listdir(directory) if p.startswith(".tmp-")]


def sample(n, slope=1.02, intercept=-0.3, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(scale=2.0, size=n)
    return slope * ref + intercept + rng.normal(scale=noise, size=n), ref


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_parity_plot(tmp_path):
    train, valid = sample(500), sample(80, slope=0.9, intercept=0.2, seed=1)
    path = tmp_path / "sub" / "parity.png"
    fig = parity_plot(str(path), "energy per atom", "eV/atom", train, valid)
    assert png_size(path) == (round(plots.SIZE[0] * plots.DPI), round(plots.SIZE[1] * plots.DPI))
    no_temporaries(path.parent)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "reference energy per atom (eV/atom)"
    assert ax.get_ylabel() == "predicted energy per atom (eV/atom)"
    assert ax.get_aspect() == 1.0 and ax.get_xlim() == ax.get_ylim()
    texts = legend_texts(ax)
    assert texts[0] == "y = x"
    for name, (pred, ref) in (("training", train), ("validation", valid)):
        slope, intercept = np.polyfit(ref, pred, 1)
        fit = linear_fit(pred, ref)
        assert fit == pytest.approx((slope, intercept), rel=1e-10, abs=1e-12)
        sign = "-" if intercept < 0 else "+"
        assert f"{name} fit: y = {slope:.4f}x {sign} {abs(intercept):.4g}" in texts
        m = metrics(pred, ref)
        assert (f"{name}: n = {pred.size}, RMSE = {m['rmse']:.4g}, R² = {m['r2']:.6f}"
                in texts)
        # the dashed line drawn is that fit, over the whole axis range
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == f"{name} fit: "
                   f"y = {slope:.4f}x {sign} {abs(intercept):.4g}"]
        x, y = line.get_data()
        np.testing.assert_allclose(y, slope * np.asarray(x) + intercept, rtol=1e-9)
        assert tuple(x) == ax.get_xlim()
    # different colours for the sets
    points = [ln for ln in ax.get_lines() if ln.get_linestyle() == "None"]
    assert len(points) == 2 and points[0].get_color() != points[1].get_color()


def test_parity_plot_training_only_and_degenerate(tmp_path):
    fig = parity_plot(str(tmp_path / "p.png"), "stress component", "GPa", sample(30), None)
    texts = legend_texts(fig.axes[0])
    assert not [t for t in texts if t.startswith("validation")]
    assert fig.axes[0].get_xlabel() == "reference stress component (GPa)"
    # constant reference: no fit line, R² undefined, still a valid plot
    fig = parity_plot(str(tmp_path / "c.png"), "x", "", ([1.0, 1.2], [1.0, 1.0]))
    texts = legend_texts(fig.axes[0])
    assert not [t for t in texts if "fit" in t] and "R² = undefined" in texts[1]
    png_size(tmp_path / "c.png")
    with pytest.raises(ValueError, match="non-finite"):
        parity_plot(str(tmp_path / "n.png"), "x", "", ([np.nan], [1.0]))
    assert not (tmp_path / "n.png").exists()


def test_parity_plot_large_input_is_fast(tmp_path):
    n = 1_000_000
    pred, ref = sample(n, seed=2)
    start = time.perf_counter()
    fig = parity_plot(str(tmp_path / "big.png"), "force component", "eV/A", (pred, ref),
                      sample(1000, seed=3))
    seconds = time.perf_counter() - start
    assert seconds < 5.0
    png_size(tmp_path / "big.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "reference force component (eV/Å)"
    # drawing is thinned, the statistics are not; the largest error is drawn
    label = [t for t in legend_texts(ax) if t.startswith("training:")][0]
    assert label.startswith(f"training: n = {n} ({plots.MAX_DRAWN} drawn), "
                            f"RMSE = {metrics(pred, ref)['rmse']:.4g}")
    (drawn,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    x, y = drawn.get_data()
    assert len(x) == plots.MAX_DRAWN
    worst = np.argmax(np.abs(pred - ref))
    assert np.any((x == ref[worst]) & (y == pred[worst]))
    assert linear_fit(pred, ref) == pytest.approx(tuple(np.polyfit(ref, pred, 1)), rel=1e-9)


def test_error_histogram(tmp_path):
    rng = np.random.default_rng(4)
    tr, va = rng.normal(scale=0.1, size=2000), rng.normal(scale=0.2, size=50)
    fig = error_histogram(str(tmp_path / "e.png"), "force component", "eV/A", tr, va)
    png_size(tmp_path / "e.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "error of force component, predicted − reference (meV/Å)"
    assert ax.get_ylabel() == "fraction of values"
    texts = legend_texts(ax)
    tr_m, va_m = 1000 * tr, 1000 * va  # shown in meV/Å
    assert texts == [
        f"training: n = 2000, mean = {tr_m.mean():.4g}, std = {tr_m.std():.4g}\n"
        f"RMSE = {np.sqrt(np.mean(tr_m ** 2)):.4g}, MAE = {np.abs(tr_m).mean():.4g} meV/Å",
        f"validation: n = 50, mean = {va_m.mean():.4g}, std = {va_m.std():.4g}\n"
        f"RMSE = {np.sqrt(np.mean(va_m ** 2)):.4g}, MAE = {np.abs(va_m).mean():.4g} meV/Å"]
    # each set's bars hold fractions summing to one, on common bins
    from matplotlib.patches import StepPatch

    steps = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert len(steps) == 4
    for p in steps:
        assert float(np.sum(p.get_data().values)) == pytest.approx(1.0)
    assert len({tuple(p.get_data().edges) for p in steps}) == 1
    # all errors equal: still a histogram
    fig = error_histogram(str(tmp_path / "z.png"), "x", "GPa", np.zeros(5))
    png_size(tmp_path / "z.png")


def test_learning_curve(tmp_path):
    history = [(i, 10.0 / (i + 1), 12.0 / (i + 1) if i % 3 == 0 else None) for i in range(20)]
    fig = learning_curve(str(tmp_path / "lc.png"), history)
    png_size(tmp_path / "lc.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("iteration", "objective")
    train, valid = [ln for ln in ax.get_lines() if ln.get_marker() not in ("None", None, "")]
    assert list(train.get_xdata()) == list(range(20))
    assert list(valid.get_xdata()) == [0, 3, 6, 9, 12, 15, 18]
    # a zero objective: linear scale; (iteration, objective) pairs as in FitResult.history
    fig = learning_curve(str(tmp_path / "lc2.png"), [[0, 3.0], [1, 1.0], [2, 0.0]])
    assert fig.axes[0].get_yscale() == "linear"
    assert len([ln for ln in fig.axes[0].get_lines() if ln.get_marker() != "None"]) == 1
    with pytest.raises(ValueError, match="history entry"):
        learning_curve(str(tmp_path / "lc3.png"), [(1,)])


def dataset(seed=5):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(12):
        n = int(rng.integers(1, 5))
        fr = rng.normal(size=(n, 3))
        er = -3.0 * n + float(rng.normal())
        recs.append({"set": "validation" if i % 4 == 0 else "training",
                     "group": "bulk" if i % 2 else None, "natoms": n,
                     "energy": (er + 0.01, er), "forces": (fr + 0.02, fr), "stress": None})
    return recs


def test_write_dataset_plots(tmp_path):
    out = tmp_path / "plots"
    history = [(0, 5.0, 6.0), (1, 2.0, 3.0), (2, 1.0, 2.5), (3, 0.5, 2.4)]
    paths = write_dataset_plots(str(out), dataset(), history)
    names = [os.path.basename(p) for p in paths]
    assert names == ["parity_energy_per_atom.png", "errors_energy_per_atom.png",
                     "parity_forces.png", "errors_forces.png", "errors_vs_energy.png",
                     "errors_vs_force.png", "learning_curve.png"]
    assert sorted(os.listdir(out)) == sorted(names)
    for p in paths:
        png_size(p)
    # no history, no learning curve; a quantity of the validation set only is still plotted
    recs = [{"set": "validation", "group": None, "natoms": 1,
             "stress": (np.ones(6), np.arange(6.0))}]
    paths = write_dataset_plots(str(tmp_path / "other"), recs, [])
    assert [os.path.basename(p) for p in paths] == ["parity_stress.png", "errors_stress.png"]
    assert write_dataset_plots(str(tmp_path / "none"), [], None) == []


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "p.png"
    path.write_bytes(b"old")
    fig = plots.parity_figure("x", "", sample(10))

    def broken(figure, tmp):  # the file is written half way
        Path(tmp).write_bytes(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(plots, "_write_png", broken)
    with pytest.raises(OSError, match="disk full"):
        plots.save_figure(fig, str(path))
    assert path.read_bytes() == b"old"
    no_temporaries(tmp_path)


def test_pyplot_is_never_imported(tmp_path):
    code = ("import sys, matplotlib\n"
            "matplotlib.use('svg')\n"
            "from rexfit.report.plots import parity_plot\n"
            f"parity_plot({str(tmp_path / 'p.png')!r}, 'x', 'eV', ([1, 2, 3], [1, 2, 2.5]))\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n"
            "assert matplotlib.get_backend() == 'svg'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    png_size(tmp_path / "p.png")


def test_png_round_trip(tmp_path):
    """A saved figure is an opaque RGB PNG at DPI whose pixels are the ones drawn."""
    from PIL import Image

    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [1, 0])
    path = plots.save_figure(fig, str(tmp_path / "f.png"))
    drawn = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (drawn.shape[1], drawn.shape[0])
        assert im.info["dpi"] == pytest.approx((plots.DPI, plots.DPI), abs=0.05)
        np.testing.assert_array_equal(np.asarray(im), drawn)


@pytest.mark.parametrize("math, plain", [
    (r"$\mathdefault{−2.5}$", "−2.5"),
    (r"$\times\mathdefault{10^{−8}}\mathdefault{}$", "×10⁻⁸"),
    (r"$\times\mathdefault{10^{-3}}\mathdefault{−5.41}$", "×10⁻³−5.41"),
    (r"$\mathdefault{10^{12}}$", "10¹²"),
    (r"$\mathdefault{2\times10^{-3}}$", "2×10⁻³"),
    ("energy (eV/Å)", "energy (eV/Å)"),
    (r"$\alpha$", r"$\alpha$"),  # other mathtext is left to matplotlib
    (r"$\mathdefault{10^{1.5}}$", r"$\mathdefault{10^{1.5}}$"),
])
def test_plain_text(math, plain):
    assert plots.plain_text(math) == plain


def drawn_texts(fig) -> list:
    """The texts of ``fig`` that are drawn: titles, axis labels, tick labels within the view,
    legends and text boxes (as artists with a window extent)."""
    out = list(fig.legends)
    for ax in fig.axes:
        out += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.artists, *ax.texts]
        if ax.get_legend() is not None:
            out.append(ax.get_legend())
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for minor in (False, True):
                locs = axis.get_minorticklocs() if minor else axis.get_majorticklocs()
                out += [label for loc, label in zip(locs, axis.get_ticklabels(minor=minor))
                        if lo <= loc <= hi]
    return [a for a in out if a.get_visible() and getattr(a, "get_text", lambda: "x")()]


def test_saving_draws_once_without_mathtext(tmp_path, monkeypatch):
    """Each figure is laid out without drawing and drawn once; no text goes through the
    mathtext parser; every text lies within the figure; drawing again keeps the layout."""
    from matplotlib.mathtext import MathTextParser
    from matplotlib.text import Text

    parsed = []
    parse = MathTextParser.parse
    monkeypatch.setattr(MathTextParser, "parse",
                        lambda self, s, *a, **k: parsed.append(s) or parse(self, s, *a, **k))
    rng = np.random.default_rng(8)
    history = [(i, 10.0 ** (3 - i), None) for i in range(8)]
    figs = [plots.parity_figure("energy per atom", "eV/atom", ([-5.41231, -5.41229, -5.4122],
                                                              [-5.41232, -5.41228, -5.41221])),
            plots.error_histogram_figure("force component", "eV/A",
                                         rng.normal(scale=1e-10, size=300)),
            plots.error_vs_force_figure(dataset()),
            plots.learning_curve_figure(history)]
    for k, fig in enumerate(figs):
        draws = []
        draw = fig.draw
        monkeypatch.setattr(fig, "draw", lambda r, draw=draw: draws.append(r) or draw(r))
        plots.save_figure(fig, str(tmp_path / f"{k}.png"))
        assert len(draws) == 1, k
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
        assert not [t.get_text() for t in texts if "$" in t.get_text()]
        box = fig.bbox
        for t in drawn_texts(fig):
            e = t.get_window_extent()
            assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, \
                (k, t.get_text())
        position = fig.axes[0].get_position().bounds
        fig.canvas.draw()
        assert fig.axes[0].get_position().bounds == position
    assert parsed == []
    # the log axis of the learning curve is labelled 10⁰, 10⁻², …
    ax = figs[3].axes[0]
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+", s) for s in labels), labels


def test_figures_of_several_or_no_axes_are_saved(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    for k in (1, 2):
        ax = fig.add_subplot(1, 2, k)
        ax.plot([0, 1], [k, 2 * k])
        ax.set_xlabel(f"x {k}")
    fig.add_axes((0.4, 0.4, 0.2, 0.2))  # placed by hand: stays
    plots.save_figure(fig, str(tmp_path / "two.png"))
    assert png_size(tmp_path / "two.png") == (round(6.4 * plots.DPI), round(4.8 * plots.DPI))
    assert fig.axes[2].get_position().bounds == pytest.approx((0.4, 0.4, 0.2, 0.2))
    plots.save_figure(Figure(), str(tmp_path / "empty.png"))
    png_size(tmp_path / "empty.png")


def test_saving_again_writes_the_same_file(tmp_path):
    rng = np.random.default_rng(9)
    fig = plots.error_histogram_figure("force component", "eV/A",
                                       rng.normal(scale=1e-10, size=300))
    plots.save_figure(fig, str(tmp_path / "a.png"))
    label = fig.axes[0].get_xlabel()
    assert label.count("×10") == 1
    plots.save_figure(fig, str(tmp_path / "b.png"))
    assert fig.axes[0].get_xlabel() == label
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
