"""Diagnostic plots of a fit to a dataset: parity plots (predicted against reference), error
histograms, errors against the energy above the lowest one and against the force, coloured by
group, and the learning curve, as PNG files.

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas directly:
pyplot and the user's selected backend are never touched, so nothing here opens a window or
changes an interactive session. Saving a figure lays it out once without drawing it
(:func:`tidy_axes`: tick labels in plain Unicode rather than mathtext, one pass over the tick
labels) and draws it once; Pillow encodes the PNG (:func:`_write_png`). Files are written
atomically (temporary file + rename).

Each ``*_figure`` function returns the Figure; each ``*_plot`` function builds the same Figure,
writes it to ``path`` and returns it. Metrics and fit lines always use every value; only the
drawing of very large scatter plots is thinned (see ``MAX_DRAWN``). Files and what the plots
show: docs/metrics-and-plots.md.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.offsetbox import AnchoredText
from matplotlib.ticker import (FixedLocator, LogFormatterSciNotation, LogLocator,
                               MaxNLocator, ScalarFormatter)

from rexfit.files import atomic_write
from rexfit.report.metrics import NO_GROUP, QUANTITIES, gather, metrics

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


#: Errors are shown in these units (name, factor from the unit of the values): meV for the
#: energies and forces, as pacemaker and MedeA report them; other units stay as they are.
MILLI = {"eV/atom": ("meV/atom", 1e3), "eV/A": ("meV/Å", 1e3), "eV": ("meV", 1e3)}

#: Colours of the groups in the plots coloured by group (in order of appearance); groups
#: beyond these are drawn together in grey as "other groups".
GROUP_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
                 "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
OTHER_GROUPS = "other groups"

#: Marker of each set in the plots coloured by group.
SET_MARKERS = {"training": "o", "validation": "^"}


def _unit(unit: str) -> str:
    return PLOT_UNITS.get(unit, unit)


def error_unit(unit: str) -> tuple[str, float]:
    """(unit shown, factor) of errors of a quantity in ``unit``: meV/atom and meV/Å for
    eV/atom and eV/Å (factor 1000), the unit itself otherwise (factor 1)."""
    return MILLI.get(unit, (_unit(unit), 1.0))


def _new_figure() -> Figure:
    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


_SUPERSCRIPTS = str.maketrans("0123456789-\N{MINUS SIGN}+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁻⁺")


def _superscript(text: str) -> str:
    if text and all(c in "0123456789-\N{MINUS SIGN}+" for c in text):
        return text.translate(_SUPERSCRIPTS)
    return "^{" + text + "}"  # left as it is: plain_text keeps such a string in mathtext


def plain_text(text: str) -> str:
    r"""``text`` with the mathtext matplotlib's tick formatters write (``$\mathdefault{…}$``,
    ``\times``, powers ``10^{-8}``) in plain Unicode ("×10⁻⁸"); any other text, or mathtext
    beyond that, is returned as it is. Plain text is laid out and drawn much faster than
    mathtext, which goes through a parser."""
    if len(text) < 2 or text[0] != "$" or text[-1] != "$" or text.count("$") != 2:
        return text
    out, previous = text[1:-1].replace(r"\times", "×"), None
    while out != previous:  # innermost braces first: \mathdefault{10^{-8}}
        previous = out
        out = re.sub(r"\^\{([^{}]*)\}", lambda m: _superscript(m.group(1)), out)
        out = re.sub(r"\\mathdefault\{([^{}]*)\}", r"\1", out)
    if any(c in out for c in "\\{}^_"):
        return text
    return out.replace(" ", "")  # spaces are not drawn in mathtext either


class PlainScalarFormatter(ScalarFormatter):
    """matplotlib's ScalarFormatter (the default of linear axes) with tick labels and the
    offset ("×10⁻⁸", "−5.41") in plain Unicode instead of mathtext."""

    def __init__(self, useOffset=None, useLocale=None):
        super().__init__(useOffset=useOffset, useMathText=True, useLocale=useLocale)

    def __call__(self, x, pos=None):
        return plain_text(super().__call__(x, pos))

    def get_offset(self):
        return plain_text(super().get_offset())


class PlainLogFormatter(LogFormatterSciNotation):
    """matplotlib's LogFormatterSciNotation (the default of log axes) with the labels ("10⁻³",
    "2×10⁻³") in plain Unicode instead of mathtext."""

    def __call__(self, x, pos=None):
        return plain_text(super().__call__(x, pos))


#: Space (points) kept between the texts of a figure and its edges.
PAD_POINTS = 4.0

#: Tick counts tried, in turn, on an axis whose tick labels would touch.
FEWER_BINS = (6, 4, 2)


def _plain_formatters(ax) -> None:
    """Plain-text formatters instead of matplotlib's mathtext ones on the linear axes of
    ``ax`` (see :class:`PlainScalarFormatter`); the offset texts are hidden (they go into the
    axis labels, :func:`tidy_axes`)."""
    for axis in (ax.xaxis, ax.yaxis):
        fmt = axis.get_major_formatter()
        if type(fmt) is ScalarFormatter:
            fmt = PlainScalarFormatter(useOffset=fmt.get_useOffset(),
                                       useLocale=fmt.get_useLocale())
            axis.set_major_formatter(fmt)
        if isinstance(fmt, ScalarFormatter):
            axis.offsetText.set_visible(False)


def _fix_tick_counts(ax) -> dict:
    """Tick counts that do not depend on the axes' size (matplotlib's automatic count, as
    for the axes' current size), so that one layout pass fits the ticks that are drawn.
    Returns {axis: (MaxNLocator, its number of bins)} of the axes' linear axes."""
    out = {}
    for axis in (ax.xaxis, ax.yaxis):
        loc = axis.get_major_locator()
        space = axis.get_tick_space()
        if isinstance(loc, MaxNLocator):
            nbins = getattr(loc, "_nbins", "auto")
            if not isinstance(nbins, int):
                nbins = max(min(space, 9), 1)
                loc.set_params(nbins=nbins)
            out[axis] = (loc, nbins)
        for loc in (axis.get_major_locator(), axis.get_minor_locator()):
            if isinstance(loc, LogLocator) and loc.numticks == "auto":
                loc.set_params(numticks=int(np.clip(space, 2, 9)))
    return out


