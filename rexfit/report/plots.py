"""Diagnostic plots of a fit to a dataset: parity plots (predicted against reference), error
histograms and the learning curve, as PNG files.

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas directly:
pyplot and the user's selected backend are never touched, so nothing here opens a window or
changes an interactive session. Files are written atomically (temporary file + rename).

Each ``*_figure`` function returns the Figure; each ``*_plot`` function builds the same Figure,
writes it to ``path`` and returns it. Metrics and fit lines always use every value; only the
drawing of very large scatter plots is thinned (see ``MAX_DRAWN``). Files and what the plots
show: docs/metrics-and-plots.md.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rexfit.report.files import atomic_write
from rexfit.report.metrics import QUANTITIES, gather, metrics

#: Colours of the sets.
COLOURS = {"training": "tab:blue", "validation": "tab:orange"}

#: At most this many points per set are drawn in a parity plot. Beyond it a fixed-seed random
#: subset is drawn, always including the ``KEEP_WORST`` points of largest error.
MAX_DRAWN = 200_000
KEEP_WORST = 2_000

#: Figure size (inches) and resolution of the PNG files.
SIZE = (5.5, 5.0)
DPI = 150

#: Axis labels of the quantities of a dataset.
LABELS = {"energy_per_atom": "energy per atom", "forces": "force component",
          "stress": "stress component"}

#: Units as printed on the axes (the tables use ASCII "A").
PLOT_UNITS = {"eV/A": "eV/Å"}


def _unit(unit: str) -> str:
    return PLOT_UNITS.get(unit, unit)


def _new_figure() -> Figure:
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str) -> str:
    """Write ``fig`` as a PNG to ``path`` atomically (temporary file in the same directory,
    then rename, with the mode of a new file); returns ``path``."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return path


def _values(pair, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    if pair is None:
        return None
    pred = np.asarray(pair[0], dtype=np.float64).ravel()
    ref = np.asarray(pair[1], dtype=np.float64).ravel()
    if pred.shape != ref.shape:
        raise ValueError(f"{what}: {pred.size} predicted but {ref.size} reference values")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(ref))):
        raise ValueError(f"{what} contains non-finite values")
    return (pred, ref) if pred.size else None


def linear_fit(predicted, reference) -> tuple[float, float] | None:
    """Least-squares line ``predicted ≈ slope · reference + intercept``: (slope, intercept),
    or None when the reference values do not vary."""
    x = np.asarray(reference, dtype=np.float64).ravel()
    y = np.asarray(predicted, dtype=np.float64).ravel()
    if x.size < 2 or float(x.max()) == float(x.min()):
        return None
    xm, ym = float(x.mean()), float(y.mean())
    dx = x - xm
    sxx = float(np.dot(dx, dx))
    if sxx == 0.0:
        return None
    slope = float(np.dot(dx, y - ym)) / sxx
    return slope, ym - slope * xm


def _drawn(pred: np.ndarray, ref: np.ndarray) -> np.ndarray | slice:
    """Indices of the points drawn: all of them, or a reproducible subset of MAX_DRAWN that
    contains the KEEP_WORST largest errors."""
    n = pred.size
    if n <= MAX_DRAWN:
        return slice(None)
    worst = np.argpartition(np.abs(pred - ref), n - KEEP_WORST)[n - KEEP_WORST:]
    rest = np.ones(n, dtype=bool)
    rest[worst] = False
    rng = np.random.default_rng(0)
    others = rng.choice(np.flatnonzero(rest), MAX_DRAWN - KEEP_WORST, replace=False)
    return np.sort(np.concatenate([worst, others]))


def _marker_size(n: int) -> float:
    return 4.0 if n <= 1_000 else 2.0 if n <= 50_000 else 1.0


def _g(x: float) -> str:
    return f"{x:.4g}"


def _equation(slope: float, intercept: float) -> str:
    sign = "-" if intercept < 0 else "+"
    return f"y = {slope:.4f}x {sign} {_g(abs(intercept))}"


