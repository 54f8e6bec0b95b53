"""The training phase: run the job's minimizer on the objective, keep the best point, the
history and the counts, print progress, and stop cleanly on Ctrl-C.

Progress (SPEC §1): on a terminal one line is rewritten in place (iteration of the maximum,
objective, gradient norm, elapsed time, time left); otherwise, and always in log.txt,
atomicrex-style lines ``iter= N residual= R grad= G`` every ``output-interval`` iterations.
At those iterations (and at the end) the fit is also measured (:meth:`_Tracker.measure`):
energy, force and stress RMSE of the training and validation datasets, or the worst-fitting
properties of a fit to structure properties, printed as a short table under the line.  The
fit ends with a verdict in plain words (:func:`methods.plain_stop`) and warnings when the
validation error says the fit is overfitting (:func:`overfitting_warnings`).
"""

from __future__ import annotations

import math
import shutil
import sys
from collections import OrderedDict
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from rexfit import timing
from rexfit.errors import CalculationFailed, InputError, InputErrors, NotImplementedInRexfit
from rexfit.fit import methods
from rexfit.job.spec import MinimizerSpec


@dataclass
class FitResult:
    method: str
    u: np.ndarray
    value: float
    iterations: int
    evaluations: int
    converged: bool
    message: str
    seconds: float
    grad_norm: float | None
    history: list = field(default_factory=list)
    interrupted: bool = False
    #: the stop message in plain words, "converged: …" or "stopped: …" (``message`` is raw)
    verdict: str = ""
    #: what a person should know about the result (overfitting), one sentence each
    warnings: list = field(default_factory=list)
    #: measurements at output iterations (:meth:`_Tracker.measure`)
    progress: list = field(default_factory=list)
    #: one record per step of a basis ladder (empty without one)
    ladder: list = field(default_factory=list)

    def to_json(self) -> dict:
        out = {"method": self.method, "iterations": self.iterations,
               "evaluations": self.evaluations, "converged": self.converged,
               "message": self.message, "verdict": self.verdict or self.message,
               "warnings": list(self.warnings), "seconds": self.seconds,
               "grad_norm": self.grad_norm, "interrupted": self.interrupted,
               "history": self.history, "progress": self.progress}
        if self.ladder:
            out["ladder"] = list(self.ladder)
        return out


class _Stop(Exception):
    """Raised inside the objective when a stopping rule (maxtime, stopval) fires."""


