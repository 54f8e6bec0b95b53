"""Running a job: build the model and objective, training phase, output phase, write results.

Flow: JobSpec → PotentialModel + Objective (structures, weights) → fit (rexfit.fit) →
one evaluation of both sets → records → log lines, tables, results.json, parameters.xml,
exports (SPEC §2, §6).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field

import jax
import numpy as np

from rexfit import __version__
from rexfit.errors import CalculationFailed, InputError, InputErrors
from rexfit.fit import run_fit
from rexfit.job import spec as s
from rexfit.job.language import DOF_PROPERTIES, PROPERTIES, RELAX_DOFS
from rexfit.model.potentials import PotentialModel, build_potentials
from rexfit.objective.objective import Objective, target_of
from rexfit.objective.parameters import ParameterSpace
from rexfit.objective.terms import residual
from rexfit.objective.weights import absolute_weights, tolerance
from rexfit.report import lines as rl
from rexfit.export.job_files import (
    changed_parameters,
    export_potentials,
    write_fitted_parameters,
    write_parameters,
)
from rexfit.files import write_json, write_text
from rexfit.report.metrics import dataset_metrics, dataset_records, metrics_table
from rexfit.report.heartbeat import Heartbeat
from rexfit.report.structure_files import write_structure
from rexfit.run.ladder import ladders, run_ladder
from rexfit.timing import Clock, progress


@dataclass
class Log:
    """Everything printed, kept for log.txt."""

    quiet: bool = False
    text: list[str] = field(default_factory=list)
    #: monotonic time of the last output (the heartbeat speaks after a silence)
    last_output: float = field(default_factory=time.monotonic)
    #: True once the fit shows its own progress
    fit_started: bool = False
    #: called before a line is printed (the heartbeat clears its live line)
    before_print: object = None

    def __call__(self, line: str = "") -> None:
        self.text.append(line)
        if not self.quiet:
            if self.before_print is not None:
                self.before_print()
            print(line, flush=True)
        self.touch()

    def file_only(self, line: str) -> None:
        """A line for log.txt only (the terminal shows a live progress line instead)."""
        self.text.append(line)
        self.touch()

    def touch(self) -> None:
        """Something was shown (also the fit's live progress line)."""
        self.last_output = time.monotonic()


def output_dir_for(job: s.JobSpec, override: str | None) -> str:
    if override:
        return override
    stem = os.path.splitext(os.path.basename(job.path))[0]
    return os.path.join(os.path.dirname(os.path.abspath(job.path)), f"{stem}.rexfit")


#: How to choose another output directory (command line and Python API).
_OTHER_DIR = "choose another one with --output-dir DIR (output_dir= in Python)"


def check_output_dir(path: str) -> None:
    """Create the output directory ``path`` and write, then remove, a probe file in it, before
    anything is computed; directories created for the probe are removed again (a job that
    turns out invalid leaves nothing behind).  Raises :class:`InputErrors` naming the
    directory, what is wrong and how to fix it."""
    where = os.path.abspath(path)
    why = None
    created = []  # the directories the probe creates, deepest last
    missing = where
    while not os.path.lexists(missing) and os.path.dirname(missing) != missing:
        created.insert(0, missing)
        missing = os.path.dirname(missing)
    try:
        os.makedirs(where, exist_ok=True)
    except FileExistsError:
        why = "exists and is a file, not a directory: remove or rename that file, or " + _OTHER_DIR
    except NotADirectoryError:
        parent = os.path.dirname(where)
        while parent and not os.path.isdir(parent) and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        why = (f"cannot be created: {parent} is a file, not a directory; " + _OTHER_DIR
               if os.path.exists(parent) and not os.path.isdir(parent)
               else "cannot be created: a part of the path is not a directory; " + _OTHER_DIR)
    except PermissionError as exc:
        why = (f"cannot be created: permission denied ({exc.filename or where}); "
               "make its parent directory writable, or " + _OTHER_DIR)
    except OSError as exc:
        why = f"cannot be created: {exc.strerror or exc}; " + _OTHER_DIR
    if why is None:
        probe = os.path.join(where, f".rexfit-write-test-{os.getpid()}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"rexfit\n")
            finally:
                os.close(fd)
            os.remove(probe)
        except OSError as exc:
            why = (f"is not writable ({exc.strerror or exc}): make it writable "
                   "(e.g. chmod u+w), or " + _OTHER_DIR)
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:
            break
    if why is not None:
        raise InputErrors([InputError(f"output directory {where} {why}")])


class OutputNotWritten(CalculationFailed):
    """The results could not be written to the output directory.  ``directory`` is where they
    were written instead (None: nowhere); ``results`` is the results dictionary."""

    def __init__(self, message: str, *, directory: str | None, results: dict | None = None):
        super().__init__(message)
        self.directory = directory
        self.results = results


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after the training phase; the message says what was written."""


class _Outputs:
    """Writes a run's files into its output directory.  When that fails (disk full, directory
    removed or made read-only during the run) the files written so far and the rest go to a
    fallback directory in the system's temporary directory, so a finished fit is never lost."""

    def __init__(self, directory: str, stem: str):
        self.dir = directory
        self.stem = stem
        self.done: list = []
        self.failure: tuple[str, OSError] | None = None

    def write(self, what):
        """Call ``what(directory)`` (it writes files there) and return its result."""
        try:
            result = what(self.dir)
        except OSError as exc:
            if self.failure is not None:
                raise OutputNotWritten(
                    f"cannot write the results to {self.failure[0]} "
                    f"({_os_reason(self.failure[1])}) nor to {self.dir} ({_os_reason(exc)}); "
                    "they were printed only", directory=None) from None
            self.failure = (self.dir, exc)
            try:
                self.dir = tempfile.mkdtemp(prefix=f"{self.stem}.rexfit-")
                for done in self.done:
                    done(self.dir)
                result = what(self.dir)
            except OSError as again:
                raise OutputNotWritten(
                    f"cannot write the results to {self.failure[0]} "
                    f"({_os_reason(self.failure[1])}) nor to a temporary directory "
                    f"({_os_reason(again)}); they were printed only", directory=None) from None
        self.done.append(what)
        return result

    def failed(self) -> str | None:
        """Why the output directory could not be used (None: it could)."""
        if self.failure is None:
            return None
        return (f"cannot write to the output directory {self.failure[0]} "
                f"({_os_reason(self.failure[1])}); the results were written to {self.dir} "
                "instead")


def _os_reason(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _property_records(st: s.StructureSpec, model, natoms: int, values: dict, weights: dict,
                      preset: str | None) -> dict:
    listed = {p.name: p for p in st.properties}
    order = [n for n in rl.ALWAYS if n in values] + [p.name for p in st.properties
                                                     if p.name not in rl.ALWAYS]
    out = {}
    for name in order:
        if name not in values:
            continue
        p = listed.get(name)
        target = target_of(p, name, model, natoms)
        rec = {"value": values[name], "target": target, "unit": PROPERTIES[name],
               "fit": bool(p and p.fit), "relaxed": _relaxed(name, model.relax),
               "output": p.output if p else True, "output_all": p.output_all if p else False}
        if p is not None:
            rec.update(min=p.min, max=p.max, residual_style=p.residual_style)
            tol = tolerance(p, natoms, preset)
            rec["tolerance"] = tol
            w = weights.get((st.id, name))
            if w is not None and target is not None:
                r = float(residual(p.residual_style, values[name], target, tol, np))
                rec.update(abs_weight=w, weighted_residual=w * r)
        out[name] = rec
    return out


def _relaxed(name: str, relax) -> bool:
    """Whether the value of property ``name`` is that of a relaxed structure: a structural DOF
    property (lattice-parameter, ca-ratio, atom-distance) when that DOF was relaxed, any other
    property when anything in its structure was relaxed."""
    return name in relax if name in DOF_PROPERTIES else bool(relax)


def relaxation_fields(relax, message: str | None, converged: bool | None) -> dict:
    """results.json's account of a structure's relaxation: ``relaxation`` names the relaxed DOFs
    (job-file names joined by ", "; "none"), ``relaxation_status`` how it ended and
    ``relaxation_converged`` whether it converged (both null when nothing was relaxed)."""
    if not relax:
        return {"relaxation": "none", "relaxation_status": None, "relaxation_converged": None}
    order = [d for d in RELAX_DOFS if d in relax] + sorted(set(relax) - set(RELAX_DOFS))
    return {"relaxation": ", ".join(order), "relaxation_status": message,
            "relaxation_converged": bool(converged)}


def structure_records(job: s.JobSpec, objective: Objective, ev) -> list[dict]:
    """One record per structure (training and validation) from an evaluation of both sets."""
    weights = absolute_weights(job.structures)
    weights.update(absolute_weights(job.structures, validation=True))
    records = []
    for st in job.all_structures():
        result = ev.structures[st.id]
        relaxed = result.relaxed
        model = objective.models[st.id]
        try:
            values = objective.host_properties(result)
        except CalculationFailed as exc:
            raise CalculationFailed(f"structure '{st.id}' ({st.origin}): {exc}") from None
        natoms = relaxed.problem.nreal
        records.append({
            "id": st.id, "group": st.group, "set": objective.sets[st.id],
            "natoms": natoms,
            "relative_weight": st.relative_weight,
            **relaxation_fields(model.relax, relaxed.message, relaxed.converged),
            "at_bound": relaxed.at_bound,
            "properties": _property_records(st, model, natoms, values, weights,
                                            job.tolerance_preset),
        })
    for dterm in objective.datasets.values():
        for rec in dterm.records(ev.params):  # dataset entries are never relaxed
            rec.update(relaxation_fields((), None, None))
            records.append(rec)
    return records


def objective_of(records: list[dict], set_name: str) -> float | None:
    terms = [p["weighted_residual"] for r in records if r["set"] == set_name
             for p in r["properties"].values() if "weighted_residual" in p and p["fit"]]
    return float(sum(terms)) if terms else None


def parameter_records(space: ParameterSpace, params) -> dict:
    values = space.named_values(params)
    return {e.name: {"value": values[e.name], "initial": e.initial, "fitted": e.fit,
                     "min": e.min, "max": e.max} for e in space.pm.entries}


def _evaluate(objective: Objective, u, *, fresh: bool):
    try:
        return objective.evaluate(u, grad=False, sets=("training", "validation"), fresh=fresh,
                                  datasets=False)  # dataset entries: from their records
    except (ValueError, FloatingPointError) as exc:
        raise CalculationFailed(str(exc)) from None


def run_job(job: s.JobSpec, *, output_dir: str | None = None, no_fit: bool = False,
            quiet: bool = False, max_iter: int | None = None, tty: bool | None = None,
            plots: bool | None = None, restart: bool = False,
            clock: Clock | None = None) -> dict:
    """Run ``job``: training phase (if it has an enabled <fitting> and not ``no_fit``), then the
    output phase; write log.txt, results.json, parameters.xml and exports; return the results.

    The output directory is created and tested for writing before anything is computed
    (:class:`InputErrors` if it cannot be used).  The fitted parameters (parameters.xml and the
    parameter files of Tersoff-like potentials) are written before the output phase starts.
    If writing fails later, everything goes to a temporary directory and
    :class:`OutputNotWritten` says where.  On Ctrl-C during fitting the best parameters so far
    go through the output phase and ``results["fit"]["interrupted"]`` is True (the CLI then
    exits with 130); on Ctrl-C during the output phase log.txt is written and
    :class:`Interrupted` (a KeyboardInterrupt) says what is on disk.  ``clock`` (a
    :class:`rexfit.timing.Clock`) measures the phases for results.json's ``timing``."""
    jax.config.update("jax_enable_x64", True)  # 64-bit always (SPEC §2a)
    clock = clock or Clock()
    clock.phase("setup")
    out = output_dir_for(job, output_dir)
    check_output_dir(out)
    log = Log(quiet)
    stem = os.path.splitext(os.path.basename(job.path))[0] or "job"
    outputs = _Outputs(out, stem)
    if quiet:
        return _run_job(job, log, clock, outputs, no_fit=no_fit,
                        max_iter=max_iter, tty=tty, plots=plots, restart=restart)
    with Heartbeat(log, clock) as beat:
        log.before_print = beat.clear
        return _run_job(job, log, clock, outputs, no_fit=no_fit,
                        max_iter=max_iter, tty=tty, plots=plots, restart=restart)


def _run_job(job: s.JobSpec, log: Log, clock: Clock, outputs: _Outputs, *, no_fit, max_iter,
             tty, plots, restart) -> dict:
    start = time.perf_counter()
    out = outputs.dir
    pm = build_potentials(job)
    fitting = job.fitting is not None and job.fitting.enabled and not no_fit
    rungs = ladders(job, pm) if fitting else []  # a basis grown in steps (ACE <ladder>)
    space = ParameterSpace(pm, job.constraints)
    progress("building structures, datasets and the objective")
    objective = Objective(job, space)
    progress("")
    log(f"rexfit {__version__}: job '{job.name}' ({job.path})")
    for line in objective.notes:
        log(line)
    u0 = space.u0()
    fit = None
    if job.validate_potentials:
        _validate_potentials(job, objective, u0, log)
    if job.fitting is not None and job.fitting.enabled and not no_fit:
        log(f"Training phase: {space.size} fitted parameter(s), "
            f"{len(objective.ids()) + objective.training_entries()} training structure(s), "
            f"minimizer <{job.fitting.minimizer.kind}>")
        if rungs and restart:
            raise InputErrors([InputError(
                "--restart: a job whose basis grows by a <ladder> cannot be continued from a "
                "checkpoint yet; run it again without --restart (or start a new fit from a "
                "step's potential file with <initial-potential>)", job.fitting.origin)])
        state = _read_checkpoint(out, space, job) if restart else None
        clock.phase("fit")
        if rungs:
            def write_step(name: str, text: str) -> str:
                outputs.write(lambda d: write_text(os.path.join(d, name), text))
                return os.path.join(outputs.dir, name)

            fit = run_ladder(objective, job, rungs, log, write_step, max_iter=max_iter,
                             tty=tty)
        else:
            fit = run_fit(objective, job.fitting, log, max_iter=max_iter, tty=tty,
                          checkpoint=_checkpointer(job, space, out, log),
                          restart=state)
        log(f"Fit {fit.verdict} "
            f"({fit.iterations} iterations, {fit.evaluations} evaluations, {fit.seconds:.1f} s)")
        for warning in fit.warnings:
            log(f"Warning: {warning}")
        u = fit.u
    else:
        u = u0
    clock.phase("output")
    params = objective.params(u)
    # the fitted parameters first: nothing of a finished fit is lost to what follows
    for path in outputs.write(lambda d: write_fitted_parameters(job, space, params, d)):
        log(f"Wrote {path}")
    try:
        return _output_phase(job, log, clock, outputs, objective, space, pm, u, params, fit,
                             plots, start)
    except KeyboardInterrupt:
        where = outputs.dir
        log("Interrupted (Ctrl-C) during the output phase: results.json was not written; the "
            f"fitted parameters are in {os.path.join(where, 'parameters.xml')}")
        try:
            outputs.write(lambda d: write_text(os.path.join(d, "log.txt"),
                                               "\n".join(log.text) + "\n"))
        except (OSError, OutputNotWritten, KeyboardInterrupt):
            pass
        raise Interrupted(f"during the output phase; parameters.xml and log.txt are in "
                          f"{outputs.dir}, results.json was not written") from None


def _output_phase(job: s.JobSpec, log: Log, clock: Clock, outputs: _Outputs,
                  objective: Objective, space: ParameterSpace, pm: PotentialModel, u, params,
                  fit, plots, start: float) -> dict:
    """Every property of every structure, the tables, results.json, exports, plots, log.txt."""
    digits = job.real_precision or 6
    log("Computing structure properties")
    progress(f"relaxing and evaluating {len(objective.terms)} structure(s)")
    ev = _evaluate(objective, u, fresh=fit is None)
    progress("")
    records = structure_records(job, objective, ev)
    for set_name in ("training", "validation"):
        recs = [r for r in records if r["set"] == set_name]
        if not recs:
            continue
        log(f"--- {set_name} set ---")
        for rec in recs:
            if "dataset" in rec:  # summarised by the metrics table
                continue
            for line in rl.structure_lines(rec, digits):
                log(line)
        for did in dict.fromkeys(r["dataset"] for r in recs if "dataset" in r):
            part = [r for r in recs if r.get("dataset") == did]
            log(f"Dataset '{did}': {len(part)} entries, {sum(r['natoms'] for r in part)} atoms, "
                f"objective {rl.fmt(objective_of(part, set_name) or 0.0, digits)}")
    objective_values = {"training": objective_of(records, "training"),
                        "validation": objective_of(records, "validation")}
    objective_values["initial"] = (fit.history[0][1] if fit is not None and fit.history
                                   else objective_values["training"])
    if ev.regularization:  # the training objective's regularisation terms, not in "training"
        objective_values["regularization"] = dict(ev.regularization)
    for set_name in ("training", "validation"):
        recs = [r for r in records if r["set"] == set_name and "dataset" not in r]
        if recs:
            log(f"Property table ({set_name} set):")
            for line in rl.property_table(recs, digits):
                log(line)
    for line in _extrapolation_grades(job, objective, pm, params, ev, records, outputs, digits):
        log(line)
    data = dataset_records([r for r in records])
    metrics = None
    if data and (job.all_datasets() or any(d["forces"] is not None for d in data)):
        metrics = dataset_metrics(data)
        log("Error metrics (energy per atom, force components, stress components):")
        for line in metrics_table(metrics, digits):
            log(line)
    parameters = parameter_records(space, params)
    log("Parameters:")
    for line in rl.parameter_table(parameters, digits):
        log(line)
    for line in rl.group_objectives(records, digits):
        log(line)
    for set_name in ("training", "validation"):
        if objective_values[set_name] is not None:
            log(f"Objective ({set_name} set): {rl.fmt(objective_values[set_name], digits)}")
    if ev.regularization:
        log("Regularisation (added to the training objective): " + ", ".join(
            f"{k} {rl.fmt(v, digits)}" for k, v in ev.regularization.items()))
    unconverged = [r["id"] for r in records
                   if r["relaxation_converged"] is False]
    if unconverged:
        log(f"Warning: relaxation did not converge for {', '.join(unconverged)}")
    results = {
        "rexfit_version": __version__,
        "job": job.name,
        "objective": objective_values,
        "fit": None if fit is None else fit.to_json(),
        "parameters": parameters,
        "structures": {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in records},
        "metrics": metrics,
        "seconds": time.perf_counter() - start,
    }
    _check_finite(results)
    finals = {sid: r.relaxed for sid, r in ev.structures.items()}

    def structure_files(d: str) -> None:
        for st in job.all_structures():
            if st.output is not None:
                write_structure(os.path.join(d, st.output.path), st.output.format,
                                finals[st.id].system, pm.species)

    outputs.write(structure_files)
    for path in outputs.write(lambda d: export_potentials(job, pm, params, finals, d)):
        log(f"Wrote {path}")
    if data and (plots or (plots is None and job.all_datasets())):
        from rexfit.report.report_md import write_plots_and_report

        progress("writing plots")  # plots/*.png and report.md
        for path in outputs.write(lambda d: write_plots_and_report(d, data, results)):
            log(f"Wrote {path}")
    results["timing"] = clock.report()
    log(clock.summary())
    outputs.write(lambda d: write_json(os.path.join(d, "results.json"), results))
    failed = outputs.failed()
    if failed:
        log(f"Warning: {failed}")
    outputs.write(lambda d: write_text(os.path.join(d, "log.txt"), "\n".join(log.text) + "\n"))
    failed = outputs.failed()  # log.txt itself may be the first file that fails
    if failed:
        raise OutputNotWritten(failed, directory=outputs.dir, results=results)
    if not log.quiet:
        print(f"Results written to {outputs.dir}")
    return results


def _extrapolation_grades(job: s.JobSpec, objective: Objective, pm: PotentialModel, params,
                          ev, records: list[dict], outputs: _Outputs, digits: int) -> list[str]:
    """For every ``<ace>`` with an ``<active-set>``: its active set from the training
    structures (relaxed) and dataset entries, written to ``<id>.asi`` (``.asi.nonlinear``
    for the full grade), and ``max_gamma`` {id: largest γ} added to every structure record;
    the lines that report them (a warning instead when the training atoms cannot give an
    active set: the other results stand)."""
    wanted = [p for p in job.potentials
              if getattr(p.family_spec, "active_set", None) is not None]
    if not wanted:  # (no import of the ACE active set, nor of SciPy, for other jobs)
        return []
    from rexfit.physics.extrapolation import ace_grades
    from rexfit.potentials.ace.active_set import ActiveSetError, write_asi
    from rexfit.structures.system import make_system

    structures = []
    for st in job.all_structures():
        relaxed = ev.structures[st.id].relaxed
        structures.append((st.id, relaxed.system, relaxed.nbrs,
                           objective.sets[st.id] == "training"))
    for dterm in objective.datasets.values():
        for e in dterm.entries:
            entry = e.entry
            system = make_system(np.asarray(entry.positions), np.asarray(entry.cell),
                                 np.asarray(e.species), tuple(bool(p) for p in entry.pbc))
            structures.append((e.name, system, None, dterm.set_name == "training"))
    lines = []
    by_id = {r["id"]: r for r in records}
    for pot in wanted:
        spec = pot.family_spec.active_set
        progress(f"active set and extrapolation grades of <ace id='{pot.id}'>")
        try:
            grades = ace_grades(dict(pm.potential.terms)[pot.id], params[pot.id], structures,
                                full=spec.full, tol=spec.tolerance,
                                max_iters=spec.max_iterations, n_species=len(pm.species))
        except ActiveSetError as exc:  # the rest of the results stand
            progress("")
            lines.append(f"Warning: {spec.origin}: <ace id='{pot.id}'> <active-set>: {exc}; "
                         "no active set written, no extrapolation grades")
            continue
        progress("")
        for name, value in grades.max_gamma.items():
            by_id[name].setdefault("max_gamma", {})[pot.id] = value
        name = f"{pot.id}.asi" + (".nonlinear" if spec.full else "")
        path = outputs.write(lambda d, n=name, a=grades.active_set:
                             _write_asi(write_asi, d, n, a))
        atoms = ", ".join(f"{n} {e}" for e, n in grades.atoms.items())
        kind = "full" if spec.full else "linear"
        lines.append(f"Extrapolation grade of <ace id='{pot.id}'> ({kind} projections; active "
                     f"set from {atoms} training atoms, written to {path}):")
        lines += rl.gamma_table(pot.id, records, digits)
    return lines


def _write_asi(write_asi, directory: str, name: str, active) -> str:
    path = os.path.join(directory, name)
    write_asi(path, active)
    return path


def _checkpointer(job: s.JobSpec, space: ParameterSpace, out: str, log: Log):
    """The fit's checkpoint writer: a checkpoint that cannot be written is a warning (once),
    never the end of the fit."""
    warned = []

    def checkpoint(state: dict) -> None:
        try:
            _write_checkpoint(job, space, state, out)
        except OSError as exc:
            if not warned:
                warned.append(exc)
                log(f"Warning: cannot write the checkpoint in {out} ({_os_reason(exc)}); "
                    "the fit goes on without it")

    return checkpoint


CHECKPOINT_DIR = "checkpoint"


def _write_checkpoint(job: s.JobSpec, space: ParameterSpace, state: dict, out: str) -> None:
    """checkpoint/state.json (restart state) and checkpoint/parameters.xml (the parameters at
    the checkpoint, in job syntax), each written atomically."""
    where = os.path.join(out, CHECKPOINT_DIR)
    os.makedirs(where, exist_ok=True)
    u = np.asarray(state["u"], float)
    params = space.host_tree(u) if space.linear else space.tree(u)
    state = dict(state, parameters=write_parameters(job, space, params, where))
    write_json(os.path.join(where, "state.json"), state)


def _read_checkpoint(out: str, space: ParameterSpace, job: s.JobSpec) -> dict:
    path = os.path.join(out, CHECKPOINT_DIR, "state.json")
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        raise InputErrors([InputError(
            f"--restart: there is no checkpoint {path}; give the <fitting> of the job a "
            "checkpoint-interval and run it first")]) from None
    except (OSError, ValueError) as exc:
        raise InputErrors([InputError(f"--restart: cannot read {path}: {exc}")]) from None
    if state.get("format") != "rexfit-checkpoint-1":
        raise InputErrors([InputError(f"--restart: {path} is not a rexfit checkpoint")])
    names = changed_parameters(job, space)
    if set(state.get("parameters", {})) != names:
        raise InputErrors([InputError(
            f"--restart: {path} was written for other fitted parameters "
            f"({', '.join(sorted(state.get('parameters', {}))) or 'none'}); this job fits "
            f"{', '.join(sorted(names))}")])
    return state


def _validate_potentials(job, objective: Objective, u0, log) -> None:
    from rexfit.physics.validate import validate_potentials

    ev = _evaluate(objective, u0, fresh=True)
    items = [(sid, r.relaxed.system, r.relaxed.nbrs) for sid, r in ev.structures.items()]
    lines, ok = validate_potentials(job, objective.space.pm, items)
    log("Validating potentials (finite differences):")
    for line in lines:
        log(line)
    if not ok:
        log("Warning: <validate-potentials/> found mismatches (see above)")


def _check_finite(obj, where: str = "results") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise CalculationFailed(f"non-finite value in {where}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for v in obj:
            _check_finite(v, where)


# rexfit.run("job.xml", ...) runs a job from Python (SPEC §2a): this module calls
# rexfit.run.api.run
from rexfit.run.api import make_callable  # noqa: E402  (the driver above is complete)

make_callable(__name__)