def parity_figure(quantity: str, unit: str, training=None, validation=None) -> Figure:
    """Predicted against reference values: one colour per set, the line y = x, a least-squares
    line per set with its equation, and each set's R² (1 − SS_res/SS_tot of the predictions),
    RMSE and count in the legend. Equal scales on both axes."""
    sets = [(name, _values(pair, f"{name} {quantity}"))
            for name, pair in (("training", training), ("validation", validation))]
    sets = [(name, v) for name, v in sets if v is not None]
    fig = _new_figure()
    ax = fig.add_subplot()
    u = _unit(unit)
    ax.set_xlabel(f"reference {quantity} ({u})" if u else f"reference {quantity}")
    ax.set_ylabel(f"predicted {quantity} ({u})" if u else f"predicted {quantity}")
    ax.set_title(f"Parity: {quantity}")
    if not sets:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    lo = min(min(float(p.min()), float(r.min())) for _, (p, r) in sets)
    hi = max(max(float(p.max()), float(r.max())) for _, (p, r) in sets)
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    lo, hi = lo - pad, hi + pad
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="-", label="y = x", zorder=3)
    for name, (pred, ref) in sets:
        colour = COLOURS[name]
        m = metrics(pred, ref)
        idx = _drawn(pred, ref)
        shown = pred[idx].size
        r2 = "undefined" if m["r2"] is None else f"{m['r2']:.6f}"
        label = f"{name}: n = {pred.size}"
        if shown < pred.size:
            label += f" ({shown} drawn)"
        label += f", RMSE = {_g(m['rmse'])}, R² = {r2}"
        ax.plot(ref[idx], pred[idx], ls="", marker="o", ms=_marker_size(pred.size),
                mew=0, alpha=0.6, color=colour, label=label, rasterized=pred.size > 5_000,
                zorder=2)
        fit = linear_fit(pred, ref)
        if fit is not None:
            slope, intercept = fit
            ax.plot([lo, hi], [slope * lo + intercept, slope * hi + intercept], color=colour,
                    lw=1.0, ls="--", label=f"{name} fit: {_equation(slope, intercept)}",
                    zorder=4)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(loc="upper left", fontsize="x-small", framealpha=0.8)
    return fig


def parity_plot(path: str, quantity: str, unit: str, training=None,
                validation=None) -> Figure:
    """:func:`parity_figure` written to ``path`` (PNG); returns the Figure."""
    fig = parity_figure(quantity, unit, training, validation)
    save_figure(fig, path)
    return fig


def _errors(values, what: str) -> np.ndarray | None:
    if values is None:
        return None
    e = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(e)):
        raise ValueError(f"{what} contains non-finite values")
    return e if e.size else None


def error_histogram_figure(quantity: str, unit: str, training_errors=None,
                           validation_errors=None, bins: int | None = None) -> Figure:
    """Histograms of the errors (predicted − reference) of each set on common bins, as the
    fraction of values per bin (sets of different sizes compare directly), with a line at
    zero error and each set's mean error and standard deviation in the legend.

    ``bins`` defaults to 2·√n (n: all values), between 10 and 80."""
    sets = [(name, _errors(e, f"{name} errors of {quantity}"))
            for name, e in (("training", training_errors), ("validation", validation_errors))]
    sets = [(name, e) for name, e in sets if e is not None]
    fig = _new_figure()
    ax = fig.add_subplot()
    u = _unit(unit)
    ax.set_xlabel(f"error of {quantity}, predicted − reference ({u})" if u
                  else f"error of {quantity}, predicted − reference")
    ax.set_ylabel("fraction of values")
    ax.set_title(f"Errors: {quantity}")
    if not sets:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    lo = min(float(e.min()) for _, e in sets)
    hi = max(float(e.max()) for _, e in sets)
    if hi == lo:
        half = max(abs(lo), 1.0) * 1e-3
        lo, hi = lo - half, hi + half
    if bins is None:
        total = sum(e.size for _, e in sets)
        bins = int(min(80, max(10, round(2 * np.sqrt(total)))))
    edges = np.linspace(lo, hi, bins + 1)
    top = 0.0
    for name, e in sets:
        counts, _ = np.histogram(e, bins=edges)
        top = max(top, float(counts.max()) / e.size)
        mean = float(e.mean())
        std = float(e.std())
        ax.stairs(counts / e.size, edges, fill=True, alpha=0.45, color=COLOURS[name],
                  label=f"{name}: n = {e.size}, mean = {_g(mean)}, std = {_g(std)}")
        ax.stairs(counts / e.size, edges, color=COLOURS[name], lw=0.8)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_ylim(0, 1.3 * top)  # room for the legend
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(loc="upper right", fontsize="x-small", framealpha=0.8)
    return fig


