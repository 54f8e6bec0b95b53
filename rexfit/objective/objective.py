"""The objective of SPEC §4 over the fit vector u, with its exact gradient.

Each evaluation relaxes every structure at the current parameters (warm-started from its last
relaxed state), then evaluates each structure's jitted term and, if asked, its parameter
gradient through the relaxation (implicit differentiation). The training objective sums the
training structures; the validation objective, computed the same way, is reported only.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.datasets.buckets import pooled_rows
from rexfit.errors import CalculationFailed, InputError, InputErrors
from rexfit.job import spec as s
from rexfit.model.datasets import auto_kappa, load_dataset, with_kappa
from rexfit.model.potentials import get_path
from rexfit.model.structures import build_structure
from rexfit.objective.dataset_term import CLOSE_DISTANCE, DatasetTerm
from rexfit.objective.networks import initialise_networks
from rexfit.objective.parameters import ParameterSpace
from rexfit.objective.terms import (
    SQUARED_STYLES,
    FittedProperty,
    StructureTerm,
    share_programs,
    term_residuals_and_jacobian,
    term_value,
    term_value_and_grad,
)
from rexfit.objective.weights import absolute_weights, tolerance
from rexfit.physics.named import to_host
from rexfit.physics.properties import EV_PER_A3_TO_GPA
from rexfit.physics.relax import (RelaxProblem, Relaxed, device_array, relax,
                                  share_capacities)


#: Fitted parameters named in a failure report (the rest are counted).
MAX_NAMED_PARAMETERS = 12


def failed_relaxation(relaxed: Relaxed) -> str | None:
    """"the relaxation …" if ``relaxed`` has no usable geometry (collapsed, diverged), else
    None; the term's values mean nothing then."""
    if np.all(np.isfinite(relaxed.x)):
        return None
    return f"the relaxation {relaxed.message}"


def _close_atoms(relaxed: Relaxed) -> str:
    """"; atoms i and j are d Å apart" for the closest listed pair of ``relaxed`` if closer
    than :data:`CLOSE_DISTANCE`, else ""."""
    nbrs = relaxed.nbrs
    if nbrs is None:
        return ""
    pos = np.asarray(relaxed.system.positions, float)
    cell = np.asarray(relaxed.system.cell, float)
    mask = np.asarray(nbrs.mask, bool)
    i, j = np.asarray(nbrs.i)[mask], np.asarray(nbrs.j)[mask]
    with np.errstate(all="ignore"):
        d = np.linalg.norm(pos[j] - pos[i] + np.asarray(nbrs.shifts)[mask] @ cell, axis=1)
    if not d.size or not np.nanmin(d) < CLOSE_DISTANCE:
        return ""
    k = int(np.nanargmin(d))
    who = (f"atom {i[k] + 1} and its periodic image" if i[k] == j[k]
           else f"atoms {i[k] + 1} and {j[k] + 1}")
    return f"; {who} are {d[k]:.3g} Å apart"


def _add_subtree(gsum, tree, key: str, g):
    """``gsum`` (a gradient tree like ``tree``, or None for zeros) plus ``g`` at
    ``tree[key]`` (on the host)."""
    if gsum is None:
        gsum = jax.tree.map(lambda a: np.zeros(np.shape(a)), tree)
    gsum = dict(gsum)
    gsum[key] = jax.tree.map(lambda a, b: np.asarray(a) + np.asarray(b), gsum[key], g)
    return gsum


def _value_text(name: str, value) -> str:
    """``name = nan`` for a scalar, ``name: nan in 3 of 12 components`` for a vector."""
    if value is None:
        return f"{name} is not finite"
    a = np.asarray(value, float)
    if a.size == 1:
        return f"{name} = {float(a.reshape(-1)[0]):g}"
    bad = int(np.count_nonzero(~np.isfinite(a)))
    return f"{name}: {bad} of {a.size} components not finite"


def _padded(directions: np.ndarray, cap: int | None) -> np.ndarray:
    """``directions`` (P, K) with zero columns added up to the next power of two of K, at
    most ``cap`` (None or K ≥ cap: as they are)."""
    k = directions.shape[1]
    if cap is None or k >= cap or k == 0:
        return directions
    width = min(cap, 1 << (k - 1).bit_length())
    return np.pad(directions, ((0, 0), (0, width - k)))


