"""report.md: a Markdown report of a fit to a dataset in its output folder — the fit, the
objective, the error metrics tables in meV and every plot, linked relatively (plots/*.png),
so the folder can be moved, viewed on GitHub or converted to HTML as it is.

Contents and file names: docs/metrics-and-plots.md.
"""

from __future__ import annotations

import os

from rexfit.files import write_text
from rexfit.report.metrics import QUANTITIES, dataset_metrics
from rexfit.report.plots import (ERRORS_FILE, ERRORS_VS_ENERGY_FILE, ERRORS_VS_FORCE_FILE,
                                 LABELS, LEARNING_CURVE_FILE, MIN_CURVE_ITERATIONS,
                                 NO_CURVE_METHODS, PARITY_FILE, error_unit,
                                 has_learning_curve, history_rows, write_dataset_plots)

#: Name of the report in the output folder, and of the folder of the plots under it.
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"

#: Captions of the images, by file name ({q}: a quantity of QUANTITIES).
CAPTIONS = {
    PARITY_FILE: "Parity plot of the {label}: predicted against reference values",
    ERRORS_FILE: "Error histogram of the {label}",
    ERRORS_VS_ENERGY_FILE: "Energy error against E − E_min (reference energy per atom above "
                           "the lowest), coloured by group",
    ERRORS_VS_FORCE_FILE: "Force component error against |F| of the atom, coloured by group",
    LEARNING_CURVE_FILE: "Learning curve: objective at each measured iteration",
}


def _g(x, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list], left: int = 1) -> list[str]:
    """A Markdown table; the first ``left`` columns aligned left, the others right."""
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if k < left else "---:" for k in range(len(header))) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def caption(name: str) -> str:
    """The caption of an image file written by write_dataset_plots (its name otherwise)."""
    for pattern, text in CAPTIONS.items():
        for q, label in LABELS.items():
            if name == pattern.format(q=q):
                return text.format(label=label)
    return name


def fit_lines(results: dict) -> list[str]:
    """The fit (with its verdict in plain words and its warnings, such as overfitting) and
    the objective as Markdown tables."""
    fit = results.get("fit")
    out = []
    if fit is not None:
        verdict = "yes" if fit.get("converged") else "no"
        if fit.get("interrupted"):
            verdict = "no (interrupted)"
        out += ["## Fit", ""]
        out += _table(["", "value"], [
            ["minimizer", f"`{fit.get('method')}`"],
            ["iterations", fit.get("iterations")],
            ["evaluations", fit.get("evaluations")],
            ["converged", verdict],
            ["how it ended", fit.get("verdict") or fit.get("message")],
            ["seconds", _g(fit.get("seconds"), 3)],
        ], left=2)
        out.append("")
        out += [f"**Warning:** {w}" for w in fit.get("warnings") or []]
        if fit.get("warnings"):
            out.append("")
    obj = results.get("objective") or {}
    out += ["## Objective", ""]
    out += _table(["set", "objective"], [
        ["initial (training set, given parameters)", _g(obj.get("initial"), 8)],
        ["training", _g(obj.get("training"), 8)],
        ["validation", _g(obj.get("validation"), 8)],
    ])
    out.append("")
    return out


def history_lines(history) -> list[str]:
    """The fit history as a table: iteration, training and validation objective."""
    rows = [[it, _g(tr, 8), _g(va, 8)] for it, tr, va in history_rows(history)]
    return _table(["iteration", "training objective", "validation objective"], rows)


def metrics_lines(metrics: dict) -> list[str]:
    """A Markdown table per set of dataset metrics (rexfit.report.metrics.dataset_metrics),
    RMSE, MAE and maximum error in meV/atom, meV/Å (stress in GPa)."""
    out = []
    for set_name, parts in metrics.items():
        rows = []
        blocks = [("all", parts.get("all", {}))] + list(parts.get("groups", {}).items())
        for group, qs in blocks:
            for q in [q for q in QUANTITIES if q in qs]:
                m = qs[q]
                unit, factor = error_unit(QUANTITIES[q][1])

                def milli(v):
                    return None if v is None else factor * v

                rows.append([group, q, m["count"], _g(milli(m["rmse"])), _g(milli(m["mae"])),
                             _g(milli(m["max"])), "–" if m["r2"] is None else f"{m['r2']:.6f}",
                             unit])
        if rows:
            out += [f"### {set_name.capitalize()} set", ""]
            out += _table(["group", "quantity", "count", "RMSE", "MAE", "max", "R²", "unit"],
                          rows, left=2)
            out.append("")
    return out


def report_text(results: dict, images: list[str], directory: str,
                metrics: dict | None = None) -> str:
    """The text of report.md in ``directory``: fit, objective, history table (when there is no
    learning curve), metrics tables (``metrics``, else ``results["metrics"]``) and every image
    of ``images`` linked relative to ``directory``, its file name in the alt text."""
    out = [f"# rexfit report: {results.get('job') or 'job'}", "",
           f"Written by rexfit {results.get('rexfit_version', '')}. Numbers in full: "
           "`results.json`; everything printed: `log.txt`.", ""]
    out += fit_lines(results)
    fit = results.get("fit") or {}
    history = fit.get("history") or []
    names = [os.path.basename(p) for p in images]
    if history and LEARNING_CURVE_FILE not in names:
        out += ["## Objective history", ""]
        if fit.get("method") in NO_CURVE_METHODS:
            out += [f"No learning curve: `<{fit['method']}>` is a direct solve, not a sequence "
                    "of iterations. The objective before and after it:", ""]
        elif not has_learning_curve(history, fit.get("method")):
            out += [f"No learning curve: fewer than {MIN_CURVE_ITERATIONS} iterations. The "
                    "objective at each measured iteration:", ""]
        out += history_lines(history) + [""]
    metrics = metrics if metrics is not None else results.get("metrics")
    if metrics:
        out += ["## Error metrics", "",
                "RMSE, MAE and maximum absolute error over energies per atom, force "
                "components and stress components (definitions: rexfit's "
                "docs/metrics-and-plots.md).", ""]
        out += metrics_lines(metrics)
    if images:
        out += ["## Plots", ""]
        for path in images:
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            name = os.path.basename(path)
            out += [f"### {caption(name)}", "", f"![{name}]({rel})", ""]
    return "\n".join(out).rstrip() + "\n"


def write_report(directory: str, results: dict, images: list[str],
                 metrics: dict | None = None) -> str:
    """Write report.md (:func:`report_text`) into ``directory`` atomically; returns its path."""
    path = os.path.join(directory, REPORT_FILE)
    write_text(path, report_text(results, images, directory, metrics))
    return path


def write_plots_and_report(directory: str, records: list[dict], results: dict) -> list[str]:
    """The plots of a dataset fit under ``directory``/plots (:func:`write_dataset_plots`,
    with the fit history and minimizer of ``results``) and report.md in ``directory``;
    returns the paths written, report.md last."""
    fit = results.get("fit") or {}
    images = write_dataset_plots(os.path.join(directory, PLOTS_DIR), records,
                                 fit.get("history") or [], fit.get("method"))
    metrics = results.get("metrics") or (dataset_metrics(records) if records else None)
    return images + [write_report(directory, results, images, metrics)]
