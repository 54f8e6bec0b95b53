"""Time the Al EAM example fit with exact gradients vs central finite differences.

The job is jobs/al-eam/job.xml (4 fitted parameters A, lambda, twomu, D; fcc, bcc, hcp and
diamond structures; the fcc lattice parameter is relaxed inside every objective evaluation).
Both runs minimise the same objective with the same minimizer, SciPy L-BFGS-B with the job's
settings (``<BFGS conv-threshold="1e-10" max-iter="200"/>`` → ftol = gtol = 1e-10,
maxiter = 200, maxfun = 600, 10 memory pairs: what ``rexfit jobs/al-eam/job.xml`` runs, see
rexfit/fit/methods.py), from the same start ``space.u0()`` within ``space.lower/upper``:

1. exact: value and gradient from ``Objective.evaluate(u, grad=True)`` (implicit
   differentiation through the relaxations), one evaluation per minimizer call;
2. fd: the value from ``evaluate(u, grad=False)`` and the gradient by central differences
   (f(u + h e_k) − f(u − h e_k)) / 2h in the scaled fit variables u (the atomicrex approach),
   1 + 2n = 9 evaluations per minimizer call.  Default h = 1e-5, the most accurate of
   1e-4 … 1e-8 (``--scan-h`` prints the comparison): |g_fd − g_exact| ≈ 8e-4 at the start
   (|g| ≈ 4.5e4) and ≈ 4e-4 at the optimum (|g| ≈ 6e-3); h = 1e-4 is limited by truncation
   (≈ 8e-2 / 4e-2), h ≤ 1e-6 by rounding and relaxation noise (1e-3 … 1e-2).  With h = 1e-6
   the FD fit reaches the same objective with about as many evaluations.

Every evaluation, value-only or not, relaxes the structures; each run's first evaluation
relaxes from the structures' given DOFs (``fresh=True``), later ones warm-start from the
previous relaxed state — in both variants, so the comparison is fair.  Each variant has its
own Objective instance (warm-start states do not mix); one evaluation of each kind is run
first and reported separately as the compile time (first call, compilation included).

"Same objective value": the target is the worse (larger) of the two final objective values
plus 1e-9 relative; for each run the wall time and the number of evaluations (every
structure-relaxing evaluation, FD probes included) at which a point requested by the
minimizer first has an objective at or below the target.  For FD the time stamp is taken
when the point's value is known, before its 2n gradient probes (which favours FD slightly).
Usage:

    python benchmarks/fit_exact_vs_fd.py [--repeat 5] [--h 1e-5] [--scan-h] [--quick]

It prints per-evaluation costs, a table per variant and the ratios FD / exact (goal ≥ 5× in
wall time to the same objective).  ``--repeat N`` keeps the best of N runs (runs alternate
between the variants, so a busy machine hits both); ``--quick`` is ``--repeat 2``.

The first fit of each variant also compiles mid-run: at the first trial step of the line
search the fcc lattice parameter relaxes to its bound (5 Å), the neighbour list drops to a
smaller capacity bucket, and the relaxation and term functions are compiled for the new
shape (≈ 10 s with the gradient, ≈ 4 s value only).  The "1st run s" column includes that;
"wall s" and the time to target are best of N, without compilation.  A one-shot
``rexfit job.xml`` pays the first call and the first run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scipy import optimize

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rexfit.fit import methods  # noqa: E402
from rexfit.job import load_job  # noqa: E402
from rexfit.model.potentials import build_potentials  # noqa: E402
from rexfit.objective.objective import Objective  # noqa: E402
from rexfit.objective.parameters import ParameterSpace  # noqa: E402

BAD = 1e30  # value handed to the minimizer at a point where a structure blew up


class Run:
    """One minimisation: wraps the objective, counts evaluations, time-stamps every point
    the minimizer asks for."""

    def __init__(self, objective: Objective, mode: str, h: float):
        self.obj = objective
        self.mode = mode
        self.h = h
        self.evaluations = 0
        self.iterations = 0
        self.trace: list[tuple[int, float, float]] = []  # (evaluations, seconds, f)
        self.fallbacks = 0  # FD components taken one-sided or zeroed (non-finite probes)
        self.last_grad = None
        self.start = None
        self.slowest = 0.0  # longest single evaluation (a mid-run recompilation shows here)

    def _value(self, u, grad: bool):
        t = time.perf_counter()
        ev = self.obj.evaluate(u, grad=grad, fresh=self.evaluations == 0)
        self.slowest = max(self.slowest, time.perf_counter() - t)
        self.evaluations += 1
        return ev.value, ev.grad

    def fun_grad(self, u):
        u = np.asarray(u, float)
        if self.mode == "exact":
            f, g = self._value(u, True)
            ok = math.isfinite(f) and np.all(np.isfinite(g))
            self._point(f if ok else BAD)
            if not ok:
                return BAD, self._fallback_grad(u)
            self.last_grad = np.asarray(g, float)
            return f, self.last_grad
        f, _ = self._value(u, False)
        self._point(f if math.isfinite(f) else BAD)
        if not math.isfinite(f):
            return BAD, self._fallback_grad(u)
        g = np.empty_like(u)
        for k in range(u.size):
            e = np.zeros_like(u)
            e[k] = self.h
            fp, _ = self._value(u + e, False)
            fm, _ = self._value(u - e, False)
            if math.isfinite(fp) and math.isfinite(fm):
                g[k] = (fp - fm) / (2 * self.h)
            else:
                self.fallbacks += 1
                g[k] = ((fp - f) / self.h if math.isfinite(fp) else
                        (f - fm) / self.h if math.isfinite(fm) else 0.0)
        self.last_grad = g
        return f, g

    def _fallback_grad(self, u):
        return self.last_grad if self.last_grad is not None else np.zeros_like(u)

    def _point(self, f):
        self.trace.append((self.evaluations, time.perf_counter() - self.start, float(f)))

    def callback(self, _u):
        self.iterations += 1

    def minimize(self, u0, lower, upper, settings):
        bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
                  for lo, hi in zip(lower, upper)]
        self.start = time.perf_counter()
        res = optimize.minimize(self.fun_grad, u0, jac=True, method="L-BFGS-B", bounds=bounds,
                                callback=self.callback, options=settings)
        self.seconds = time.perf_counter() - self.start
        self.result = res
        self.final = min(f for _, _, f in self.trace)
        return self

    def to_target(self, target):
        """(seconds, evaluations) when a minimizer point first reached ``target``."""
        for n, t, f in self.trace:
            if f <= target:
                return t, n
        return math.inf, None


def settings_of(job, maxiter=None):
    """L-BFGS-B options as rexfit.fit.methods.minimize builds them for the job's minimizer."""
    opts = methods.options(job.fitting.minimizer)
    iters = int(maxiter if maxiter is not None else opts.get("max-iter", 100))
    return dict(maxiter=iters, maxfun=max(3 * iters, 50), ftol=float(opts["conv-threshold"]),
                gtol=float(opts["gradient-tolerance"]), maxcor=int(opts["memory"]))