def target_of(p: s.PropertySpec | None, name: str, model, natoms: int | None = None):
    """A property's target: its ``target`` attribute, else the structure file's reference
    data (energy, energy per ``natoms`` atoms, forces, stress); None if there is none."""
    if p is not None and p.target is not None:
        return list(p.target) if isinstance(p.target, tuple) else p.target
    ref = model.reference
    if name == "atomic-forces" and ref.forces is not None:
        return np.asarray(ref.forces).tolist()
    if name == "stress" and ref.stress is not None:
        return (np.asarray(ref.stress) * EV_PER_A3_TO_GPA).tolist()
    if name == "total-energy" and ref.energy is not None:
        return float(ref.energy)
    if name == "atomic-energy" and ref.energy is not None and natoms:
        return float(ref.energy) / natoms
    return None


@dataclass
class StructureResult:
    """One structure at one evaluation: its term value, property values (host), relaxation."""

    value: float
    properties: dict
    relaxed: Relaxed


@dataclass
class Evaluation:
    value: float  # objective of the requested set(s)
    grad: np.ndarray | None  # ∂value/∂u, or None
    structures: dict[str, StructureResult] = field(default_factory=dict)
    datasets: dict[tuple[str, str], float] = field(default_factory=dict)  # (id, set) -> value
    params: object = None  # the parameter tree evaluated
    #: the regularisation terms in ``value`` (training set only): {"l2": …, "l1": …,
    #: "<potential id>: <penalty>": …}
    regularization: dict[str, float] = field(default_factory=dict)