def error_histogram(path: str, quantity: str, unit: str, training_errors=None,
                    validation_errors=None) -> Figure:
    """:func:`error_histogram_figure` written to ``path`` (PNG); returns the Figure."""
    fig = error_histogram_figure(quantity, unit, training_errors, validation_errors)
    save_figure(fig, path)
    return fig


def _history_rows(history) -> list[tuple[float, float | None, float | None]]:
    rows = []
    for entry in history:
        entry = list(entry)
        if len(entry) not in (2, 3):
            raise ValueError(f"history entry {entry!r}: expected (iteration, training"
                             f"[, validation])")
        it, tr = entry[0], entry[1]
        va = entry[2] if len(entry) == 3 else None
        rows.append((float(it), None if tr is None else float(tr),
                     None if va is None else float(va)))
    return rows


def learning_curve_figure(history) -> Figure:
    """Objective against iteration for the training set and, where known, the validation set.
    ``history``: (iteration, training objective, validation objective or None) entries;
    (iteration, training objective) pairs are accepted too. The y axis is logarithmic when
    every value shown is positive."""
    rows = _history_rows(history)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    ax.set_title("Learning curve")
    shown = []
    markers = len(rows) <= 50
    for k, name in ((1, "training"), (2, "validation")):
        pts = [(r[0], r[k]) for r in rows if r[k] is not None and np.isfinite(r[k])]
        if not pts:
            continue
        x, y = np.array(pts).T
        shown.append(y)
        ax.plot(x, y, color=COLOURS[name], lw=1.2, marker="o" if markers else None,
                ms=3, label=f"{name} (final {_g(float(y[-1]))})")
    if not shown:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    if all(bool(np.all(y > 0)) for y in shown):
        ax.set_yscale("log")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(loc="upper right", fontsize="small", framealpha=0.8)
    return fig


def learning_curve(path: str, history) -> Figure:
    """:func:`learning_curve_figure` written to ``path`` (PNG); returns the Figure."""
    fig = learning_curve_figure(history)
    save_figure(fig, path)
    return fig


#: File names written by write_dataset_plots (``{q}`` is a quantity of QUANTITIES).
PARITY_FILE = "parity_{q}.png"
ERRORS_FILE = "errors_{q}.png"
LEARNING_CURVE_FILE = "learning_curve.png"


def write_dataset_plots(directory: str, records: list[dict], history=None) -> list[str]:
    """Write the plots of a dataset under ``directory``: for each quantity present in the
    records (see :func:`rexfit.report.metrics.dataset_metrics` for ``records``) a parity plot
    ``parity_<quantity>.png`` and an error histogram ``errors_<quantity>.png``, training and
    validation sets together; and ``learning_curve.png`` when ``history`` is non-empty.
    Returns the paths written."""
    data = gather(records)
    written = []
    for name, (_, unit) in QUANTITIES.items():
        pairs = {s: data[s]["all"].get(name) for s in ("training", "validation") if s in data}
        pairs = {s: p for s, p in pairs.items() if p is not None}
        if not pairs:
            continue
        label = LABELS[name]
        path = os.path.join(directory, PARITY_FILE.format(q=name))
        parity_plot(path, label, unit, pairs.get("training"), pairs.get("validation"))
        written.append(path)
        errs = {s: p[0] - p[1] for s, p in pairs.items()}
        path = os.path.join(directory, ERRORS_FILE.format(q=name))
        error_histogram(path, label, unit, errs.get("training"), errs.get("validation"))
        written.append(path)
    if history is not None and len(history) > 0:
        path = os.path.join(directory, LEARNING_CURVE_FILE)
        learning_curve(path, history)
        written.append(path)
    return written