def fd_grad(obj, u, h):
    g = np.empty_like(u)
    for k in range(u.size):
        e = np.zeros_like(u)
        e[k] = h
        fp = obj.evaluate(u + e, grad=False).value
        fm = obj.evaluate(u - e, grad=False).value
        g[k] = (fp - fm) / (2 * h)
    return g


def scan_h(obj_exact, obj_fd, points, hs):
    print("FD gradient error |g_fd - g_exact| (relative to |g_exact| in parentheses):")
    print(f"  {'point':>8} {'|g_exact|':>10} "
          + " ".join(f"{'h=' + format(h, 'g'):>18}" for h in hs))
    for name, u in points:
        g = obj_exact.evaluate(u, grad=True).grad
        cells = []
        for h in hs:
            obj_fd.evaluate(u, grad=False)  # warm-start at u, as inside a fit
            err = np.linalg.norm(fd_grad(obj_fd, u, h) - g)
            cells.append(f"{err:8.1e} ({err / np.linalg.norm(g):7.1e})")
        print(f"  {name:>8} {np.linalg.norm(g):10.3g} " + " ".join(f"{c:>18}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default=str(ROOT / "jobs" / "al-eam" / "job.xml"))
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs per variant")
    parser.add_argument("--h", type=float, default=1e-5, help="FD step in the scaled variables")
    parser.add_argument("--maxiter", type=int, default=None, help="override the job's max-iter")
    parser.add_argument("--scan-h", action="store_true",
                        help="compare FD and exact gradients for several h first")
    parser.add_argument("--quick", action="store_true", help="same as --repeat 2")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 2

    job, _ = load_job(args.job)
    pm = build_potentials(job)
    space = ParameterSpace(pm, job.constraints)
    u0 = space.u0()
    settings = settings_of(job, args.maxiter)
    obj_exact = Objective(job, space)
    obj_fd = Objective(job, space)
    print(f"{job.name}: {space.size} fitted parameters, {len(obj_exact.ids())} structures, "
          f"device {jax.devices()[0].platform}, JAX {jax.__version__}")
    print(f"L-BFGS-B {settings}, FD step h = {args.h:g}")

    # Compilation: first call of each kind, then one more for the steady per-evaluation cost.
    t = time.perf_counter()
    obj_exact.evaluate(u0, grad=True, fresh=True)
    compile_exact = time.perf_counter() - t
    t = time.perf_counter()
    obj_fd.evaluate(u0, grad=False, fresh=True)
    compile_fd = time.perf_counter() - t
    per = {}
    for name, obj, grad in (("exact", obj_exact, True), ("fd", obj_fd, False)):
        best = math.inf
        for k in range(5):
            t = time.perf_counter()
            obj.evaluate(u0 * (1 + 1e-7 * (k + 1)), grad=grad)
            best = min(best, time.perf_counter() - t)
        per[name] = best
    print(f"first call (compile): value+grad {compile_exact:.2f} s, value only {compile_fd:.2f} s")
    print(f"one warm-started evaluation: value+grad {per['exact'] * 1e3:.1f} ms, "
          f"value only {per['fd'] * 1e3:.1f} ms (ratio {per['exact'] / per['fd']:.2f}); "
          f"one FD gradient = {1 + 2 * space.size} value evaluations")

    if args.scan_h:
        scan_h(obj_exact, obj_fd, [("start", u0)], [1e-4, 1e-5, 1e-6, 1e-7, 1e-8])

    runs = {"exact": [], "fd": []}
    for r in range(args.repeat):
        for name, obj in (("exact", obj_exact), ("fd", obj_fd)):
            run = Run(obj, name, args.h).minimize(u0, space.lower, space.upper, settings)
            runs[name].append(run)
            print(f"  run {r + 1} {name:5}: {run.seconds:7.2f} s, {run.evaluations:5d} "
                  f"evaluations, {run.iterations:3d} iterations, objective {run.final:.12g}, "
                  f"slowest evaluation {run.slowest:.2f} s")

    if args.scan_h:
        scan_h(obj_exact, obj_fd, [("optimum", runs["exact"][0].result.x)],
               [1e-4, 1e-5, 1e-6, 1e-7, 1e-8])

    finals = {k: v[0].final for k, v in runs.items()}
    for k, v in runs.items():
        spread = max(r.final for r in v) - min(r.final for r in v)
        if spread > 1e-9 * abs(finals[k]):
            print(f"note: {k} runs ended at different objectives (spread {spread:.3g})")
    target = max(max(r.final for r in v) for v in runs.values()) * (1 + 1e-9)

    print()
    print(f"target objective (worse final value + 1e-9 rel.): {target:.10g}")
    head = (f"{'variant':8} {'1st run s':>9} {'wall s':>8} {'evals':>6} {'iters':>6} "
            f"{'final objective':>16} {'s to target':>12} {'evals to target':>16}")
    print(head)
    print("-" * len(head))
    best = {}
    for name, v in runs.items():
        fastest = min(v, key=lambda r: r.seconds)
        t_target = min(r.to_target(target)[0] for r in v)
        n_target = fastest.to_target(target)[1]
        best[name] = (t_target, n_target, fastest)
        print(f"{name:8} {v[0].seconds:9.2f} {fastest.seconds:8.2f} {fastest.evaluations:6d} "
              f"{fastest.iterations:6d} {fastest.final:16.12g} {t_target:12.2f} "
              f"{str(n_target):>16}")
    print(f"  (wall s and s to target: best of {args.repeat}; 1st run s: the first fit of the "
          f"variant, mid-run recompilations included;\n   first evaluation not included: "
          f"value+grad {compile_exact:.2f} s, value only {compile_fd:.2f} s)")
    (te, ne, re), (tf, nf, rf) = best["exact"], best["fd"]
    print(f"FD / exact, wall time to target  : {tf / te:6.2f}   (goal ≥ 5)")
    if ne and nf:
        print(f"FD / exact, evaluations to target: {nf / ne:6.2f}")
    print(f"FD / exact, total wall time      : {rf.seconds / re.seconds:6.2f}")
    first = runs["fd"][0].seconds / runs["exact"][0].seconds
    print(f"FD / exact, first run wall time  : {first:6.2f}   (recompilations included)")
    print(f"exact: {re.result.message}")
    print(f"fd   : {rf.result.message}")
    if rf.fallbacks:
        print(f"note: {rf.fallbacks} FD gradient components were one-sided (non-finite probe)")
    du = np.abs(rf.result.x - re.result.x) / np.maximum(np.abs(re.result.x), 1e-300)
    print("parameters exact: " + " ".join(f"{v:.10g}" for v in space.values(re.result.x)))
    print("parameters fd   : " + " ".join(f"{v:.10g}" for v in space.values(rf.result.x))
          + f"   (max rel. difference {du.max():.1e})")


if __name__ == "__main__":
    main()