def _ticks_in_view(axis, locator: MaxNLocator) -> FixedLocator:
    """The ticks ``locator`` puts within the view of ``axis``, fixed: matplotlib makes and
    updates a tick object for each location, also those beyond the view it never draws."""
    lo, hi = sorted(axis.get_view_interval())
    tol = 1e-10 * max(hi - lo, abs(hi), abs(lo))
    return FixedLocator([v for v in locator.tick_values(lo, hi) if lo - tol <= v <= hi + tol])


def _title(ax, text: str) -> None:
    """The title of ``ax``, at a fixed height above it: matplotlib would otherwise move it
    above any tick labels at the top (there are none here) and measure the y axis for that at
    every draw."""
    ax.set_title(text, y=1.0)


def _crowded(axis, renderer) -> bool:
    """Whether two neighbouring tick labels of ``axis`` within its view overlap (or nearly
    touch: 10 % more width on an x axis)."""
    lo, hi = sorted(axis.get_view_interval())
    boxes = [label.get_window_extent(renderer)
             for loc, label in zip(axis.get_majorticklocs(), axis.get_ticklabels())
             if lo <= loc <= hi and label.get_visible() and label.get_text()]
    if axis.axis_name == "x":
        boxes = [b.expanded(1.1, 1.0) for b in boxes]
    return any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def _place(fig: Figure, renderer) -> None:
    """Position the axes so that their texts (tick labels, axis labels, title) fit in the
    figure, with the figure's legends below them: one tight-bounding-box pass for a figure of
    one axes; constrained layout, run once, otherwise."""
    if not fig.axes:
        return
    if len(fig.axes) != 1:
        fig.set_layout_engine("constrained")
        with warnings.catch_warnings():  # axes placed by hand (add_axes) are left where they are
            warnings.filterwarnings("ignore", "There are no gridspecs", UserWarning)
            fig.get_layout_engine().execute(fig)
        fig.set_layout_engine("none")
        return
    (ax,) = fig.axes
    width, height = fig.bbox.width, fig.bbox.height
    pad = PAD_POINTS * fig.dpi / 72.0
    below = max([lg.get_window_extent(renderer).y1 for lg in fig.legends], default=0.0)
    # the legends and text boxes of the axes are inside them; their spines, which make the
    # tick marks update once more each, too
    tight = ax.get_tightbbox(renderer, bbox_extra_artists=[], for_layout_only=True)
    box = ax.bbox  # after the aspect is applied
    left = box.x0 - tight.x0 + pad
    right = tight.x1 - box.x1 + pad
    bottom = box.y0 - tight.y0 + pad + below
    top = tight.y1 - box.y1 + pad
    ax.set_position([left / width, bottom / height, max(width - left - right, 1.0) / width,
                     max(height - bottom - top, 1.0) / height])
    ax.apply_aspect()


