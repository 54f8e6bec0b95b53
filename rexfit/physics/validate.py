"""``<validate-potentials/>``: autodiff forces, stress and ``<derivative>`` expressions checked
against finite differences before fitting.

* :func:`check_structure` compares the forces of :func:`rexfit.physics.properties.forces` and
  the stress of :func:`rexfit.physics.properties.stress` with finite differences (O(h⁴)
  central and one-sided stencils, three step sizes) of the energy with respect to atom
  coordinates and to a homogeneous Voigt strain.
* :func:`check_function_derivatives` compares each ``<user-function>``'s hand-written
  ``<derivative>`` with ``jax.grad`` of its ``<expression>``; the job hands over its user
  functions already named (``JobSpec.user_functions``), so this module imports nothing of
  :mod:`rexfit.job`.
* :func:`validate_potentials` runs both over a job and returns printable lines and a verdict.

Everything here is host-side and meant for the small cells of a fit; it is a diagnostic, not
part of the fitted objective.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rexfit import expr as ex
from rexfit.errors import Origin
from rexfit.physics import properties
from rexfit.physics.properties import EV_PER_A3_TO_GPA
from rexfit.physics.strain import deform, voigt_to_strain
from rexfit.potentials.base import Params, Potential
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System

#: Forces pass if max |F_autodiff − F_fd| ≤ FORCE_TOLERANCE · max(1, force_scale) (eV/Å).
FORCE_TOLERANCE = 1e-6
#: Stress passes if max |σ_autodiff − σ_fd| ≤ STRESS_TOLERANCE (GPa).
STRESS_TOLERANCE = 1e-4
#: A ``<derivative>`` passes if its relative error is ≤ DERIVATIVE_TOLERANCE.
DERIVATIVE_TOLERANCE = 1e-6

#: At most this many (real) atoms are displaced by :func:`check_structure`.
MAX_ATOMS = 8
#: Number of sample points of :func:`check_function_derivatives`.
SAMPLES = 20

# Finite-difference stencils f'(0) ≈ Σ_k W[s, k] f(O_k h) / h on the points O_k h: the 4-point
# central stencil and the 5-point one-sided ones (forward, backward), all with error O(h⁴).
_OFFSETS = np.arange(-4.0, 5.0)
_STENCILS = np.array([
    [0, 0, 1, -8, 0, 8, -1, 0, 0],
    [0, 0, 0, 0, -25, 48, -36, 16, -3],
    [3, -16, 36, -48, 25, 0, 0, 0, 0],
]) / 12.0
#: Finite-difference steps, as fractions of ``step`` (see :func:`check_structure`).
_STEP_FRACTIONS = (1.0, 0.1, 0.01)
#: Displaced configurations evaluated together (bounds the memory of the vmapped energy).
_CHUNK = 32


# ============================================================================ structures


@partial(jax.jit, static_argnums=0)
def _energies(potential: Potential, params: Params, system: System, nbrs: NeighborList,
              positions: jax.Array, voigt: jax.Array) -> jax.Array:
    """Energies (B,) eV of ``system`` with positions[b] (B, N, 3), then strained by voigt[b]."""

    def one(args):
        x, v = args
        return potential.energy(params, deform(system.replace(positions=x), voigt_to_strain(v)),
                                nbrs)

    return jax.lax.map(one, (positions, voigt), batch_size=_CHUNK)


def check_structure(potential: Potential, params: Params, system: System, nbrs: NeighborList,
                    *, step: float = 1e-4) -> dict[str, Any]:
    """Autodiff forces and stress of one structure against finite differences of its energy.

    Forces: each Cartesian coordinate of the first :data:`MAX_ATOMS` real atoms (mask True;
    the rest are not displaced, to bound the cost) is moved to x + o·h, o = −4 … 4, and −∂E/∂x
    estimated by the 4-point central stencil (±h, ±2h) and by the 5-point one-sided ones.
    Stress (only when the cell is periodic in all three directions): the same on E(ε) for each
    Voigt strain component (xx yy zz yz xz xy, engineering shears), σ_i = (1/V) ∂E/∂ε_i,
    compared with :func:`rexfit.physics.properties.stress`.

    The stencils are applied with h = ``step``, ``step``/10 and ``step``/100 (Å, or
    dimensionless strain) and each component keeps the estimate closest to autodiff.  A
    potential whose energy jumps at a hard cutoff (unshifted Lennard-Jones, lj/cut) spoils any
    stencil that reaches across the jump, and with a single central difference at 1e-4 that
    happens for about half of 32-atom LJ cells under strain; a one-sided stencil on the other
    side, or a smaller step, dodges it, and the large step dodges round-off in large total
    energies.  A wrong gradient disagrees with every estimate, so it is still caught.

    All displaced energies are evaluated by one jitted call (compiled once per potential and
    array shapes), :data:`_CHUNK` configurations at a time.

    Returns ``{"force_error": max |ΔF| (eV/Å), "force_scale": max |F| of the checked atoms
    (eV/Å), "stress_error": max |Δσ| (GPa) or None, "stress_scale": max |σ| (GPa) or None,
    "atoms_checked": number of atoms displaced}``, all plain Python floats/ints.
    """
    x0 = np.asarray(system.positions, dtype=np.float64)
    real = np.nonzero(np.asarray(system.mask, dtype=bool))[0][:MAX_ATOMS]
    periodic = all(system.pbc)
    steps = [float(step) * f for f in _STEP_FRACTIONS]

    batch_x, batch_v = [], []
    for h in steps:
        for a in real:
            for k in range(3):
                for o in _OFFSETS:
                    x = x0.copy()
                    x[a, k] += o * h
                    batch_x.append(x)
                    batch_v.append(np.zeros(6))
        if periodic:
            for i in range(6):
                for o in _OFFSETS:
                    v = np.zeros(6)
                    v[i] = o * h
                    batch_x.append(x0)
                    batch_v.append(v)

    result: dict[str, Any] = {"force_error": 0.0, "force_scale": 0.0, "stress_error": None,
                              "stress_scale": None, "atoms_checked": int(len(real))}
    if not batch_x:
        return result
    count = len(batch_x)
    pad = -count % _CHUNK  # whole chunks only: one traced energy, not a second for a remainder
    batch_x += [x0] * pad
    batch_v += [np.zeros(6)] * pad
    e = np.asarray(_energies(potential, params, system, nbrs, jnp.asarray(np.stack(batch_x)),
                             jnp.asarray(np.stack(batch_v))))[:count]
    nf = 3 * len(real)
    with np.errstate(all="ignore"):  # a broken potential may give NaN/inf: report, not raise
        # ∂E/∂(coordinate or strain): (step, component, stencil)
        e = e.reshape(len(steps), -1, len(_OFFSETS))
        derivs = (e @ _STENCILS.T) / np.array(steps)[:, None, None]
        derivs = np.moveaxis(derivs, 2, 1).reshape(-1, derivs.shape[1])  # (estimate, component)
        if nf:
            analytic = np.asarray(properties.forces(potential, params, system, nbrs))[real]
            fd = -derivs[:, :nf].reshape(-1, len(real), 3)
            result["force_error"] = _best_error(analytic, fd)
            result["force_scale"] = float(np.max(np.abs(analytic)))
        if periodic:
            analytic = (np.asarray(properties.stress(potential, params, system, nbrs))
                        * EV_PER_A3_TO_GPA)
            fd = derivs[:, nf:] / float(system.volume) * EV_PER_A3_TO_GPA
            result["stress_error"] = _best_error(analytic, fd)
            result["stress_scale"] = float(np.max(np.abs(analytic)))
    return result


def _best_error(analytic: np.ndarray, fd: np.ndarray) -> float:
    """max over components of min over the estimates (axis 0 of ``fd``) of |analytic − fd|.

    NaN (in either) propagates, so a NaN gradient or energy always fails.
    """
    diff = np.abs(analytic[None] - fd)
    if np.isnan(diff).any():
        return float("nan")
    return float(np.max(np.min(diff, axis=0)))


# ============================================================================ functions


def _sample_range(fn: Any) -> tuple[float, float]:
    if fn.input_var == "rho":
        lo, hi = 0.01, 2.0
    elif fn.cutoff is not None:
        lo, hi = 0.5, fn.cutoff
    else:
        lo, hi = 0.01, 10.0
    if fn.cutoff is not None:
        hi = min(hi, fn.cutoff)
    if lo >= hi:
        lo = 0.1 * hi
    return lo, hi


def _derivative_error(fn: Any) -> tuple[float, float]:
    """(max relative error, x where it occurs) of ``<derivative>`` against jax.grad.

    Both are evaluated on the raw expression (no cutoff, no screening), with the initial
    parameter values and ``cutoff`` bound as :class:`rexfit.potentials.functions.UserFunction`
    binds it.  The error at x is |d_given − d_grad| / max(|d_grad(x)|, 1e-6 · max_x |d_grad|,
    1e-300): relative, with a floor that keeps zero crossings of f′ from dominating.  A point
    where exactly one of the two is non-finite counts as an infinite error; points where both
    are non-finite are skipped.
    """
    arg_names = (fn.input_var, *(p.name for p in fn.params), "cutoff")
    args = (*(p.value for p in fn.params), fn.cutoff if fn.cutoff is not None else 0.0)
    f = ex.compile_expr(fn.expression, arg_names)
    df = ex.compile_expr(fn.derivative, arg_names)
    lo, hi = _sample_range(fn)
    xs = lo + (hi - lo) * (np.arange(SAMPLES) + 0.5) / SAMPLES
    xj = jnp.asarray(xs)
    grad = np.asarray(jax.vmap(jax.grad(lambda x: f(x, *args)))(xj), dtype=np.float64)
    given = np.asarray(jnp.broadcast_to(df(xj, *args), xj.shape), dtype=np.float64)
    ok_g, ok_d = np.isfinite(grad), np.isfinite(given)
    finite = ok_g & ok_d
    scale = float(np.max(np.abs(grad[finite]))) if finite.any() else 0.0
    with np.errstate(all="ignore"):
        denom = np.maximum(np.abs(grad), max(1e-6 * scale, 1e-300))
        err = np.where(finite, np.abs(given - grad) / denom, np.where(ok_g | ok_d, np.inf, 0.0))
    worst = int(np.argmax(err))
    return float(err[worst]), float(xs[worst])


def check_function_derivatives(job: Any) -> list[tuple[str, float, float, Origin]]:
    """(label, max relative error, x at the worst point, origin) per user function with a
    ``<derivative>``, for every potential of ``job``.

    ``job``: a :class:`rexfit.job.spec.JobSpec`, of which only ``job.user_functions()`` is used:
    (label, user-function spec) pairs, the label being the atomicrex-style name of the function,
    e.g. ``Al[EAM].V[user-function]``.  Sample points: :data:`SAMPLES` points spread over
    (0.5, cutoff), or (0.01, 10) without a cutoff, or (0.01, 2) when the input variable is
    ``rho``.
    """
    out: list[tuple[str, float, float, Origin]] = []
    for label, fn in job.user_functions():
        if fn.derivative is None or fn.expression is None:
            continue
        err, x = _derivative_error(fn)
        out.append((label, err, x, fn.origin))
    return out


# ============================================================================ report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _within(error: float | None, tolerance: float) -> bool:
    """error ≤ tolerance, False for NaN."""
    return error is not None and error <= tolerance


def structure_line(sid: str, result: dict[str, Any]) -> tuple[str, bool]:
    """One printable line for a :func:`check_structure` result, and whether it passed."""
    f_tol = FORCE_TOLERANCE * max(1.0, result["force_scale"])
    ok = _within(result["force_error"], f_tol)
    text = (f"structure '{sid}': forces max |dF| = {result['force_error']:.3e} eV/A "
            f"(max |F| {result['force_scale']:.3e}, {result['atoms_checked']} atoms, "
            f"tol {f_tol:.1e})")
    if result["stress_error"] is not None:
        s_ok = _within(result["stress_error"], STRESS_TOLERANCE)
        ok = ok and s_ok
        text += (f"; stress max |ds| = {result['stress_error']:.3e} GPa "
                 f"(max |s| {result['stress_scale']:.3e}, tol {STRESS_TOLERANCE:.0e})")
    else:
        text += "; stress not checked (not periodic)"
    return f"validate-potentials: {text}  {_verdict(ok)}", ok


def function_line(label: str, error: float, x: float, origin: Origin | None) -> tuple[str, bool]:
    """One printable line for a :func:`check_function_derivatives` entry, and whether it passed."""
    ok = _within(error, DERIVATIVE_TOLERANCE)
    where = f" ({origin})" if origin is not None else ""
    text = (f"function {label}{where}: <derivative> vs autodiff max rel. error {error:.3e} "
            f"at x = {x:.6g} (tol {DERIVATIVE_TOLERANCE:.0e})")
    return f"validate-potentials: {text}  {_verdict(ok)}", ok


def validate_potentials(job: Any, potential_model,
                        relaxed_items: Sequence[tuple[str, System, NeighborList]]
                        ) -> tuple[list[str], bool]:
    """Check every structure and every ``<derivative>``; (printable lines, all passed).

    ``potential_model``: :func:`rexfit.model.potentials.build_potentials` of ``job`` (its
    ``potential`` and ``params`` are used).  ``relaxed_items``: (structure id, system, neighbour
    list) per structure.  One line per structure, then one per user function with a
    ``<derivative>``; tolerances: forces :data:`FORCE_TOLERANCE` × max(1, max |F|) eV/Å,
    stress :data:`STRESS_TOLERANCE` GPa, derivatives :data:`DERIVATIVE_TOLERANCE` relative.
    """
    lines: list[str] = []
    passed = True
    for sid, system, nbrs in relaxed_items:
        result = check_structure(potential_model.potential, potential_model.params, system, nbrs)
        line, ok = structure_line(sid, result)
        lines.append(line)
        passed = passed and ok
    for label, error, x, origin in check_function_derivatives(job):
        line, ok = function_line(label, error, x, origin)
        lines.append(line)
        passed = passed and ok
    return lines, passed