class Objective:
    """Objective and gradient of a job over the scaled fit vector of ``space``."""

    def __init__(self, job: s.JobSpec, space: ParameterSpace, *, share: bool = True):
        """``share=False`` gives every structure programs of its own
        (:func:`~rexfit.objective.terms.share_programs` not applied).  :attr:`job` is
        ``job`` with the weights of datasets with ``kappa="auto"`` set from their data."""
        self.space = space
        #: (dataset id, set) -> the dataset's part of that set's objective
        self.datasets: dict[tuple[str, str], DatasetTerm] = {}
        batch = None
        if job.fitting is not None and job.fitting.minimizer.kind == "adam":
            batch = dict(job.fitting.minimizer.options).get("batch-size")
        with pooled_rows():  # descriptor rows of every dataset computed together
            loaded_all = [load_dataset(ds, space.pm.species)  # file errors: InputErrors
                          for ds in job.all_datasets()]
            #: {dataset id: κ} of the datasets with kappa="auto" (pacemaker's formula)
            self.kappas = {d.spec.id: auto_kappa(d) for d in loaded_all if d.spec.kappa_auto}
            job = with_kappa(job, self.kappas)
            weights = {"training": absolute_weights(job.structures),
                       "validation": absolute_weights(job.structures, validation=True)}
            for loaded in loaded_all:
                ds = loaded.spec
                for set_name in ("training", "validation"):
                    if loaded.of(set_name):
                        self.datasets[(ds.id, set_name)] = DatasetTerm.create(
                            loaded, set_name, weights[set_name], job.tolerance_preset,
                            space.pm.potential, len(space.pm.species),
                            batch_structures=batch if set_name == "training" else None)
        self.job = job
        #: log lines of the data-dependent set-up (network normalisation)
        params, starts, self.notes = initialise_networks(job, space.pm, self.datasets)
        self.notes = list(self.notes) + [
            f"dataset '{did}': kappa auto = {k:.6g} (energies weigh {1 - k:.6g}, forces {k:.6g})"
            for did, k in self.kappas.items()]
        space.pm = dataclasses.replace(space.pm, params=params)
        for path, value in starts.items():
            try:
                space.set_initial(path, value)
            except KeyError:  # the bias is not fitted
                pass
        pm = space.pm
        self.terms: dict[str, StructureTerm] = {}
        self.sets: dict[str, str] = {}
        self.models = {}
        missing: list[InputError] = []
        for st in job.all_structures():
            model = build_structure(st, pm.species)
            problem = RelaxProblem(model, pm.potential)
            set_name = "training" if st.fit else "validation"
            natoms = problem.nreal
            fitted = []
            for p in st.properties:
                w = weights[set_name].get((st.id, p.name))
                target = target_of(p, p.name, model, natoms)
                if w is not None and target is None and p.fit:
                    missing.append(InputError(
                        f"structure '{st.id}', property {p.name}: fit='true' but there is no "
                        "target (no target attribute, and the structure file has none)",
                        p.origin))
                if w is None or target is None:
                    continue
                fitted.append(FittedProperty(p.name, w, tolerance(p, natoms, job.tolerance_preset),
                                             p.residual_style, np.asarray(target, float)))
            self.terms[st.id] = StructureTerm(st, problem, pm.potential,
                                              frozenset(p.name for p in st.properties),
                                              tuple(fitted))
            self.sets[st.id] = set_name
            self.models[st.id] = model
        if missing:
            raise InputErrors(missing)
        if share:
            share_programs(self.terms.values())
        failed = share_capacities([t.problem for t in self.terms.values()])
        if failed:  # the given geometry (or the potential's cutoff) cannot be listed
            raise InputErrors([InputError(f"structure '{t.id}': {failed[t.problem]}",
                                          t.spec.origin)
                               for t in self.terms.values() if t.problem in failed])
        self._state: dict[str, tuple[np.ndarray, object]] = {}
        self._tree = jax.jit(space.tree)
        #: the potentials' penalties (ACE's radial smoothness), each with its jitted value
        #: and gradient with respect to its potential's params subtree
        self.penalties = [(p, jax.jit(jax.value_and_grad(p.fn)))
                          for p in space.pm.penalties]
        self.evaluations = 0
        #: (term key, neighbour-list shapes) of the gradient programs compiled so far
        self._graded: set = set()
        self._tree_jacobian = None
        #: pad the datasets' Jacobian directions to a power of two up to this (None: no)
        self.column_cap: int | None = None

    def has_validation(self) -> bool:
        """True if the job has a validation set (structures or dataset entries)."""
        return bool(self.ids(("validation",))) or any(
            set_name == "validation" for _, set_name in self.datasets)

    def with_space(self, space: ParameterSpace, column_cap: int | None = None) -> "Objective":
        """This objective over another parameter space of the same potentials (other DOFs
        fitted, other start values: a ladder step); the structures, datasets, relaxed
        states and compiled programs are shared, nothing is built again.  The datasets'
        Jacobians are computed for a power of two of directions up to ``column_cap``
        (default: this objective's number of fitted parameters), so that spaces of
        different sizes share a few programs."""
        other = copy.copy(self)
        other.space = space
        other._state = dict(self._state)
        other._tree = jax.jit(space.tree)
        other._tree_jacobian = None
        other.evaluations = 0
        other.column_cap = self.space.size if column_cap is None else column_cap
        return other

    def ids(self, sets=("training",)) -> list[str]:
        return [k for k, v in self.sets.items() if v in sets]

    def evaluate(self, u, *, grad: bool = True, sets=("training",),
                 fresh: bool = False, picked: dict | None = None,
                 datasets: bool = True) -> Evaluation:
        """Objective (and ∂/∂u) summed over the structures of ``sets``.

        ``fresh`` relaxes every structure from its given DOFs instead of warm-starting.
        ``picked`` ({(dataset id, set): [chunk keys]}, with ``grad``): only those chunks of the
        datasets, each dataset's part scaled by (its chunks / chunks picked) — a minibatch.
        ``datasets=False`` leaves the datasets out (the output phase takes their values from
        the per-entry records instead)."""
        if self.space.linear:  # the tree on the host: no program for it
            tree, pull = self.space.host_tree(u), self.space.host_pullback
        elif grad:
            tree, vjp = jax.vjp(self._tree, device_array(np.asarray(u, float)))
            pull = lambda g: np.asarray(vjp(g)[0])  # noqa: E731
        else:
            tree = self._tree(device_array(np.asarray(u, float)))
        total, gsum = 0.0, None
        results = {}
        with_datasets, datasets = datasets, {}
        for sid in self.ids(sets):
            term = self.terms[sid]
            relaxed = self._relax(term, tree, fresh)
            args = (tree, device_array(relaxed.x), device_array(relaxed.free),
                    relaxed.nbrs)
            program = (term.key, tuple(np.shape(a) for a in jax.tree.leaves(relaxed.nbrs)))
            if grad:
                (value, props), g = term_value_and_grad(term, *args)
                gsum = g if gsum is None else jax.tree.map(np.add, gsum, g)  # on the host
                self._graded.add(program)
            elif program in self._graded:
                # the gradient program is compiled already: reuse it rather than compiling a
                # value-only one (compilation costs far more than the unused gradient)
                (value, props), _ = term_value_and_grad(term, *args)
            else:
                value, props = term_value(term, *args)
            value = float(value) if failed_relaxation(relaxed) is None else math.nan
            total += value
            results[sid] = StructureResult(value, props, relaxed)
        for (did, set_name), dterm in self.datasets.items():
            if set_name not in sets or not with_datasets:
                continue
            chunks = None if picked is None else picked.get((did, set_name))
            if picked is not None and not chunks:
                continue
            scale = 1.0 if chunks is None else len(dterm.engine.chunk_keys) / len(chunks)
            if grad:
                value, g = dterm.engine.value_and_grad(tree, chunks)
                if scale != 1.0:
                    value, g = scale * value, jax.tree.map(lambda a: scale * np.asarray(a), g)
                gsum = g if gsum is None else jax.tree.map(np.add, gsum, g)  # on the host
            else:
                value = dterm.engine.value(tree)
            total += float(value)
            datasets[(did, set_name)] = float(value)
        self.evaluations += 1
        regularization = {}
        if "training" in sets:
            for pen, value_and_grad in self.penalties:
                value, g = value_and_grad(tree[pen.potential])
                regularization[f"{pen.potential}: {pen.name}"] = float(value)
                total += float(value)
                if grad:
                    gsum = _add_subtree(gsum, tree, pen.potential, g)
        gu = None
        if grad:
            gu = pull(gsum) if gsum is not None else np.zeros(self.space.size)
        if "training" in sets and (self.space.regularised or np.any(self.space.l1 > 0.0)):
            p = np.asarray(u, float) * self.space.scale
            for key, lam in (("l2", self.space.l2), ("l1", self.space.l1)):
                if np.any(lam > 0.0):
                    part = lam * (p * p if key == "l2" else np.abs(p))
                    regularization[key] = float(np.sum(part))
                    total += regularization[key]
            if grad:
                gu = gu + (2.0 * self.space.l2 * p + self.space.l1 * np.sign(p)) \
                    * self.space.scale
        return Evaluation(total, gu, results, datasets, tree, regularization)

    def training_entries(self) -> int:
        """Number of dataset entries in the training set."""
        return sum(len(t.engine.items) for (_, s_), t in self.datasets.items()
                   if s_ == "training")

    def minibatch_units(self) -> list[tuple[tuple[str, str], tuple[int, int], int]]:
        """Every chunk of the training datasets: ((dataset id, set), chunk key, structures)."""
        return [(key, c, term.engine.chunk_structures(c))
                for key, term in self.datasets.items() if key[1] == "training"
                for c in term.engine.chunk_keys]

    def evaluate_minibatch(self, u, picked) -> tuple[float, np.ndarray]:
        """An unbiased estimate of the training objective and its gradient: every training
        structure, plus the dataset chunks ``picked`` ({(dataset id, set): [chunk keys]})
        scaled by (chunks of the dataset / chunks picked)."""
        ev = self.evaluate(u, grad=True, picked=picked)
        return ev.value, ev.grad

    def least_squares_ready(self) -> str | None:
        """None if the training objective is a sum of squares (every fitted property of a
        training structure has a squared residual style, no L1 term, no penalty that is not
        a square), else the reason it is not."""
        l1 = [e.name for e, lam in zip(self.space.fitted, self.space.l1) if lam > 0.0]
        if l1:
            return (f"the L1 regularisation of {l1[0]}"
                    + (f" (and {len(l1) - 1} more parameters)" if len(l1) > 1 else "")
                    + " is a sum of absolute values, not of squares (for <linear-solve>, "
                    "its l1 attribute is an L1 term it can solve)")
        for pen, _ in self.penalties:
            return (f"potential '{pen.potential}' ({pen.origin}) has a {pen.name} term, "
                    "a sum of absolute values, not of squares")
        for sid in self.ids(("training",)):
            for fp in self.terms[sid].fitted:
                if fp.style not in SQUARED_STYLES:
                    return (f"structure '{sid}', property {fp.name} has residual-style "
                            f"'{fp.style}', which is not a square")
        return None

    def residuals(self, u) -> tuple[np.ndarray, np.ndarray]:
        """(r, J): the training residual vector (objective = Σ r²) and its exact Jacobian
        ∂r/∂u (rows: structures in job order, then dataset entries)."""
        tree = self.params(u)
        # ∂ ravel(tree) / ∂u, to turn Jacobians with respect to the tree into ones in u
        t_u = self._tree_directions(u)
        rows, jacs = [], []
        for sid in self.ids(("training",)):
            term = self.terms[sid]
            if not term.fitted:
                continue
            relaxed = self._relax(term, tree)
            r, jac = term_residuals_and_jacobian(term, tree, device_array(relaxed.x),
                                                 device_array(relaxed.free), relaxed.nbrs)
            if failed_relaxation(relaxed) is not None:  # its values mean nothing
                r = np.full(np.shape(r), np.nan)
            leaves = [np.asarray(j).reshape(np.shape(r)[0], -1)
                      for j in jax.tree_util.tree_leaves(jac)]
            rows.append(np.asarray(r))
            with np.errstate(all="ignore"):  # non-finite rows are reported by the caller
                jacs.append(np.concatenate(leaves, axis=1) @ t_u)
        for (did, set_name), dterm in self.datasets.items():
            if set_name != "training":
                continue
            # J·(∂tree/∂u), not J; with a column cap (ladder steps) the directions are padded
            # with zero columns to a power of two, so that fewer programs are compiled
            r, jac = dterm.engine.residuals_and_jacobian(tree, _padded(t_u, self.column_cap))
            jac = jac[:, :t_u.shape[1]]
            rows.append(r)
            jacs.append(jac)
        self.evaluations += 1
        if self.space.regularised:  # λ_k p_k² as residual rows √λ_k p_k
            weight = np.sqrt(self.space.l2) * self.space.scale
            rows.append(weight * np.asarray(u, float))
            jacs.append(np.diag(weight))
        if not rows:
            return np.zeros(0), np.zeros((0, self.space.size))
        return np.concatenate(rows), np.concatenate(jacs)

    def _relax(self, term: StructureTerm, tree, fresh: bool = False) -> Relaxed:
        """``term``'s structure relaxed at parameters ``tree``, warm-started from its last
        relaxed state unless ``fresh`` (retried from the start if that fails)."""
        x0, nbrs = (None, None) if fresh else self._state.get(term.id, (None, None))
        relaxed = relax(term.problem, term.potential, tree, x0, nbrs)
        if not np.all(np.isfinite(relaxed.x)) and x0 is not None:
            relaxed = relax(term.problem, term.potential, tree)  # retry from the start
        if np.all(np.isfinite(relaxed.x)):
            self._state[term.id] = (relaxed.x, relaxed.nbrs)
        else:  # never warm-start from a failed relaxation
            self._state.pop(term.id, None)
        return relaxed

    def host_properties(self, result: StructureResult) -> dict:
        failed = failed_relaxation(result.relaxed)
        if failed is not None:
            raise CalculationFailed(f"at the current parameters, {failed}")
        values = to_host(result.properties)
        bad = [k for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, float)))]
        if bad:
            raise CalculationFailed(f"non-finite {', '.join(bad)} at the current parameters"
                                    + _close_atoms(result.relaxed))
        return values

    def explain(self, u, *, residuals: bool = False) -> list[str]:
        """Why the training objective (with ``residuals``: its residual vector or Jacobian)
        is not finite at fit vector ``u``: a line per structure or dataset entry whose part is
        not finite (which property; a failed relaxation; atoms on top of each other), then the
        fitted parameter values.  Evaluates every part on its own, on the host: for failure
        reports only."""
        u = np.asarray(u, float)
        tree = self.params(u)
        lines = []
        for sid in self.ids(("training",)):
            term = self.terms[sid]
            if not term.fitted:
                continue
            try:
                line = self._explain_structure(term, tree, residuals)
            except Exception as exc:  # noqa: BLE001 — a report must not fail itself
                line = f"cannot be evaluated ({type(exc).__name__}: {exc})"
            if line is not None:
                lines.append(f"structure '{sid}' ({term.spec.origin}): {line}")
        t_u = None
        for (did, set_name), dterm in self.datasets.items():
            if set_name != "training":
                continue
            try:
                if t_u is None:
                    t_u = self._tree_directions(u)
                lines.extend(dterm.explain(tree, t_u, jacobian=residuals))
            except Exception as exc:  # noqa: BLE001 — a report must not fail itself
                lines.append(f"dataset '{did}': cannot be evaluated "
                             f"({type(exc).__name__}: {exc})")
        if not lines:
            lines.append("no structure or dataset entry is non-finite on its own")
        lines.append(self.parameter_line(u))
        return lines

    def parameter_line(self, u) -> str:
        """The fitted parameters at fit vector ``u``: names and values (the first
        :data:`MAX_NAMED_PARAMETERS`)."""
        values = self.space.values(u)
        named = [f"{e.name} = {v:.10g}" for e, v in zip(self.space.fitted, values)]
        if not named:
            return "no fitted parameters"
        more = len(named) - MAX_NAMED_PARAMETERS
        text = ", ".join(named[:MAX_NAMED_PARAMETERS])
        return f"fitted parameters: {text}" + (f" (and {more} more)" if more > 0 else "")

    def params(self, u):
        """The parameter tree at fit vector ``u`` (on the host when the map is linear)."""
        if self.space.linear:
            return self.space.host_tree(u)
        return self._tree(device_array(np.asarray(u, float)))

    def _tree_directions(self, u) -> np.ndarray:
        """∂ ravel(tree) / ∂u at ``u`` (host)."""
        from jax.flatten_util import ravel_pytree

        if self.space.linear:
            return self.space.host_directions()
        if self._tree_jacobian is None:
            self._tree_jacobian = jax.jit(jax.jacfwd(
                lambda v: ravel_pytree(self.space.tree(v))[0]))
        return np.asarray(self._tree_jacobian(jnp.asarray(u)))

    def _explain_structure(self, term: StructureTerm, tree, residuals: bool) -> str | None:
        """What is not finite in ``term`` at parameters ``tree``, or None."""
        relaxed = self._relax(term, tree)
        failed = failed_relaxation(relaxed)
        if failed is not None:
            return failed
        args = (tree, device_array(relaxed.x), device_array(relaxed.free), relaxed.nbrs)
        bad_values, bad_slopes, bad_params = [], [], []
        if residuals:
            r, jac = term_residuals_and_jacobian(term, *args)
            r = np.asarray(r)
            rows = np.concatenate([np.asarray(j).reshape(r.shape[0], -1)
                                   for j in jax.tree_util.tree_leaves(jac)], axis=1)
            start = 0
            for fp in term.fitted:
                part = slice(start, start + int(np.size(fp.target)))
                start = part.stop
                if not np.all(np.isfinite(r[part])):
                    bad_values.append(fp.name)
                elif not np.all(np.isfinite(rows[part])):
                    bad_slopes.append(fp.name)
            props = None
        else:
            (value, props), g = term_value_and_grad(term, *args)
            props = to_host(props)
            bad_values = [fp.name for fp in term.fitted
                          if not np.all(np.isfinite(np.asarray(props[fp.name], float)))]
            if not bad_values and not np.isfinite(float(value)):
                bad_values = [fp.name for fp in term.fitted]
            if not bad_values:
                bad_params = [e.name for e in self.space.fitted
                              if not np.all(np.isfinite(np.asarray(get_path(g, e.path))))]
        if not bad_values and not bad_slopes and not bad_params:
            return None
        parts = []
        if bad_values:
            parts.append(", ".join(_value_text(n, None if props is None else props.get(n))
                                   for n in bad_values))
        if bad_slopes:
            parts.append("the parameter derivative of " + ", ".join(bad_slopes)
                         + " is not finite")
        if bad_params:
            parts.append("its derivative with respect to " + ", ".join(bad_params)
                         + " is not finite")
        text = "; ".join(parts) + _close_atoms(relaxed)
        if not relaxed.converged and relaxed.message:
            text += f" (relaxation {relaxed.message})"
        return text