def tidy_axes(fig: Figure) -> None:
    """Lay ``fig`` out for :func:`save_figure`, without drawing it: tick labels in plain text
    (:func:`plain_text`), fewer ticks on an axis whose tick labels would overlap (long labels
    such as −5.41232), the offset of an axis (matplotlib's "×10⁻⁷" or "−5.41" at an axis end)
    at the end of its label, where it cannot overlap it (the tick values mean the same), and
    the axes placed so that every text fits in the figure (:func:`_place`). Afterwards
    ``fig`` has no layout engine: drawing it again keeps this layout."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    if fig.get_layout_engine() is not None:  # it would lay the figure out again at each draw
        fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    labels = {}
    for ax in fig.axes:
        _plain_formatters(ax)
        labels.update({axis: axis.get_label_text() for axis in (ax.xaxis, ax.yaxis)})
    if len(fig.axes) == 1:  # about the final position: tick counts for the final size
        (ax,) = fig.axes
        pad = PAD_POINTS * fig.dpi / 72.0
        below = max([lg.get_window_extent(renderer).y1 for lg in fig.legends], default=0.0)
        inch = fig.dpi
        ax.set_position([(0.8 * inch) / fig.bbox.width, (below + 0.6 * inch) / fig.bbox.height,
                         1 - (0.95 * inch + pad) / fig.bbox.width,
                         1 - (below + 1.0 * inch) / fig.bbox.height])
        ax.apply_aspect()
    locators = {}
    for ax in fig.axes:
        locators.update(_fix_tick_counts(ax))
    for _ in range(len(FEWER_BINS) + 1):
        for axis, (loc, _) in locators.items():
            axis.set_major_locator(_ticks_in_view(axis, loc))
        for axis, text in labels.items():
            fmt = axis.get_major_formatter()
            if isinstance(fmt, ScalarFormatter):
                fmt.format_ticks(axis.get_majorticklocs())
                offset = fmt.get_offset()
                if offset and not text.endswith(f" {offset}"):  # not twice if saved again
                    text = f"{text} {offset}"
                axis.set_label_text(text)
        _place(fig, renderer)
        crowded = [axis for axis, (_, nbins) in locators.items()
                   if nbins > 2 and _crowded(axis, renderer)]
        for axis in crowded:
            loc, nbins = locators[axis]
            nbins = next(n for n in FEWER_BINS if n < nbins)
            loc.set_params(nbins=nbins)
            locators[axis] = (loc, nbins)
        if not crowded:
            break


#: zlib compression level of the PNG files (Pillow's 1 fastest … 9 smallest): 3 writes the
#: plots in about half the time of the default 6, a few per cent larger.
PNG_COMPRESSION = 3


def _write_png(fig: Figure, path: str) -> None:
    """Draw ``fig`` once and write it to ``path`` as a PNG with Pillow (matplotlib's own image
    library): RGB when the image is opaque (as the plots are), RGBA otherwise."""
    from PIL import Image

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    pixels = rgba[..., :3] if rgba[..., 3].min() == 255 else rgba
    Image.fromarray(np.ascontiguousarray(pixels)).save(
        path, format="PNG", compress_level=PNG_COMPRESSION, dpi=(fig.dpi, fig.dpi))


def save_figure(fig: Figure, path: str) -> str:
    """Write ``fig`` as a PNG (DPI dots per inch) to ``path`` atomically (temporary file in the
    same directory, then rename, with the mode of a new file), after :func:`tidy_axes`;
    the figure is drawn once. Returns ``path``."""
    if fig.dpi != DPI:
        fig.set_dpi(DPI)
    tidy_axes(fig)
    atomic_write(path, lambda tmp: _write_png(fig, tmp))
    return path


def _stats_box(ax, lines: list[str], loc: str) -> AnchoredText | None:
    """A framed box of text lines in a corner of ``ax``."""
    if not lines:
        return None
    box = AnchoredText("\n".join(lines), loc=loc, prop={"fontsize": "x-small"}, frameon=True,
                       pad=0.3, borderpad=0.5)
    box.patch.set_alpha(0.8)
    box.patch.set_edgecolor("0.8")
    ax.add_artist(box)
    return box


def error_stats(sets, unit: str) -> list[str]:
    """Lines "training: RMSE = 12.3, MAE = 9.87 meV/atom" of ``sets`` ((name, errors) in the
    unit of the values), in the units of :func:`error_unit`."""
    shown, factor = error_unit(unit)
    out = []
    for name, err in sets:
        m = metrics(err, np.zeros_like(err))
        out.append(f"{name}: RMSE = {_g(factor * m['rmse'])}, MAE = {_g(factor * m['mae'])}"
                   + (f" {shown}" if shown else ""))
    return out


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
    sxx = float(np.einsum("i,i->", dx, dx))  # not np.dot: BLAS threads cost more here
    if sxx == 0.0:
        return None
    slope = float(np.einsum("i,i->", dx, y - ym)) / sxx
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
    RMSE and count in the legend; each set's RMSE and MAE in meV (:func:`error_unit`) in the
    lower right corner. Equal scales on both axes."""
    sets = [(name, _values(pair, f"{name} {quantity}"))
            for name, pair in (("training", training), ("validation", validation))]
    sets = [(name, v) for name, v in sets if v is not None]
    fig = _new_figure()
    ax = fig.add_subplot()
    u = _unit(unit)
    ax.set_xlabel(f"reference {quantity} ({u})" if u else f"reference {quantity}")
    ax.set_ylabel(f"predicted {quantity} ({u})" if u else f"predicted {quantity}")
    _title(ax, f"Parity: {quantity}")
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
    _stats_box(ax, error_stats([(name, p - r) for name, (p, r) in sets], unit), "lower right")
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
    """Histograms of the errors (predicted − reference, given in ``unit``) of each set on
    common bins, as the fraction of values per bin (sets of different sizes compare directly),
    with a line at zero error and each set's count, mean error, standard deviation, RMSE and MAE
    in the legend. Errors of energies and forces are shown in meV (:func:`error_unit`).

    ``bins`` defaults to 2·√n (n: all values), between 10 and 80."""
    shown, factor = error_unit(unit)
    sets = [(name, _errors(e, f"{name} errors of {quantity}"))
            for name, e in (("training", training_errors), ("validation", validation_errors))]
    sets = [(name, e) for name, e in sets if e is not None]
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_xlabel(f"error of {quantity}, predicted − reference ({shown})" if shown
                  else f"error of {quantity}, predicted − reference")
    ax.set_ylabel("fraction of values")
    _title(ax, f"Errors: {quantity}")
    if not sets:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    scaled = [(name, factor * e) for name, e in sets]
    lo = min(float(e.min()) for _, e in scaled)
    hi = max(float(e.max()) for _, e in scaled)
    if hi == lo:
        half = max(abs(lo), 1.0) * 1e-3
        lo, hi = lo - half, hi + half
    if bins is None:
        total = sum(e.size for _, e in sets)
        bins = int(min(80, max(10, round(2 * np.sqrt(total)))))
    edges = np.linspace(lo, hi, bins + 1)
    top = 0.0
    for name, e in scaled:
        counts, _ = np.histogram(e, bins=edges)
        top = max(top, float(counts.max()) / e.size)
        mean = float(e.mean())
        std = float(e.std())
        rmse = float(np.sqrt(np.mean(e * e)))
        mae = float(np.mean(np.abs(e)))
        ax.stairs(counts / e.size, edges, fill=True, alpha=0.45, color=COLOURS[name],
                  label=f"{name}: n = {e.size}, mean = {_g(mean)}, std = {_g(std)}\n"
                        f"RMSE = {_g(rmse)}, MAE = {_g(mae)}" + (f" {shown}" if shown else ""))
        ax.stairs(counts / e.size, edges, color=COLOURS[name], lw=0.8)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_ylim(0, 1.45 * top)  # room for the legend
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.legend(loc="upper right", fontsize="x-small", framealpha=0.8)
    return fig


