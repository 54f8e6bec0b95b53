"""Minimizer elements of SPEC §5 mapped to SciPy (and optax for ``<adam>``).

Every method receives ``fun(u) -> f`` and ``fun_grad(u) -> (f, g)`` over the scaled fit vector,
its bounds, and ``callback(u)`` called once per iteration. Gradient methods get the exact
gradient; derivative-free ones only values. ``<nlopt>`` algorithms map to the closest SciPy
method (:data:`NLOPT_METHODS`, documented in docs/fitting.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rexfit.errors import InputError, InputErrors

#: nlopt algorithm → (rexfit method, note for the docs table).
NLOPT_METHODS = {
    "LD_LBFGS": "lbfgs", "LD_VAR1": "lbfgs", "LD_VAR2": "lbfgs", "LD_MMA": "lbfgs",
    "LD_CCSAQ": "lbfgs", "LD_TNEWTON": "tnc", "LD_SLSQP": "slsqp",
    "LN_COBYLA": "cobyla", "LN_BOBYQA": "powell", "LN_NEWUOA": "powell",
    "LN_NEWUOA_BOUND": "powell", "LN_PRAXIS": "powell", "LN_SBPLX": "powell",
    "LN_NELDERMEAD": "nelder-mead",
    "GN_CRS2_LM": "differential-evolution", "GN_ESCH": "differential-evolution",
    "GN_DIRECT": "differential-evolution", "GN_DIRECT_L": "differential-evolution",
    "GN_ISRES": "differential-evolution",
    "GN_MLSL": "multistart", "GN_MLSL_LDS": "multistart", "GD_MLSL": "multistart",
    "GD_MLSL_LDS": "multistart", "G_MLSL": "multistart", "G_MLSL_LDS": "multistart",
}

GRADIENT_METHODS = {"lbfgs", "tnc", "slsqp", "adam"}


@dataclass
class Outcome:
    u: np.ndarray
    converged: bool
    message: str
    iterations: int


def _opt(spec, key, default):
    v = dict(spec.options).get(key, default)
    return default if v is None else v


def method_of(spec) -> str:
    """The rexfit method name of a minimizer spec (nlopt resolved)."""
    if spec.kind == "nlopt":
        alg = str(_opt(spec, "algorithm", "LD_LBFGS")).removeprefix("NLOPT_")
        return NLOPT_METHODS[alg]
    return {"BFGS": "lbfgs", "spa": "multistart"}.get(spec.kind, spec.kind)


def _bounds(lower, upper):
    return [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
            for lo, hi in zip(lower, upper)]


#: Defaults of each method's attributes (as documented in schemas/job.xsd).
DEFAULTS = {
    "lbfgs": {"max-iter": 100, "conv-threshold": 1e-5, "memory": 10},
    "tnc": {"max-iter": 100, "conv-threshold": 1e-8},
    "slsqp": {"max-iter": 100, "conv-threshold": 1e-8},
    "nelder-mead": {"max-iter": 1000, "conv-threshold": 1e-8},
    "powell": {"max-iter": 1000, "conv-threshold": 1e-8},
    "cobyla": {"max-iter": 1000, "conv-threshold": 1e-8},
    "differential-evolution": {"max-iter": 100, "conv-threshold": 0.01, "popsize": 15,
                               "polish": True},
    "adam": {"epochs": 100, "learning-rate": 1e-3},
    "least-squares": {"method": "trf", "max-iter": 100, "ftol": 1e-12, "xtol": 1e-12,
                      "gtol": 1e-12, "x-scale": "jac"},
    "linear-solve": {"ridge": 0.0, "l1": 0.0, "rcond": 1e-12, "linearity-tolerance": 1e-6},
}


def options(spec) -> dict:
    """The minimizer's attributes with defaults filled in; nlopt names translated
    (maxeval → max-iter, ftol_rel → conv-threshold, xtol_rel → xtol)."""
    method = method_of(spec)
    opts = dict(DEFAULTS.get(method, {}))
    given = dict(spec.options)
    if spec.kind == "nlopt":
        for src, dst in (("maxeval", "max-iter"), ("ftol_rel", "conv-threshold"),
                         ("xtol_rel", "xtol"), ("seed", "seed")):
            if src in given:
                opts[dst] = given[src]
        if "ftol_rel" not in given and "ftol_abs" in given:
            opts["conv-threshold"] = given["ftol_abs"]
    else:
        opts.update(given)
    if method == "lbfgs":
        opts.setdefault("gradient-tolerance", 1e-8 if spec.kind == "lbfgs"
                        else opts["conv-threshold"])
    return opts


def total_iterations(spec) -> int:
    """The iteration budget of a minimizer spec (max-iter, or epochs for Adam)."""
    opts = options(spec)
    return int(opts["epochs"] if method_of(spec) == "adam" else opts.get("max-iter", 100))


def minimize(spec, fun, fun_grad, u0, lower, upper, callback, *, max_iter=None,
             state: dict | None = None) -> Outcome:
    """Run the local or global minimizer ``spec`` (a MinimizerSpec) from ``u0``.

    ``state``: a dict for minimizers with an internal state worth checkpointing (Adam): read
    at the start (key "adam", from a checkpoint) and kept current during the run."""
    from scipy import optimize  # imported when used (half a second)

    method = method_of(spec)
    opts = options(spec)
    iters = int(max_iter) if max_iter is not None else int(opts.get("max-iter", 100))
    tol = float(opts.get("conv-threshold", 1e-8))
    xtol = float(opts.get("xtol", tol))
    bounds = _bounds(lower, upper)
    if method == "lbfgs":
        res = optimize.minimize(fun_grad, u0, jac=True, method="L-BFGS-B", bounds=bounds,
                                callback=callback,
                                options=dict(maxiter=iters, maxfun=max(3 * iters, 50),
                                             ftol=tol, gtol=float(opts["gradient-tolerance"]),
                                             maxcor=int(opts["memory"])))
    elif method == "tnc":
        res = optimize.minimize(fun_grad, u0, jac=True, method="TNC", bounds=bounds,
                                callback=callback, options=dict(maxfun=iters, ftol=tol))
    elif method == "slsqp":
        res = optimize.minimize(fun_grad, u0, jac=True, method="SLSQP", bounds=bounds,
                                callback=callback, options=dict(maxiter=iters, ftol=tol))
    elif method == "nelder-mead":
        res = optimize.minimize(fun, u0, method="Nelder-Mead", bounds=bounds, callback=callback,
                                options=dict(maxiter=iters, fatol=tol, xatol=xtol))
    elif method == "powell":
        res = optimize.minimize(fun, u0, method="Powell", bounds=bounds, callback=callback,
                                options=dict(maxiter=iters, ftol=tol, xtol=xtol))
    elif method == "cobyla":
        res = optimize.minimize(fun, u0, method="COBYLA", bounds=bounds, callback=callback,
                                options=dict(maxiter=iters, tol=tol))
    elif method == "differential-evolution":
        _need_finite_bounds(spec, lower, upper)
        res = optimize.differential_evolution(
            fun, list(zip(lower, upper)), maxiter=iters, tol=tol, seed=opts.get("seed"), x0=u0,
            popsize=int(opts["popsize"]), polish=False,
            callback=lambda intermediate_result: callback(intermediate_result.x))
        if opts["polish"]:
            polished = optimize.minimize(fun_grad, res.x, jac=True, method="L-BFGS-B",
                                         bounds=bounds, callback=callback,
                                         options=dict(maxiter=200, ftol=1e-12, gtol=1e-10))
            if polished.fun <= res.fun:
                res.x, res.fun = polished.x, polished.fun
                res.message = f"{res.message}; polished with L-BFGS-B ({polished.message})"
    elif method == "adam":
        return _adam(opts, fun_grad, u0, lower, upper, callback,
                     int(max_iter) if max_iter is not None else int(opts["epochs"]),
                     {} if state is None else state)
    else:
        raise ValueError(f"no minimizer '{method}'")
    return Outcome(np.asarray(res.x, float), bool(res.success), str(res.message),
                   int(getattr(res, "nit", 0) or 0))


def least_squares(spec, residuals, u0, lower, upper, callback, *, max_iter=None) -> Outcome:
    """SciPy ``least_squares`` (trust-region reflective, dogbox or Levenberg–Marquardt) on the
    residual vector with its exact Jacobian; ``residuals(u)`` → (r, J)."""
    from scipy import optimize

    opts = options(spec)
    method = str(opts["method"])
    if method == "lm" and (np.any(np.isfinite(lower)) or np.any(np.isfinite(upper))):
        raise InputErrors([InputError(
            "<least-squares method='lm'> (Levenberg–Marquardt) cannot keep parameters within "
            "min/max: remove the bounds of the fitted parameters or use method='trf'",
            spec.origin)])
    iters = int(max_iter) if max_iter is not None else int(opts["max-iter"])
    last: dict = {}

    def both(u):
        key = np.asarray(u, float).tobytes()
        if last.get("key") != key:
            last["key"], last["value"] = key, residuals(u)
            callback(u)
        return last["value"]

    res = optimize.least_squares(
        lambda u: both(u)[0], u0, jac=lambda u: both(u)[1],
        bounds=(lower, upper) if method != "lm" else (-np.inf, np.inf), method=method,
        ftol=float(opts["ftol"]), xtol=float(opts["xtol"]), gtol=float(opts["gtol"]),
        max_nfev=iters, x_scale="jac" if opts["x-scale"] == "jac" else 1.0)
    return Outcome(np.asarray(res.x, float), bool(res.success), str(res.message),
                   int(res.nfev))


def linear_solve(spec, residuals, u0, scale, lower, upper, callback) -> Outcome:
    """One direct solve of a fit whose residuals are affine in the fitted parameters (linear
    and quadratic descriptor models on fixed geometries): r(u) = r0 + J (u − u0).

    In the unscaled parameters p = s·u it minimises ‖r0 + J_p (p − p0)‖² + α‖p‖² + λ‖p‖₁
    (α = ridge, λ = l1): by SVD (``numpy.linalg.lstsq`` with ``rcond``; minimum-norm where
    the data do not determine p) without bounds or L1, by bounded-variable least squares
    (``scipy.optimize.lsq_linear``) with min/max, by L-BFGS-B on p = p⁺ − p⁻ (p± ≥ 0) with
    L1.  The residuals are then evaluated at the solution; if they differ from the affine
    prediction by more than ``linearity-tolerance`` (relative), the objective is not quadratic
    in the fitted parameters and the solve is refused.  ``residuals(u)`` → (r, J)."""
    opts = options(spec)
    ridge, l1, rcond = float(opts["ridge"]), float(opts["l1"]), float(opts["rcond"])
    for key, value in (("ridge", ridge), ("l1", l1)):
        if not value >= 0.0:
            raise InputErrors([InputError(f"<linear-solve> {key} must be ≥ 0, got {value:g}",
                                          spec.origin)])
    scale = np.asarray(scale, float)
    u0 = np.asarray(u0, float)
    r0, jac = residuals(u0)
    callback(u0)
    a = jac / scale[None, :]  # ∂r/∂p
    b = a @ (u0 * scale) - r0  # a p ≈ b
    n = a.shape[1]
    lo, hi = np.asarray(lower, float) * scale, np.asarray(upper, float) * scale
    bounded = bool(np.any(np.isfinite(lo)) or np.any(np.isfinite(hi)))
    if ridge > 0.0:
        a = np.vstack([a, math.sqrt(ridge) * np.eye(n)])
        b = np.concatenate([b, np.zeros(n)])
    if l1 > 0.0:
        if bounded:
            raise InputErrors([InputError(
                "<linear-solve l1> cannot keep parameters within min/max: remove the bounds "
                "of the fitted parameters or the l1 term", spec.origin)])
        p, how = _lasso(a, b, l1), "L-BFGS-B on the L1-regularised problem"
    elif bounded:
        from scipy import optimize

        res = optimize.lsq_linear(a, b, bounds=(lo, hi), method="bvls", tol=1e-14)
        p, how = res.x, f"bounded-variable least squares ({res.message})"
    else:
        p, _, rank, _ = np.linalg.lstsq(a, b, rcond=rcond)
        how = f"SVD, rank {rank} of {n}"
    u = p / scale
    r1, _ = residuals(u)
    callback(u)
    predicted = r0 + jac @ (u - u0)
    # relative to the residuals and to the linear part they are differences of (a fit that
    # starts at its solution has residuals at round-off, which alone are no scale)
    size = max(float(np.linalg.norm(r0)), float(np.linalg.norm(r1)),
               float(np.linalg.norm(jac @ u)), float(np.linalg.norm(jac @ u0)), 1e-300)
    deviation = float(np.linalg.norm(r1 - predicted)) / size
    if deviation > float(opts["linearity-tolerance"]):
        raise InputErrors([InputError(
            f"<linear-solve>: the residuals are not affine in the fitted parameters (at the "
            f"solution they differ from the linear prediction by {deviation:.3g} relative); "
            "fit only linear coefficients (e.g. SNAP beta, gamma) on fixed geometries, or use "
            "<least-squares>", spec.origin)])
    return Outcome(u, True, f"linear least squares solved ({how})", 1)


def _lasso(a, b, l1) -> np.ndarray:
    """argmin ‖a p − b‖² + l1 ‖p‖₁ by L-BFGS-B on p = p⁺ − p⁻ with p± ≥ 0."""
    from scipy import optimize

    n = a.shape[1]
    ata, atb = a.T @ a, a.T @ b

    def fun(z):
        p = z[:n] - z[n:]
        g = 2.0 * (ata @ p - atb)
        value = p @ ata @ p - 2.0 * atb @ p + l1 * np.sum(z)
        return value, np.concatenate([g + l1, -g + l1])

    start = np.linalg.lstsq(a, b, rcond=None)[0]
    z0 = np.concatenate([np.maximum(start, 0.0), np.maximum(-start, 0.0)])
    res = optimize.minimize(fun, z0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * 2 * n,
                            options=dict(maxiter=10000, ftol=1e-15, gtol=1e-12))
    return res.x[:n] - res.x[n:]


def _need_finite_bounds(spec, lower, upper):
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise InputErrors([InputError(
            f"<{spec.kind}> searches a box: every fitted parameter needs min and max "
            "(in <fit-dof>)", spec.origin)])


def _adam(opts, fun_grad, u0, lower, upper, callback, epochs, keep: dict) -> Outcome:
    """Full-batch Adam (optax) on the scaled parameters, projected onto the bounds.

    ``keep["adam"]`` (count, first and second moments as lists) is restored when present and
    updated before every callback, so a checkpoint continues the same trajectory."""
    import jax.numpy as jnp
    import optax

    opt = optax.adam(float(opts["learning-rate"]))
    u = jnp.asarray(u0)
    state = opt.init(u)
    saved = keep.get("adam")
    if saved is not None:
        adam = state[0]._replace(count=jnp.asarray(saved["count"], dtype=state[0].count.dtype),
                                 mu=jnp.asarray(saved["mu"]), nu=jnp.asarray(saved["nu"]))
        state = (adam,) + tuple(state[1:])
    tol = float(opts.get("conv-threshold", 0.0))
    last = None
    for k in range(epochs):
        f, g = fun_grad(np.asarray(u))
        updates, state = opt.update(jnp.asarray(g), state, u)
        u = jnp.clip(optax.apply_updates(u, updates), lower, upper)
        keep["adam"] = {"count": int(state[0].count), "mu": np.asarray(state[0].mu).tolist(),
                        "nu": np.asarray(state[0].nu).tolist()}
        callback(np.asarray(u))
        if last is not None and abs(last - f) <= tol * max(abs(f), 1.0):
            return Outcome(np.asarray(u), True, "relative change below conv-threshold", k + 1)
        last = f
    return Outcome(np.asarray(u), False, f"stopped after {epochs} epochs", epochs)


def start_points(spec, u0, lower, upper, reset, rng) -> list[np.ndarray]:
    """Starting vectors of ``<multistart>``: the given parameters, then random points in the
    bounds (DOFs without bounds are spread by ±50 % around their value; DOFs with
    ``reset="true"`` always start from their given value)."""
    given = dict(spec.options)
    count = int(given.get("count", given.get("max-iter", 10)) if spec.kind != "nlopt"
                else given.get("maxeval", 10))
    points = [np.array(u0, float)]
    for _ in range(count - 1):
        lo = np.where(np.isfinite(lower), lower, u0 - 0.5 * np.maximum(np.abs(u0), 1.0))
        hi = np.where(np.isfinite(upper), upper, u0 + 0.5 * np.maximum(np.abs(u0), 1.0))
        p = rng.uniform(lo, hi)
        points.append(np.where(reset, u0, p))
    return points


# ------------------------------------------------------------------------ stop messages

#: Raw stop messages (SciPy's, optax loops' and rexfit's own) → plain words.  Patterns are
#: matched case-insensitively against the message with underscores read as spaces; the
#: words may use {tol} (conv-threshold), {gtol} (gradient tolerance), {ftol}, {xtol},
#: {iters} (max-iter) and the pattern's named groups.
STOP_WORDS: tuple[tuple[str, str], ...] = (
    # L-BFGS-B (SciPy; old and new spellings)
    (r"relative reduction of f|rel reduction of f",
     "the objective changed by less than {tol:g} (relative) between iterations"),
    (r"norm of projected gradient|projected gradient is sufficiently small",
     "the gradient fell below {gtol:g} (largest component, within the bounds)"),
    (r"total no\. of iterations reached limit|iteration limit reached|maximum number of "
     r"iterations has been exceeded",
     "the iteration limit (max-iter {iters}) was reached before the convergence test passed"),
    (r"f,g evaluations exceeds limit|max\. number of function evaluations reached|maximum "
     r"number of function evaluations (has been|is) exceeded|evaluated maxfun times",
     "the limit of objective evaluations was reached before the convergence test passed"),
    (r"abnormal|rounding errors prevent progress|stp = stp|linear search failed|unable to "
     r"progress|positive directional derivative",
     "the line search could not lower the objective any further (rounding errors, or a "
     "gradient that does not match the objective); the best point found is kept"),
    (r"cpu exceeding the time limit", "the minimizer's time limit was reached"),
    (r"callback requested halt", "stopped on request"),
    (r"nan result encountered", "the objective became NaN; the best point found is kept"),
    # TNC
    (r"converged \(\|f.n-f.\(n-1\)\| ~= 0\)",
     "the objective stopped changing (relative change below {tol:g})"),
    (r"converged \(\|x.n-x.\(n-1\)\| ~= 0\)", "the parameters stopped changing"),
    (r"local minimum reached \(\|pg\| ~= 0\)", "the projected gradient is zero: a local minimum"),
    # COBYLA (SciPy ≥ 1.16)
    (r"trust region radius reaches its lower bound",
     "the trust region shrank to its lower bound ({tol:g}): no better point nearby"),
    # least_squares
    (r"both `ftol` and `xtol`",
     "the sum of squares and the parameters changed by less than {ftol:g} and {xtol:g} "
     "(relative)"),
    (r"`gtol` termination", "the gradient fell below gtol {gtol:g} (scaled)"),
    (r"`ftol` termination", "the sum of squares changed by less than {ftol:g} (relative)"),
    (r"`xtol` termination", "the parameters changed by less than {xtol:g} (relative)"),
    # rexfit's own loops and stopping rules
    (r"^no parameters to fit", "nothing to fit: the job has no fitted parameters"),
    (r"^the checkpoint used the whole iteration budget",
     "the checkpoint had used the whole iteration budget already"),
    (r"^relative change below conv-threshold",
     "the objective changed by less than {tol:g} (relative) between epochs"),
    (r"^stopped after (?P<n>\d+) epochs",
     "all {n} epochs were run (no convergence test met before)"),
    (r"^linear least squares solved \((?P<how>.*)\)$",
     "linear least squares solved exactly ({how})"),
    (r"^early stopping: the validation objective did not improve for (?P<n>\d+)",
     "early stopping: the validation objective did not improve for {n} epochs; the "
     "parameters with the best validation objective are kept"),
    (r"^maxtime (?P<t>\S+) s reached", "the time limit (maxtime {t} s) was reached"),
    (r"^objective reached stopval (?P<v>\S+)", "the objective reached stopval {v}"),
    (r"^interrupted \(ctrl-c\)", "interrupted (Ctrl-C); the best parameters so far are kept"),
    # generic success (Nelder-Mead, Powell, SLSQP, differential evolution)
    (r"optimization terminated successfully",
     "the minimizer's convergence test (conv-threshold {tol:g}) passed"),
)


def plain_stop(spec, message: str, converged: bool, *, max_iter: int | None = None) -> str:
    """A one-line verdict a person understands for a minimizer's raw stop ``message``:
    ``"converged: …"`` or ``"stopped: …"`` (``converged`` decides), e.g. L-BFGS-B's
    ``CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH`` becomes "converged: the objective
    changed by less than 1e-05 (relative) between iterations".  Unknown messages are kept."""
    head = "converged" if converged else "stopped"
    if message is None:
        return head
    main, _, polished = str(message).partition("; polished with L-BFGS-B (")
    try:
        opts = options(spec) if spec is not None else {}
    except (KeyError, ValueError, TypeError):
        opts = {}
    tol = float(opts.get("conv-threshold", 1e-8) or 0.0)
    values = {"tol": tol, "gtol": float(opts.get("gradient-tolerance", opts.get("gtol", tol))),
              "ftol": float(opts.get("ftol", tol)), "xtol": float(opts.get("xtol", tol)),
              "iters": max_iter if max_iter is not None else opts.get("max-iter", "?")}
    text = main.replace("_", " ")
    words = main.strip()
    for pattern, template in STOP_WORDS:
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            words = template.format(**values, **m.groupdict())
            break
    if polished:
        words += "; then polished with L-BFGS-B"
    return f"{head}: {words}"
