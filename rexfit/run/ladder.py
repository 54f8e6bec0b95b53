"""The training phase of a job whose basis grows in steps (ACE's ``<ladder>``, pacemaker's
ladder fitting): the job's ``<fitting>`` runs once per step, from the previous step's
parameters, with the coefficients of the functions not yet in the basis held at zero (not
fitted).  A function enters at zero, so each step starts at the previous step's objective and
ends no higher.  Every step writes its potential (``<id>.ladder<N>.<ext>``, the functions of
that step only) into the output directory.

The potentials stay those of the whole target basis in every step (a coefficient held at zero
contributes exactly nothing), so the objective of each step shares the structures, datasets and
compiled programs of the first: only the parameter space changes
(:meth:`rexfit.objective.objective.Objective.with_space`).
"""

from __future__ import annotations

from dataclasses import replace

import jax
import numpy as np

from rexfit.errors import InputError, InputErrors
from rexfit.fit import run_fit
from rexfit.fit.driver import FitResult
from rexfit.model.potentials import PotentialModel, get_path
from rexfit.objective.parameters import ParameterSpace
from rexfit.potentials import registry


def ladders(job, pm: PotentialModel) -> list[tuple]:
    """(potential spec, term, ladder) of every potential of ``job`` with a basis ladder.
    :class:`InputErrors` (located at the potential) when a coefficient the ladder adds is not
    fitted: it would stay at zero."""
    terms = dict(pm.potential.terms)
    fitted = {tuple(e.path) for e in pm.entries if e.fit}
    out, errors = [], []
    for pot in job.potentials:
        family = registry.family(pot.kind)
        if family is None or family.ladder is None:
            continue
        lad = family.ladder(pot.family_spec, terms[pot.id], pm.params[pot.id])
        if lad is None:
            continue
        unfitted = [p for p in lad.managed if (pot.id, *p) not in fitted]
        if unfitted:
            errors.append(InputError(
                f"<{pot.kind} id='{pot.id}'> <ladder> adds functions at zero coefficient and "
                f"fits them, but {len(unfitted)} of their coefficients are not fitted: list "
                "<coefficients/> (for every block) in its <fit-dof>", pot.origin))
            continue
        out.append((pot, terms[pot.id], lad))
    if errors:
        raise InputErrors(errors)
    return out


def _held(rungs, k: int) -> set:
    """Parameter paths outside the basis at step ``k`` (0-based)."""
    held = set()
    for pot, _, lad in rungs:
        active = lad.steps[min(k, len(lad.steps) - 1)].active if lad.steps else lad.managed
        held |= {(pot.id, *p) for p in lad.managed - active}
    return held


def _step_space(pm: PotentialModel, tree, held: set, constraints) -> ParameterSpace:
    """The parameter space of one step: the job's fitted DOFs except ``held``, starting from
    their values in ``tree``."""
    host = jax.tree.map(np.asarray, tree)
    entries = tuple(replace(e, fit=e.fit and tuple(e.path) not in held,
                            initial=float(get_path(host, e.path))) for e in pm.entries)
    return ParameterSpace(replace(pm, params=tree, entries=entries), constraints)


def run_ladder(objective, job, rungs, log, write, *, max_iter=None, tty=None) -> FitResult:
    """Fit ``objective`` step by step along ``rungs`` (:func:`ladders`); ``write(name, text)``
    writes a file into the output directory.  Returns one :class:`FitResult` for the whole
    ladder: ``u`` in ``objective.space``, counts and times summed, history and progress
    joined (iterations counted on), the last step's verdict and gradient norm, and
    ``ladder``: one record per step (functions, objective, iterations, file)."""
    space = objective.space
    pm = space.pm
    nsteps = max(len(lad.steps) for _, _, lad in rungs)
    if nsteps == 0:
        log("Ladder: the start already holds the whole basis; one fit")
        return run_fit(objective, job.fitting, log, max_iter=max_iter, tty=tty)
    if job.fitting.checkpoint_interval:
        log("Note: no checkpoints are written while the basis grows by a ladder")
    tree = pm.params
    fits, records = [], []
    for k in range(nsteps):
        step_space = _step_space(pm, tree, _held(rungs, k), job.constraints)
        parts = []
        for pot, _, lad in rungs:
            step = lad.steps[min(k, len(lad.steps) - 1)]
            added = step.added if k < len(lad.steps) else 0
            parts.append(f"<{pot.kind} id='{pot.id}'> {step.functions} of {lad.total} "
                         f"functions (+{added})")
        log(f"Ladder step {k + 1} of {nsteps}: {'; '.join(parts)}, "
            f"{step_space.size} fitted parameter(s)")
        step_objective = objective.with_space(step_space)
        fit = run_fit(step_objective, job.fitting, log, max_iter=max_iter, tty=tty)
        tree = step_objective.params(fit.u)
        files = []
        for pot, term, lad in rungs:
            if k >= len(lad.steps):
                continue
            name = f"{pot.id}.ladder{k + 1}.{lad.suffix}"
            header = (f"rexfit ladder step {k + 1} of {nsteps} of job '{job.name}': "
                      f"{lad.steps[k].functions} functions, objective {fit.value:.10g}")
            path = write(name, lad.text(term, tree[pot.id], k, header))
            log(f"Wrote {path}")
            files.append(name)
        log(f"Ladder step {k + 1} of {nsteps}: objective {fit.value:.10g}, fit {fit.verdict} "
            f"({fit.iterations} iterations, {fit.seconds:.1f} s)")
        fits.append(fit)
        records.append({"step": k + 1, "functions": [lad.steps[min(k, len(lad.steps) - 1)]
                                                     .functions for _, _, lad in rungs],
                        "added": [lad.steps[k].added if k < len(lad.steps) else 0
                                  for _, _, lad in rungs],
                        "fitted_parameters": step_space.size, "objective": fit.value,
                        "iterations": fit.iterations, "evaluations": fit.evaluations,
                        "converged": fit.converged, "seconds": fit.seconds, "files": files})
        if fit.interrupted:
            log(f"Ladder stopped at step {k + 1} of {nsteps} (interrupted)")
            break
    return _joined(space, tree, fits, records)


def _joined(space: ParameterSpace, tree, fits: list, records: list) -> FitResult:
    """One FitResult for the steps ``fits``, at parameters ``tree`` in ``space``."""
    host = jax.tree.map(np.asarray, tree)
    values = np.array([float(get_path(host, e.path)) for e in space.fitted])
    history, progress, offset = [], [], 0
    for k, fit in enumerate(fits):
        history += [[h[0] + offset, *h[1:]] for h in fit.history]
        progress += [dict(p, iteration=p.get("iteration", 0) + offset, ladder_step=k + 1)
                     for p in fit.progress]
        offset += fit.iterations
    last = fits[-1]
    return FitResult(method=last.method, u=values / space.scale, value=last.value,
                     iterations=sum(f.iterations for f in fits),
                     evaluations=sum(f.evaluations for f in fits), converged=last.converged,
                     message=last.message, seconds=sum(f.seconds for f in fits),
                     grad_norm=last.grad_norm, history=history,
                     interrupted=any(f.interrupted for f in fits), verdict=last.verdict,
                     warnings=list(last.warnings), progress=progress, ladder=records)