def error_histogram(path: str, quantity: str, unit: str, training_errors=None,
                    validation_errors=None) -> Figure:
    """:func:`error_histogram_figure` written to ``path`` (PNG); returns the Figure."""
    fig = error_histogram_figure(quantity, unit, training_errors, validation_errors)
    save_figure(fig, path)
    return fig


def group_of(record: dict) -> str:
    """The name a record is coloured by: its group, else its dataset, else NO_GROUP."""
    return str(record.get("group") or record.get("dataset") or NO_GROUP)


def _pair_arrays(record: dict, key: str):
    value = record.get(key)
    if value is None:
        return None
    pred = np.asarray(value[0], dtype=np.float64)
    ref = np.asarray(value[1], dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"record '{record.get('id')}' ({key}): predicted shape {pred.shape} "
                         f"!= reference shape {ref.shape}")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(ref))):
        raise ValueError(f"record '{record.get('id')}' ({key}) contains non-finite values")
    return pred, ref


def energy_points(records: list[dict]) -> dict:
    """Points of the error against the energy above the lowest one:
    ``{(set, group): (E − E_min, error)}`` per structure, in eV/atom. E is the reference energy
    per atom and E_min the lowest of all records (training and validation)."""
    rows = []
    for rec in records:
        pair = _pair_arrays(rec, "energy")
        if pair is None:
            continue
        n = rec.get("natoms")
        if not n or n <= 0:
            raise ValueError(f"record '{rec.get('id')}' (energy): an energy needs natoms > 0")
        pred, ref = (float(np.ravel(a)[0]) / n for a in pair)
        rows.append((rec["set"], group_of(rec), ref, pred - ref))
    if not rows:
        return {}
    e_min = min(r[2] for r in rows)
    out: dict = {}
    for set_name, group, ref, err in rows:
        out.setdefault((set_name, group), ([], []))
        out[(set_name, group)][0].append(ref - e_min)
        out[(set_name, group)][1].append(err)
    return {k: (np.array(x), np.array(e)) for k, (x, e) in out.items()}