class _Tracker:
    """Wraps the objective for a minimizer: counts, best point, history, progress output."""

    def __init__(self, objective, log, interval: int, tty: bool, maxtime=None, stopval=None,
                 budget: int | None = None):
        self.objective = objective
        #: the iteration count the fit may reach (max-iter, epochs), None if unknown
        self.budget = budget
        #: measurements at the output iterations (:meth:`measure`), in order
        self.progress: list[dict] = []
        #: recent evaluations by point (their property values name the worst-fitting ones)
        self._evs: OrderedDict[bytes, object] = OrderedDict()
        self._clock0: tuple[int, float] | None = None  # (iteration, time) of the first report
        self._live = ""  # the measurement shown at the end of the live line
        self.maxtime = maxtime
        self.stopval = stopval
        self.stop_reason: str | None = None
        self.log = log
        self.interval = max(int(interval), 1)
        self.tty = tty
        self.start = time.perf_counter()
        self.evaluations = 0
        self.iteration = 0
        self.best_u: np.ndarray | None = None
        self.best = math.inf
        self.last_grad: np.ndarray | None = None
        self.history: list[list] = []
        self.on_checkpoint = None
        self.checkpoint_every = 0
        self.minimizer_state: dict = {}
        self.chosen_u: np.ndarray | None = None
        self._logged: tuple[int, str] | None = None  # (iteration, line) last written to the log
        self._evaluations_before = 0  # evaluations counted before this run (a restart)
        #: what was not finite at the last point replaced by a penalty ("objective", …)
        self.nonfinite = "objective"
        self.has_validation = bool(getattr(objective, "has_validation", lambda: False)())
        # recent evaluations by point: iteration callbacks (and simplex methods) revisit them
        self._cache: OrderedDict[bytes, tuple[float, np.ndarray | None]] = OrderedDict()

    def _eval(self, u, grad: bool):
        u = np.asarray(u, float)
        key = u.tobytes()
        hit = self._cache.get(key)
        if hit is not None and (hit[1] is not None or not grad):
            return hit
        self._check_time()
        ev = self.objective.evaluate(u, grad=grad)
        self._evs[key] = ev
        while len(self._evs) > 64:
            self._evs.popitem(last=False)
        self.evaluations += 1
        f = ev.value
        g = ev.grad
        if not math.isfinite(f) or (g is not None and not np.all(np.isfinite(g))):
            # A trial point where a structure blew up: tell the minimizer it is very bad.
            self.nonfinite = "objective" if not math.isfinite(f) else "objective's gradient"
            f = 1e300 if self.best == math.inf else max(1e3 * abs(self.best), 1e30)
            g = None if g is None else (self.last_grad if self.last_grad is not None
                                        else np.zeros_like(u))
        if g is not None:
            self.last_grad = g
        self._record(u, f, g)
        return f, g

    def _check_time(self) -> None:
        if self.maxtime is not None and time.perf_counter() - self.start > self.maxtime:
            self.stop_reason = f"maxtime {self.maxtime:g} s reached"
            raise _Stop

    def _record(self, u, f, g) -> None:
        """Cache (f, g) at ``u``, keep the best point, apply stopval."""
        key = u.tobytes()
        self._cache[key] = (f, g)
        self._cache.move_to_end(key)
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
        if f < self.best:
            self.best, self.best_u = f, u.copy()
        if self.stopval is not None and f <= self.stopval:
            self.stop_reason = f"objective reached stopval {self.stopval:g}"
            raise _Stop

    def residuals(self, u):
        """(r, J) of the training objective at ``u`` (least squares), counted and tracked
        like an evaluation (f = Σ r²)."""
        u = np.asarray(u, float)
        last = getattr(self, "_last_residuals", None)
        if last is not None and last[0] == u.tobytes():  # the same point again
            return last[1], last[2]
        self._check_time()
        r, jac = self.objective.residuals(u)
        self.evaluations += 1
        self._last_residuals = (u.tobytes(), r, jac)
        with np.errstate(all="ignore"):
            f = float(r @ r)
            g = 2.0 * jac.T @ r
        if not (math.isfinite(f) and np.all(np.isfinite(jac))):
            first = self.evaluations == 1 + self._evaluations_before
            where = ("a trial point of the least-squares fit" if not first else
                     "the checkpoint's parameters" if self._evaluations_before else
                     "the given parameters")
            raise failure(f"the residuals are not finite at {where}", self.objective, u,
                          residuals=True)
        self._record(u, f, g)
        return r, jac

    def fun(self, u) -> float:
        return self._eval(u, False)[0]

    def fun_grad(self, u):
        f, g = self._eval(u, True)
        return f, np.asarray(g, float)

    def callback(self, u) -> None:
        self.iteration += 1
        f, g = self._cache.get(np.asarray(u, float).tobytes(), (None, None))
        if f is None:
            f, g = self._eval(u, False)
        self.history.append(self.entry(self.iteration, f, u))
        gnorm = float(np.linalg.norm(g)) if g is not None else None
        self.report(self.iteration, f, gnorm, u=u)
        if self.on_checkpoint is not None and self.iteration % self.checkpoint_every == 0:
            self.on_checkpoint(self.state(u))

    def entry(self, k, f, u, force=False) -> list:
        """A history entry [iteration, training objective] — with the validation objective
        appended every output-interval iterations when the job has a validation set."""
        if self.has_validation and (force or k % self.interval == 0):
            try:
                v = self.objective.evaluate(np.asarray(u, float), grad=False,
                                            sets=("validation",)).value
            except (ValueError, FloatingPointError):
                v = None
            if v is not None and math.isfinite(v):
                return [k, f, float(v)]
        return [k, f]

    def state(self, u) -> dict:
        """Everything a restart needs (JSON-ready): current point, best point, counts,
        history, progress measurements and the minimizer's own state."""
        return {"format": "rexfit-checkpoint-1", "iteration": self.iteration,
                "evaluations": self.evaluations, "u": np.asarray(u, float).tolist(),
                "best": self.best, "best_u": None if self.best_u is None
                else np.asarray(self.best_u).tolist(),
                "history": self.history, "progress": self.progress,
                "minimizer": dict(self.minimizer_state)}

    def report(self, k, f, gnorm, force=False, final=False, u=None) -> None:
        """Show iteration ``k``: the live line on a terminal; an ``iter=`` line in the log every
        output-interval iterations (or when ``force``), each followed by the measurement of
        the point ``u`` (:meth:`measure`: RMSE table or worst-fitting properties).  The
        ``final`` report (the returned point) repeats no line already logged; when it is
        another point than the last logged iterate of the same number (the best point
        evaluated), its line says so."""
        gtxt = "n/a" if gnorm is None else f"{gnorm:.6g}"
        line = f"iter= {k} residual= {f:.10g} grad= {gtxt}"
        if final and self._logged is not None and self._logged[0] == k:
            if self._logged[1] == line:
                force = False  # already in the log
            else:
                line = f"final point (best evaluated): residual= {f:.10g} grad= {gtxt}"
        if hasattr(self.log, "touch"):  # a run's Log: the heartbeat stays quiet from now on
            if not self.log.fit_started and self.log.before_print is not None:
                self.log.before_print()
            self.log.fit_started = True
            self.log.touch()
        now = time.perf_counter()
        if self._clock0 is None:
            self._clock0 = (k, now)
        logged = force or (k % self.interval == 0 and not final)
        block: list[str] = []
        if logged:
            self._logged = (k, line)
            if u is not None:  # a point of the fit (not a bare line): measure it
                block = self.progress_lines(k, now, self.measure(k, u))
        if self.tty:
            table = [text for text in block if text.startswith(RMSE_ROW)]
            if table:  # the RMSE table (under its iteration) scrolls up above the live line
                sys.stdout.write("\r\x1b[K" + "\n".join(block[:1] + table) + "\n")
            elapsed = now - self.start
            text = (f"  iteration {k:5d}{self._of(k)}  objective {f:.8g}  |grad| {gtxt}  "
                    f"{elapsed:7.1f} s{self._left(k, now, short=True)}{self._live}")
            width = shutil.get_terminal_size((160, 24)).columns - 1
            sys.stdout.write("\r" + text[:max(width, 40)] + " \x1b[K")
            sys.stdout.flush()
        timing.progress(f"iteration {k}{self._of(k)} done, objective {f:.6g}")
        if logged:
            if self.tty:
                for text in [line] + block:
                    self.log.file_only(text)
            else:
                for text in [line] + block:
                    self.log(text)

    # ---------------------------------------------------------------- progress measurements

    def _of(self, k) -> str:
        """" of 3000" (the iteration budget) while iteration ``k`` is within it, else ""
        (no budget, or a polishing run after differential evolution's generations)."""
        return f" of {self.budget}" if self.budget and k <= self.budget else ""

    def _left(self, k, now, short=False) -> str:
        """", ≤ 12 s left": the iterations left of the budget at the mean pace since the first
        report (an upper bound: the fit may converge sooner); "" when unknown."""
        if not self.budget or self._clock0 is None or k <= self._clock0[0] or k >= self.budget:
            return ""
        pace = (now - self._clock0[1]) / (k - self._clock0[0])
        left = _duration(pace * (self.budget - k))
        return f"  ≤{left} left" if short else f", at most {left} left ({_duration(pace)} per " \
            "iteration)"

    def measure(self, k: int, u) -> dict | None:
        """Measure the fit at iteration ``k``, point ``u`` (output iterations only: it costs a
        forward pass over the datasets), record it in :attr:`progress` and return it:
        ``{"iteration", "seconds", "rmse": {set: {quantity: RMSE}}}`` for jobs with datasets
        (energy_per_atom eV/atom, forces eV/Å, stress GPa; the engine's predictions program,
        compiled for the validation objective and the output phase anyway), and ``"worst"``:
        [[structure.property, weighted residual], …] (largest first, at most
        :data:`WORST_SHOWN`) for jobs with fitted structure properties."""
        rec: dict = {"iteration": int(k), "seconds": round(time.perf_counter() - self.start, 3)}
        timing.progress(f"measuring the fit at iteration {k}")
        try:
            rmse = self._rmse(u)
            worst = self._worst(u)
        except (CalculationFailed, ValueError, FloatingPointError, KeyError):
            return None  # progress must not stop a fit: failures are reported elsewhere
        finally:
            timing.progress("")
        if rmse:
            rec["rmse"] = rmse
        if worst:
            rec["worst"] = worst
        if len(rec) == 2:
            return None
        if self.progress and self.progress[-1]["iteration"] == rec["iteration"]:
            self.progress[-1] = rec  # the final point of an iteration already measured
        else:
            self.progress.append(rec)
        return rec

    def _rmse(self, u) -> dict:
        datasets = getattr(self.objective, "datasets", None) or {}
        if not datasets:
            return {}
        tree = self.objective.params(u)
        sums: dict[str, dict[str, list]] = {}
        for (_, set_name), term in datasets.items():
            part = sums.setdefault(set_name, {})
            for q, (sq, n) in term.squared_errors(tree).items():
                acc = part.setdefault(q, [0.0, 0])
                acc[0] += sq
                acc[1] += n
        out = {}
        for set_name in sorted(sums, key=lambda n: (n != "training", n)):
            out[set_name] = {q: (math.sqrt(sq / n) if n and math.isfinite(sq) else None)
                             for q, (sq, n) in sums[set_name].items()}
        return out

    def _worst(self, u) -> list:
        terms = getattr(self.objective, "terms", None)
        if not terms:
            return []
        ev = self._evs.get(np.asarray(u, float).tobytes())
        ids = [sid for sid in self.objective.ids(("training",)) if terms[sid].fitted]
        if not ids:
            return []
        if ev is None or any(sid not in ev.structures for sid in ids):
            ev = self.objective.evaluate(np.asarray(u, float), grad=False, datasets=False)
        rows = []
        for sid in ids:
            props = ev.structures[sid].properties
            for fp in terms[sid].fitted:
                if fp.name in props:
                    r = _residual(fp.style, np.asarray(props[fp.name], float), fp.target,
                                  fp.tolerance)
                    w = float(fp.weight * r)
                    rows.append([f"{sid}.{fp.name}", w if math.isfinite(w) else None])
        rows.sort(key=lambda row: -math.inf if row[1] is None else -row[1])  # non-finite first
        return rows[:WORST_SHOWN]

    def progress_lines(self, k, now, rec) -> list[str]:
        """The lines under an ``iter=`` line: iteration of the budget, time, time left; the RMSE
        table (meV/atom, meV/Å, GPa) or the worst-fitting properties.  Sets
        :attr:`_live`, the short form for the live line (training|validation RMSE)."""
        lines = [f"  iteration {k}{self._of(k)}, {_duration(now - self.start)}"
                 f"{self._left(k, now)}"]
        self._live = ""
        if rec is None:
            return lines
        rmse = rec.get("rmse")
        if rmse:
            lines += rmse_table(rmse)
            f = [rmse[s].get("forces") for s in ("training", "validation") if s in rmse]
            e = [rmse[s].get("energy_per_atom") for s in ("training", "validation") if s in rmse]
            if any(v is not None for v in f):
                self._live = "  forces " + "|".join(_num(v, 1e3) for v in f) + " meV/Å"
            elif any(v is not None for v in e):
                self._live = "  energy " + "|".join(_num(v, 1e3) for v in e) + " meV/atom"
        worst = rec.get("worst")
        if worst:
            lines.append("  worst-fitting (weighted residual): " + ", ".join(
                f"{name} {_num(w)}" for name, w in worst))
            if not rmse:
                self._live = f"  worst {worst[0][0]} {_num(worst[0][1])}"
        return lines