def force_points(records: list[dict]) -> dict:
    """Points of the error against the force: ``{(set, group): (|F|, error)}`` with one point
    per force component, |F| the norm of the atom's reference force (eV/Å) and the error that
    of the component (predicted − reference, eV/Å)."""
    out: dict = {}
    for rec in records:
        pair = _pair_arrays(rec, "forces")
        if pair is None:
            continue
        pred, ref = (a.reshape(-1, 3) for a in pair)
        norm = np.repeat(np.linalg.norm(ref, axis=1), 3)
        out.setdefault((rec["set"], group_of(rec)), []).append((norm, (pred - ref).ravel()))
    return {k: (np.concatenate([x for x, _ in v]), np.concatenate([e for _, e in v]))
            for k, v in out.items()}


def _group_colours(groups: list[str]) -> dict[str, str]:
    if len(groups) <= len(GROUP_COLOURS) + 1:
        return dict(zip(groups, GROUP_COLOURS + ("tab:gray",)))
    colours = dict(zip(groups, GROUP_COLOURS))
    colours.update({g: "tab:gray" for g in groups[len(GROUP_COLOURS):]})
    return colours


def error_scatter_figure(title: str, xlabel: str, unit: str, points: dict) -> Figure:
    """Errors (y, in meV for energies and forces: :func:`error_unit`) against ``xlabel`` (x):
    ``points`` ``{(set, group): (x, errors in unit)}``. One colour per group (beyond
    ``len(GROUP_COLOURS)`` groups the rest are grey, "other groups"), one marker per set
    (training ●, validation ▲), the legend below the axes, a line at zero error and each
    set's RMSE and MAE in the upper right corner."""
    shown, factor = error_unit(unit)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"error, predicted − reference ({shown})" if shown
                  else "error, predicted − reference")
    _title(ax, title)
    points = {k: v for k, v in points.items() if v[0].size}
    if not points:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    groups = list(dict.fromkeys(g for _, g in points))
    colours = _group_colours(groups)
    sets = [s for s in SET_MARKERS if any(k[0] == s for k in points)]
    sets += list(dict.fromkeys(k[0] for k in points if k[0] not in sets))
    total = sum(v[0].size for v in points.values())
    for (set_name, group), (x, err) in points.items():
        idx = _drawn(err, np.zeros_like(err))
        ax.plot(x[idx], factor * err[idx], ls="", marker=SET_MARKERS.get(set_name, "s"),
                ms=_marker_size(total) + (1.0 if set_name == "validation" else 0.0), mew=0,
                alpha=0.7, color=colours[group], rasterized=total > 5_000, zorder=2,
                label="_nolegend_")
    ax.axhline(0.0, color="black", lw=0.8, zorder=1)
    ax.grid(True, lw=0.3, alpha=0.5)
    by_set = [(s, np.concatenate([e for (n, _), (_, e) in points.items() if n == s]))
              for s in sets]
    box = _stats_box(ax, error_stats(by_set, unit), "upper right")
    if box is not None:  # room above the points for the box
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi + 0.12 * len(by_set) * (hi - lo))
    handles = []
    named = groups if len(groups) <= len(GROUP_COLOURS) + 1 else (
        groups[:len(GROUP_COLOURS)] + [OTHER_GROUPS])
    for g in named:
        colour = "tab:gray" if g == OTHER_GROUPS else colours[g]
        handles.append(Line2D([], [], ls="", marker="s", ms=6, color=colour, label=g))
    for s in sets:
        handles.append(Line2D([], [], ls="", marker=SET_MARKERS.get(s, "s"), ms=6,
                              color="0.3", mfc="none", label=s))
    renderer = fig.canvas.get_renderer()
    for ncols in range(min(5, len(handles)), 0, -1):  # fewer columns if long names do not fit
        legend = fig.legend(handles=handles, loc="lower center", fontsize="x-small",
                            ncols=ncols, frameon=False)
        if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            break
        legend.remove()
    return fig


def error_vs_energy_figure(records: list[dict]) -> Figure:
    """Error of the energy per atom against the reference energy per atom above the lowest
    one (E − E_min, see :func:`energy_points`), coloured by group."""
    return error_scatter_figure("Energy error against E − E_min",
                                "E − E_min, reference energy per atom above the lowest "
                                "(eV/atom)", "eV/atom", energy_points(records))


def error_vs_force_figure(records: list[dict]) -> Figure:
    """Error of each force component against the norm of the atom's reference force,
    coloured by group (see :func:`force_points`)."""
    return error_scatter_figure("Force error against |F|", "|F|, reference force on the atom "
                                "(eV/Å)", "eV/A", force_points(records))


def error_vs_energy(path: str, records: list[dict]) -> Figure:
    """:func:`error_vs_energy_figure` written to ``path`` (PNG); returns the Figure."""
    fig = error_vs_energy_figure(records)
    save_figure(fig, path)
    return fig


def error_vs_force(path: str, records: list[dict]) -> Figure:
    """:func:`error_vs_force_figure` written to ``path`` (PNG); returns the Figure."""
    fig = error_vs_force_figure(records)
    save_figure(fig, path)
    return fig


def history_rows(history) -> list[tuple[int, float | None, float | None]]:
    """(iteration, training objective, validation objective or None) of each history entry
    (entries of 2 or 3 items; a missing or non-finite value is None)."""
    rows = []
    for entry in history:
        entry = list(entry)
        if len(entry) not in (2, 3):
            raise ValueError(f"history entry {entry!r}: expected (iteration, training"
                             f"[, validation])")
        values = [None if v is None or not np.isfinite(float(v)) else float(v)
                  for v in entry[1:]] + [None]
        rows.append((int(entry[0]), values[0], values[1]))
    return rows