#: Worst-fitting properties shown at an output iteration.
WORST_SHOWN = 3

#: Quantities of the RMSE table: key → (column heading, factor from eV-based units).
RMSE_COLUMNS = {"energy_per_atom": ("energy meV/atom", 1e3), "forces": ("forces meV/Å", 1e3),
                "stress": ("stress GPa", 1.0)}


#: How the rows of the RMSE table start (a terminal shows them above the live line).
RMSE_ROW = "  | "


def _num(value, factor=1.0) -> str:
    """``value × factor`` to 4 digits; "-" for None (no value, or not finite)."""
    return "-" if value is None else f"{value * factor:.4g}"


def rmse_table(rmse: dict) -> list[str]:
    """``rmse`` ({set: {quantity: RMSE in eV/atom, eV/Å, GPa}}) as a small table in meV/atom,
    meV/Å and GPa, a row per set."""
    present = [q for q in RMSE_COLUMNS if any(q in row for row in rmse.values())]
    rows = [["RMSE"] + [RMSE_COLUMNS[q][0] for q in present]]
    for set_name, row in rmse.items():
        rows.append([set_name] + [_num(row.get(q), RMSE_COLUMNS[q][1]) for q in present])
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return [RMSE_ROW + "  ".join(c.rjust(w) if i else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def _duration(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 2 h 03 min."""
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s" if seconds < 10 \
            else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _residual(style: str, value: np.ndarray, target, tol) -> float:
    """The unweighted residual of :func:`rexfit.objective.terms.residual`, on the host."""
    t = np.asarray(target, float)
    with np.errstate(all="ignore"):
        if style == "squared":
            r = ((value - t) / tol) ** 2
        elif style == "squared-relative":
            r = ((value - t) / t) ** 2
        elif style == "absolute-diff":
            r = np.abs(value - t) / tol
        else:
            return math.nan
        return float(np.sum(r) / max(np.size(r), 1))


# ------------------------------------------------------------------------- overfitting

#: At the end of a fit, a validation RMSE more than this many times the training RMSE (of
#: the same quantity) is reported as a warning.
OVERFIT_FACTOR = 3.0
#: A validation error (RMSE, or the validation objective of a fit without datasets) more
#: than this fraction above its lowest recorded value while the training error fell since
#: that iteration is reported as a warning.
OVERFIT_RISE = 0.10
#: RMSE below these (eV/atom, eV/Å, GPa) are "exact": no ratio warning between such values.
RMSE_FLOOR = {"energy_per_atom": 1e-6, "forces": 1e-5, "stress": 1e-5}
_LABELS = {"energy_per_atom": ("energy", 1e3, "meV/atom"), "forces": ("force", 1e3, "meV/Å"),
           "stress": ("stress", 1.0, "GPa")}


def overfitting_warnings(progress: list, history: list, fitted=None) -> list[str]:
    """Sentences saying the fit overfits, one per quantity of the dataset RMSE recorded at
    the output iterations (``progress``; only the quantities in ``fitted``, all if None):
    (a) the validation RMSE grew more than :data:`OVERFIT_RISE` above its lowest recorded
    value while the training RMSE fell, and/or (b) at the end it is more than
    :data:`OVERFIT_FACTOR` times the training RMSE.  Without dataset RMSE, (a) for the
    validation objective recorded in ``history`` ([iteration, training, validation])."""
    out = []
    measured = False
    for q, (label, factor, unit) in _LABELS.items():
        if fitted is not None and q not in fitted:
            continue
        series = []
        for rec in progress:
            rmse = rec.get("rmse") or {}
            t = (rmse.get("training") or {}).get(q)
            v = (rmse.get("validation") or {}).get(q)
            if t is not None and v is not None:
                series.append((rec["iteration"], t, v))
        if not series:
            continue
        measured = True
        parts = []
        rise = _rise(series)
        if rise:
            (k0, t0, v0), (k1, t1, v1) = rise
            parts.append(f"rose from {v0 * factor:.4g} {unit} (iteration {k0}) to "
                         f"{v1 * factor:.4g} {unit} (iteration {k1}) while the training RMSE "
                         f"fell from {t0 * factor:.4g} to {t1 * factor:.4g} {unit}")
        k, t, v = series[-1]
        if v > RMSE_FLOOR[q] and v > OVERFIT_FACTOR * t:
            ratio = f"{v / t:.1f}×" if t > 0 else "far more than"
            parts.append(f"{'ends' if parts else 'ends at'} "
                         f"{'' if parts else f'{v * factor:.4g} {unit}, '}{ratio} the training "
                         f"RMSE ({t * factor:.4g} {unit}; warned above {OVERFIT_FACTOR:g}×)")
        if parts:
            out.append(f"overfitting: the validation {label} RMSE " + ", and ".join(parts))
    if not measured:
        series = [(int(h[0]), float(h[1]), float(h[2])) for h in history
                  if len(h) > 2 and h[2] is not None and math.isfinite(h[1])
                  and math.isfinite(h[2])]
        rise = _rise(series)
        if rise:
            (k0, t0, v0), (k1, t1, v1) = rise
            out.append(f"overfitting: the validation objective rose from {v0:.6g} (iteration "
                       f"{k0}) to {v1:.6g} (iteration {k1}) while the training objective fell "
                       f"from {t0:.6g} to {t1:.6g}")
    return out


def fitted_quantities(objective) -> set | None:
    """The RMSE quantities fitted in some training dataset of ``objective`` (None: no
    datasets)."""
    datasets = getattr(objective, "datasets", None)
    if not datasets:
        return None
    names = {"atomic-energy": "energy_per_atom", "atomic-forces": "forces", "stress": "stress"}
    return {names[w] for (_, set_name), term in datasets.items() if set_name == "training"
            for w in term.weights if w in names}


def _rise(series: list) -> tuple | None:
    """((k, train, val) at the lowest validation value, the last one) when the validation
    value ended more than :data:`OVERFIT_RISE` above that minimum and the training value is
    lower than there; else None (fewer than 3 points: None)."""
    if len(series) < 3:
        return None
    best = min(range(len(series)), key=lambda i: series[i][2])
    last = series[-1]
    low = series[best]
    if best < len(series) - 1 and last[2] > (1.0 + OVERFIT_RISE) * low[2] and last[1] < low[1]:
        return low, last
    return None


def failure(message: str, objective, u, *, residuals: bool = False) -> CalculationFailed:
    """``message`` completed with what is not finite at fit vector ``u`` (each structure and
    dataset entry evaluated on its own: :meth:`Objective.explain`) and the parameter values,
    as the :class:`CalculationFailed` to raise."""
    explain = getattr(objective, "explain", None)
    if explain is None:
        return CalculationFailed(message)
    try:
        lines = explain(u, residuals=residuals)
    except Exception as exc:  # noqa: BLE001 — the report must not fail itself
        lines = [f"(its parts could not be evaluated one by one: {type(exc).__name__}: {exc})"]
    return CalculationFailed("\n  ".join([f"{message}:"] + list(lines)))


def run_fit(objective, fitting, log, *, max_iter: int | None = None,
            tty: bool | None = None, seed: int = 0, checkpoint=None,
            restart: dict | None = None) -> FitResult:
    """Minimise ``objective`` (an Objective) with the job's ``fitting`` spec.

    ``checkpoint(state)`` is called every ``fitting.checkpoint_interval`` iterations with the
    tracker's state; ``restart`` (such a state) continues a fit: from its point, with its
    history and counts, for the iterations left of the budget."""
    space = objective.space
    spec = fitting.minimizer
    method = methods.method_of(spec)
    tty = sys.stdout.isatty() if tty is None else tty
    given = dict(spec.options)
    minibatch = spec.kind == "adam" and given.get("batch-size") is not None and bool(
        getattr(objective, "minibatch_units", lambda: [])())
    if spec.kind == "adam" and given.get("batch-size") is not None and not minibatch and \
            int(given["batch-size"]) < len(objective.ids()):
        raise NotImplementedInRexfit(
            f"{spec.origin}: <adam batch-size> draws minibatches from <dataset> entries; this "
            "job has none (its structures are always used together): leave batch-size out")
    budget = None if method in ("multistart", "linear-solve") else (
        max_iter if max_iter is not None else methods.total_iterations(spec))
    tr = _Tracker(objective, log, fitting.output_interval, tty,
                  maxtime=given.get("maxtime"), stopval=given.get("stopval"), budget=budget)
    u0 = space.u0()
    if checkpoint is not None and fitting.checkpoint_interval:
        tr.on_checkpoint = checkpoint
        tr.checkpoint_every = int(fitting.checkpoint_interval)
    if restart is not None:
        u0 = np.asarray(restart["u"], float)
        if u0.shape != (space.size,):
            raise CalculationFailed("the checkpoint does not belong to this job (it has "
                                    f"{u0.size} fitted parameters, the job {space.size})")
        tr.iteration = int(restart["iteration"])
        tr.evaluations = tr._evaluations_before = int(restart["evaluations"])
        tr.minimizer_state = dict(restart.get("minimizer") or {})
        budget = max_iter if max_iter is not None else methods.total_iterations(spec)
        max_iter = max(int(budget) - tr.iteration, 0)
        tr.budget = None if tr.budget is None else int(budget)
        log(f"Restarting from the checkpoint at iteration {tr.iteration} "
            f"({max_iter} iterations left)")
    needs_grad = method in methods.GRADIENT_METHODS or method == "multistart" and (
        spec.inner is None or methods.method_of(spec.inner) in methods.GRADIENT_METHODS) or (
        method == "differential-evolution" and methods.options(spec)["polish"])
    squares = method in ("least-squares", "linear-solve") and \
        objective.least_squares_ready() is None

    def evaluate(u, grad):
        """f (and g) at u; for least squares from the residuals, so that only the residual
        and Jacobian programs are compiled."""
        if squares and space.size:
            r, jac = tr.residuals(u)
            return float(r @ r), 2.0 * jac.T @ r
        return tr._eval(u, grad)

    f0, g0 = evaluate(u0, needs_grad)
    if not math.isfinite(f0) or f0 >= 1e30:
        where = "the checkpoint's parameters" if restart is not None else "the given parameters"
        raise failure(f"the {tr.nonfinite} is not finite at {where}", objective, u0,
                      residuals=squares and bool(space.size))
    if restart is not None:
        tr.history = [list(h) for h in restart["history"]]
        tr.progress = [dict(p) for p in restart.get("progress") or []]
        if restart.get("best_u") is not None and float(restart["best"]) < tr.best:
            tr.best, tr.best_u = float(restart["best"]), np.asarray(restart["best_u"], float)
    else:
        tr.history.append(tr.entry(0, f0, u0, force=True))
    tr.report(tr.iteration, f0, None if g0 is None else float(np.linalg.norm(g0)), force=True,
              u=u0)
    interrupted = False
    outcome = None
    # The minimizers' host-side linear algebra is small; OpenBLAS worker threads would spin
    # between iterations and take cores from the XLA programs that evaluate the objective.
    blas = threadpool_limits(limits=1, user_api="blas")
    try:
        if space.size == 0:
            outcome = methods.Outcome(u0, True, "no parameters to fit", 0)
        elif restart is not None and max_iter == 0:
            outcome = methods.Outcome(u0, False, "the checkpoint used the whole iteration "
                                      "budget", tr.iteration)
        elif method == "multistart":
            outcome = _multistart(spec, tr, u0, space, max_iter, seed)
        elif minibatch:
            outcome = _minibatch_adam(spec, tr, objective, u0, space, max_iter)
        elif method in ("least-squares", "linear-solve"):
            why = objective.least_squares_ready()
            if why is not None:
                raise InputErrors([InputError(
                    f"<{method}> needs an objective that is a sum of squares: {why}; use "
                    + ("another minimizer (<BFGS>, <lbfgs>, <adam>)" if "regularis" in why
                       or "term" in why else "residual-style='squared' or another minimizer"),
                    spec.origin)])
            if method == "linear-solve":
                outcome = methods.linear_solve(spec, tr.residuals, u0, space.scale,
                                               space.lower, space.upper, tr.callback)
            else:
                outcome = methods.least_squares(spec, tr.residuals, u0, space.lower,
                                                space.upper, tr.callback, max_iter=max_iter)
        else:
            outcome = methods.minimize(spec, tr.fun, tr.fun_grad, u0, space.lower, space.upper,
                                       tr.callback, max_iter=max_iter,
                                       state=tr.minimizer_state)
    except KeyboardInterrupt:
        interrupted = True
    except _Stop:
        outcome = methods.Outcome(tr.best_u, True, tr.stop_reason, tr.iteration)
    finally:
        blas.restore_original_limits()
    u = tr.best_u if tr.best_u is not None else u0
    if tr.chosen_u is not None:  # early stopping: the best point on the validation set
        u = tr.chosen_u
    if outcome is not None and not interrupted and tr.stop_reason is None:
        f_out, _ = tr._eval(outcome.u, False)
        # a regularised linear solve minimises more than the objective: keep its solution
        if f_out <= tr.best or method == "linear-solve":
            u = outcome.u
    f, g = evaluate(u, True) if needs_grad or space.size else (tr.best, None)
    grad_norm = None if g is None else float(np.linalg.norm(g))
    if interrupted:
        converged, message, iters = False, "interrupted (Ctrl-C); best parameters kept", tr.iteration
    else:
        converged, message, iters = outcome.converged, outcome.message, max(outcome.iterations,
                                                                             tr.iteration)
    if not tr.history or tr.history[-1][1] != f:
        tr.history.append(tr.entry(iters, f, u, force=True))
    elif tr.has_validation and len(tr.history[-1]) == 2:  # end the curve with both sets
        tr.history[-1] = tr.entry(tr.history[-1][0], f, u, force=True)
    tr.report(iters, f, grad_norm, force=True, final=True, u=u)
    timing.progress("")
    if tty:  # end the live line (once, after its final state)
        sys.stdout.write("\n")
        sys.stdout.flush()
    return FitResult(verdict=methods.plain_stop(spec, message, converged,
                                                max_iter=tr.budget),
                     warnings=overfitting_warnings(tr.progress, tr.history,
                                                   fitted_quantities(objective)),
                     progress=tr.progress,
                     method=spec.kind if spec.kind != "nlopt" else
                     f"nlopt:{dict(spec.options).get('algorithm')}",
                     u=np.asarray(u, float), value=float(f), iterations=int(iters),
                     evaluations=tr.evaluations, converged=bool(converged), message=message,
                     seconds=time.perf_counter() - tr.start, grad_norm=grad_norm,
                     history=tr.history, interrupted=interrupted)


def _multistart(spec, tr, u0, space, max_iter, seed) -> methods.Outcome:
    inner = spec.inner
    if inner is None:  # nlopt's MLSL without a local algorithm: bounded L-BFGS
        inner = MinimizerSpec(kind="BFGS", options=(), origin=spec.origin)
    rng = np.random.default_rng(dict(spec.options).get("seed", seed))
    reset = np.array([e.reset for e in space.fitted], bool)
    best = None
    for k, start in enumerate(methods.start_points(spec, u0, space.lower, space.upper, reset, rng)):
        tr.log(f"multistart: local run {k + 1} from objective {tr.fun(start):.10g}")
        out = methods.minimize(inner, tr.fun, tr.fun_grad, start, space.lower, space.upper,
                               tr.callback, max_iter=max_iter)
        f = tr.fun(out.u)
        if best is None or f < best[0]:
            best = (f, out)
    return best[1]


def _minibatch_adam(spec, tr, objective, u0, space, max_iter) -> methods.Outcome:
    """Adam on minibatches of dataset chunks (each step: every structure plus a random set of
    chunks, scaled to an unbiased estimate), an optional learning-rate schedule and early
    stopping on the validation objective.  One iteration is one epoch (a pass over every
    chunk); epoch e shuffles with the seed (seed, e), so a restart repeats the same order."""
    import jax
    import jax.numpy as jnp
    import optax

    opts = methods.options(spec)
    epochs = int(max_iter) if max_iter is not None else int(opts["epochs"])
    units = objective.minibatch_units()
    per_unit = float(np.mean([n for _, _, n in units]))
    per_step = max(1, int(round(int(opts["batch-size"]) / per_unit)))
    steps = -(-len(units) // per_step)
    lr0 = float(opts["learning-rate"])
    schedule = str(opts.get("schedule", "constant"))
    done = tr.iteration
    if schedule == "exponential":
        rate = optax.exponential_decay(lr0, steps, float(opts.get("decay-rate", 0.9)))
    elif schedule == "cosine":
        rate = optax.cosine_decay_schedule(lr0, max((done + epochs) * steps, 1))
    else:
        rate = lr0
    opt = optax.adam(rate)
    u = jnp.asarray(u0)
    state = opt.init(u)
    saved = tr.minimizer_state.get("adam-minibatch")
    if saved is not None:
        leaves, treedef = jax.tree_util.tree_flatten(state)
        state = jax.tree_util.tree_unflatten(treedef, [
            jnp.asarray(v, dtype=leaf.dtype) for v, leaf in zip(saved, leaves)])
    seed = int(opts.get("seed", 0))
    patience = opts.get("patience")
    best_val, best_u, waited = math.inf, None, 0
    for e in range(epochs):
        order = np.random.default_rng([seed, done + e]).permutation(len(units))
        for s in range(steps):
            picked: dict = {}
            for i in order[s * per_step:(s + 1) * per_step]:
                key, chunk, _ = units[i]
                picked.setdefault(key, []).append(chunk)
            f, g = objective.evaluate_minibatch(np.asarray(u), picked)
            tr.evaluations += 1
            if not (math.isfinite(f) and np.all(np.isfinite(g))):
                raise failure(f"the objective of a minibatch (epoch {done + e + 1}) is not "
                              "finite", objective, np.asarray(u))
            updates, state = opt.update(jnp.asarray(g), state, u)
            u = jnp.clip(optax.apply_updates(u, updates), space.lower, space.upper)
        tr.minimizer_state["adam-minibatch"] = [np.asarray(leaf).tolist()
                                                for leaf in jax.tree_util.tree_leaves(state)]
        tr.callback(np.asarray(u))
        if patience is not None and objective.has_validation():
            v = objective.evaluate(np.asarray(u), grad=False, sets=("validation",)).value
            if v < best_val:
                best_val, best_u, waited = v, np.asarray(u).copy(), 0
            else:
                waited += 1
            if waited >= int(patience):
                tr.chosen_u = best_u
                return methods.Outcome(best_u, True, f"early stopping: the validation objective "
                                       f"did not improve for {patience} epochs", e + 1)
    if best_u is not None:
        tr.chosen_u = best_u
    return methods.Outcome(np.asarray(u), False, f"stopped after {epochs} epochs "
                           f"({steps} minibatch steps each)", epochs)