#: A history with fewer distinct iterations than this is shown as a table, not a curve.
MIN_CURVE_ITERATIONS = 4

#: Minimizers whose history is never a curve (a direct solve, not an iteration).
NO_CURVE_METHODS = ("linear-solve",)


def has_learning_curve(history, method: str | None = None) -> bool:
    """Whether ``history`` is drawn as a learning curve: at least MIN_CURVE_ITERATIONS
    distinct iterations and not a direct solve (``method`` in NO_CURVE_METHODS, such as a
    ``<linear-solve>``, whose two "iterations" are its start and its solution)."""
    if method in NO_CURVE_METHODS or not history:
        return False
    return len({r[0] for r in history_rows(history)}) >= MIN_CURVE_ITERATIONS


def _consecutive(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The segments between measurements one iteration apart, separated by NaN (a line that
    never crosses an unmeasured iteration), or None when there are none."""
    xs, ys = [], []
    for k in range(len(x) - 1):
        if x[k + 1] - x[k] == 1:
            xs += [x[k], x[k + 1], np.nan]
            ys += [y[k], y[k + 1], np.nan]
    return (np.array(xs), np.array(ys)) if xs else None


def learning_curve_figure(history) -> Figure:
    """Objective against iteration, for the training set and, where it was measured, the
    validation set: a marker at each measured iteration only (validation is measured every
    output-interval iterations); a thin line joins only measurements one iteration apart.
    ``history``: (iteration, training objective, validation objective or None) entries;
    (iteration, training objective) pairs are accepted too. The y axis is logarithmic when
    every value shown is positive; iterations are whole numbers."""
    rows = history_rows(history)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    _title(ax, "Learning curve")
    shown = []
    for k, name, marker in ((1, "training", "o"), (2, "validation", "s")):
        pts = [(r[0], r[k]) for r in rows if r[k] is not None]
        if not pts:
            continue
        x, y = np.array(pts, dtype=np.float64).T
        shown.append(y)
        line = _consecutive(x, y)
        if line is not None:
            ax.plot(*line, color=COLOURS[name], lw=0.8, alpha=0.6, label="_nolegend_",
                    zorder=2)
        ms = 4.0 if len(x) <= 100 else 2.0
        ax.plot(x, y, ls="", marker=marker, ms=ms, mew=0, color=COLOURS[name], zorder=3,
                label=f"{name}: {len(x)} measured, final {_g(float(y[-1]))}")
    if not shown:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    if all(bool(np.all(y > 0)) for y in shown):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PlainLogFormatter())
        ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
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
ERRORS_VS_ENERGY_FILE = "errors_vs_energy.png"
ERRORS_VS_FORCE_FILE = "errors_vs_force.png"
LEARNING_CURVE_FILE = "learning_curve.png"


def write_dataset_plots(directory: str, records: list[dict], history=None,
                        method: str | None = None) -> list[str]:
    """Write the plots of a dataset under ``directory``: for each quantity present in the
    records (see :func:`rexfit.report.metrics.dataset_metrics` for ``records``) a parity plot
    ``parity_<quantity>.png`` and an error histogram ``errors_<quantity>.png``, training and
    validation sets together; the energy error against E − E_min ``errors_vs_energy.png``
    and the force error against |F| ``errors_vs_force.png`` (coloured by group) when there
    are energies (forces); and ``learning_curve.png`` when :func:`has_learning_curve`
    (``method``: the minimizer's name, e.g. "linear-solve"). Returns the paths written."""
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
    if any(rec.get("energy") is not None for rec in records):
        path = os.path.join(directory, ERRORS_VS_ENERGY_FILE)
        error_vs_energy(path, records)
        written.append(path)
    if any(rec.get("forces") is not None for rec in records):
        path = os.path.join(directory, ERRORS_VS_FORCE_FILE)
        error_vs_force(path, records)
        written.append(path)
    if history is not None and has_learning_curve(history, method):
        path = os.path.join(directory, LEARNING_CURVE_FILE)
        learning_curve(path, history)
        written.append(path)
    return written
