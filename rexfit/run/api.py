"""The Python API (SPEC §2a): run a job from Python and read its results as Python objects.

::

    import rexfit
    res = rexfit.run("job.xml", no_fit=True)      # or an XML string with base_dir=
    res.objective, res.parameters, res.structures["fcc"]["lattice-parameter"]
    calc = res.calculator()                      # ASE calculator of the fitted potential

:func:`run` does what the command line ``rexfit JOB.xml`` does — the same files, the same
numbers, in 64-bit always — and returns a :class:`Result` instead of an exit code: invalid
input raises :class:`~rexfit.errors.InputErrors` (every ``path:line: message``), a failed
computation :class:`~rexfit.errors.CalculationFailed`.  It is part of the driver layer
(:mod:`rexfit.run`, whose import brings JAX): like the command line, it may use every layer
below.  Walk-through: docs/python-api.md.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rexfit.errors import CalculationFailed, InputError, InputErrors, Origin

if TYPE_CHECKING:
    import numpy as np

    from rexfit.ase import RexfitCalculator
    from rexfit.job.spec import JobSpec

#: Default directory of the persistent compilation cache (``REXFIT_CACHE_DIR`` overrides it;
#: an empty value turns the cache off).
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "rexfit", "xla")

#: How errors name a job given as an XML string (``<string>:LINE: message``).
STRING_JOB = "<string>"

DEVICES = ("cpu", "gpu")


# ============================================================================ JAX set-up


def prepare_jax() -> None:
    """Import JAX in 64-bit mode and keep compiled XLA programs on disk (``REXFIT_CACHE_DIR``,
    default :data:`CACHE_DIR`), so running a job again skips most of the compilation; traced
    programs and the frames ``ase.io`` parsed from dataset files are kept there too."""
    import jax

    from rexfit import programs
    from rexfit.datasets import frame_cache

    jax.config.update("jax_enable_x64", True)
    path = os.environ.get("REXFIT_CACHE_DIR", CACHE_DIR)
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return  # not writable: run without the cache
    jax.config.update("jax_compilation_cache_dir", path)
    programs.enable(os.path.join(path, "programs"))
    frame_cache.enable(os.path.join(path, "frames"))
    # every program, however quick to compile: a second run of an unchanged job compiles none
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def select_device(device: str | None) -> None:
    """Compute on ``device`` ("cpu" or "gpu"; None: JAX's choice).  Raises
    :class:`CalculationFailed` when JAX sees no such device."""
    if device is None:
        return
    import jax

    try:
        devices = jax.devices(device)
    except RuntimeError:
        devices = []
    if not devices:
        raise CalculationFailed(f"--device {device}: JAX sees no {device.upper()} on this machine "
                                f"(available: {', '.join(str(d) for d in jax.devices())})")
    jax.config.update("jax_default_device", devices[0])


# ============================================================================ results


@dataclass(frozen=True)
class Property:
    """One computed property of a structure (results.json ``structures.<id>.properties``).

    ``value`` and ``target`` are floats, or float64 arrays for vector properties
    (``atomic-forces`` (N, 3) eV/Å, ``stress`` (6,) GPa, Voigt order); ``target`` is None when
    the job gives none.  ``weighted_residual`` is the property's term of the objective
    (None when it has no target)."""

    name: str
    value: Any
    target: Any
    unit: str
    fit: bool
    weighted_residual: float | None = None
    tolerance: float | None = None


@dataclass(frozen=True)
class Structure:
    """A structure (or dataset entry) of the output phase: ``set`` is "training" or
    "validation", ``dataset`` the id of its ``<dataset>`` (None for a structure of the job).
    ``structure["atomic-energy"]`` is the value of a property; ``properties`` holds them all."""

    id: str
    set: str
    group: str
    natoms: int
    properties: dict[str, Property]
    dataset: str | None = None

    def __getitem__(self, name: str):
        return self.properties[name].value


@dataclass(frozen=True)
class Prediction:
    """Predicted against reference values of one structure or dataset entry: ``energy`` (eV,
    total), ``forces`` ((N, 3) eV/Å) and ``stress`` ((6,) GPa), each a (predicted, reference)
    pair or None where the job gives no reference.  The numbers of the error metrics and plots."""

    id: str
    set: str
    group: str | None
    natoms: int
    energy: tuple[float, float] | None
    forces: tuple[np.ndarray, np.ndarray] | None
    stress: tuple[np.ndarray, np.ndarray] | None


def _array(value):
    if isinstance(value, list):
        import numpy as np

        return np.asarray(value, dtype=np.float64)
    return value


@dataclass(frozen=True)
class Result:
    """What :func:`run` returns.

    ``results`` is the results.json dictionary (SPEC §2), identical to the file;
    ``output_dir`` the directory the files were written to; ``job`` the validated job;
    ``warnings`` the job's warnings (:class:`~rexfit.errors.InputError`, severity "warning").
    Everything else is read from ``results``."""

    results: dict
    output_dir: str
    job: JobSpec
    warnings: tuple[InputError, ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:  # short: a notebook shows it after every run
        fit = self.results.get("fit")
        how = "no fit" if fit is None else f"{fit.get('iterations')} iterations"
        return (f"Result(job={self.results.get('job')!r}, objective={self.objective!r}, "
                f"{how}, output_dir={self.output_dir!r})")

    # -------------------------------------------------------------- numbers

    @property
    def objective(self) -> float | None:
        """The training objective at the final parameters (None: the job fits no property)."""
        return self.results["objective"]["training"]

    @property
    def validation_objective(self) -> float | None:
        """The same objective over the validation set (None: no validation set)."""
        return self.results["objective"]["validation"]

    @property
    def initial_objective(self) -> float | None:
        """The training objective at the given (starting) parameters."""
        return self.results["objective"]["initial"]

    @property
    def parameters(self) -> dict[str, float]:
        """{DOF name: final value} of every parameter, fitted or not (atomicrex names)."""
        return {name: p["value"] for name, p in self.results["parameters"].items()}

    @property
    def fitted_parameters(self) -> dict[str, float]:
        """{DOF name: final value} of the fitted parameters only."""
        return {name: p["value"] for name, p in self.results["parameters"].items()
                if p["fitted"]}

    @property
    def fit(self) -> dict | None:
        """The training phase (method, iterations, converged, message, history); None when
        there was none (no ``<fitting>`` or ``no_fit=True``)."""
        return self.results["fit"]

    @property
    def interrupted(self) -> bool:
        """True if the fit was interrupted (Ctrl-C): the results are those of the best
        parameters found so far."""
        return bool((self.results.get("fit") or {}).get("interrupted"))

    @property
    def metrics(self) -> dict | None:
        """Error metrics of the dataset entries (results.json ``metrics``: per set, ``all`` and
        per group, ``energy_per_atom`` / ``forces`` / ``stress`` → rmse, mae, max, r2, count;
        eV/atom, eV/Å, GPa); None for a job without reference data."""
        return self.results.get("metrics")

    @property
    def structures(self) -> dict[str, Structure]:
        """{id: :class:`Structure`} of every structure and dataset entry, in results.json order."""
        if "structures" not in self._cache:
            out = {}
            for sid, rec in self.results["structures"].items():
                props = {name: Property(name=name, value=_array(p.get("value")),
                                        target=_array(p.get("target")), unit=p.get("unit", ""),
                                        fit=bool(p.get("fit")),
                                        weighted_residual=p.get("weighted_residual"),
                                        tolerance=p.get("tolerance"))
                         for name, p in rec["properties"].items()}
                out[sid] = Structure(id=sid, set=rec["set"], group=rec.get("group", ""),
                                     natoms=rec["natoms"], properties=props,
                                     dataset=rec.get("dataset"))
            self._cache["structures"] = out
        return self._cache["structures"]

    def properties(self, set: str | None = None) -> dict[str, dict[str, Any]]:  # noqa: A002
        """{structure id: {property name: value}}, of one set ("training", "validation") or
        of all structures."""
        return {sid: {n: p.value for n, p in st.properties.items()}
                for sid, st in self.structures.items() if set is None or st.set == set}

    def predictions(self, set: str | None = None,  # noqa: A002
                    dataset: str | None = None) -> list[Prediction]:
        """Predicted against reference energy, forces and stress of every structure or dataset
        entry with reference values (optionally of one set and/or one ``<dataset>``)."""
        import numpy as np

        from rexfit.report.metrics import dataset_records

        recs = [dict(rec, id=sid) for sid, rec in self.results["structures"].items()
                if (set is None or rec["set"] == set)
                and (dataset is None or rec.get("dataset") == dataset)]

        def pair(p):
            return None if p is None else (np.asarray(p[0], np.float64),
                                           np.asarray(p[1], np.float64))

        return [Prediction(id=r["id"], set=r["set"], group=r["group"], natoms=r["natoms"],
                           energy=None if r["energy"] is None else (float(r["energy"][0]),
                                                                    float(r["energy"][1])),
                           forces=pair(r["forces"]), stress=pair(r["stress"]))
                for r in dataset_records(recs)]

    # -------------------------------------------------------------- files

    @property
    def files(self) -> dict[str, str]:
        """Paths of results.json, parameters.xml and log.txt in :attr:`output_dir`."""
        return {name: os.path.join(self.output_dir, name)
                for name in ("results.json", "parameters.xml", "log.txt")}

    def calculator(self, skin: float = 1.0, **kwargs) -> RexfitCalculator:
        """An ASE calculator (:class:`rexfit.ase.RexfitCalculator`) of the fitted potential,
        read from this run's parameters.xml (the given parameters after ``no_fit=True``)."""
        from rexfit.ase import RexfitCalculator

        species = [sp.symbol for sp in self.job.species]
        return RexfitCalculator.from_job(self.files["parameters.xml"], species=species,
                                         skin=skin, **kwargs)

    def export(self, directory: str | os.PathLike) -> list[str]:
        """Copy the fitted potential to ``directory`` (created if needed): parameters.xml, the
        files it names (``<param-file>``, ``<coeff-file>``, ``<model-file>`` written by the
        run) and the job's ``<export-...>`` files (``NAME`` and ``NAME.*``, e.g. a SNAP's
        ``.snapcoeff``, ``.snapparam`` and ``.snap``).  Each copy is written atomically, with
        the permissions of a new file.  Returns the paths written."""
        from lxml import etree

        from rexfit.files import atomic_write

        out = self.output_dir
        names = {"parameters.xml"}
        root = etree.parse(self.files["parameters.xml"]).getroot()
        for el in root.iter("param-file", "coeff-file", "model-file"):
            names.add(os.path.normpath((el.text or "").strip()))
        for pot in self.job.potentials:
            for ex in pot.exports:
                stem = os.path.normpath(ex.path)
                folder = os.path.join(out, os.path.dirname(stem))
                if os.path.isdir(folder):
                    base = os.path.basename(stem)
                    names.update(os.path.join(os.path.dirname(stem), f)
                                 for f in os.listdir(folder)
                                 if f == base or f.startswith(base + "."))
        directory = os.fspath(directory)
        written = []
        for name in sorted(names):
            src = os.path.join(out, name)
            if name.startswith("..") or os.path.isabs(name) or not os.path.isfile(src):
                continue  # a file of the job's own (not written by the run)
            dst = os.path.join(directory, name)
            atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
            written.append(dst)
        return written


# ============================================================================ run


def run(job: str | os.PathLike | bytes, output_dir: str | os.PathLike | None = None, *,
        no_fit: bool = False, max_iter: int | None = None, plots: bool | None = None,
        quiet: bool = True, device: str | None = None,
        base_dir: str | os.PathLike | None = None, restart: bool = False) -> Result:
    """Run a job as ``rexfit JOB.xml`` does and return its :class:`Result`.

    job: a job file, or the job's XML text (a string starting with ``<``); relative paths in
    the text (``xi:include``, structure and data files) resolve against ``base_dir`` (default:
    the current directory), and errors name it ``<string>:LINE``.
    output_dir: where the files go; None: the command line's ``<job stem>.rexfit/`` next to the
    job file, or, for a job given as text, a new temporary directory (``Result.output_dir``).
    no_fit, max_iter, plots, restart, device: as ``--no-fit``, ``--max-iter N``,
    ``--plots``/``--no-plots``, ``--restart``, ``--device``.  quiet: print nothing (False:
    print what the command line prints).

    Raises :class:`~rexfit.errors.InputErrors` for an invalid job or output directory,
    :class:`~rexfit.errors.CalculationFailed` for a failed computation.  Computes in 64-bit.
    """
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, int)
                                 or max_iter < 0):
        raise ValueError(f"max_iter must be a non-negative int or None, got {max_iter!r}")
    if device not in (None, *DEVICES):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} or None, got {device!r}")
    started = time.perf_counter()
    prepare_jax()
    from rexfit.job import load_job
    from rexfit.run import output_dir_for, run_job
    from rexfit.timing import Clock

    clock = Clock(import_seconds=time.perf_counter() - started)
    clock.phase("setup")
    with _job_file(job, base_dir) as (path, shown):
        try:
            spec, warnings = load_job(path)
            if not quiet:
                for w in warnings:
                    sys.stderr.write(_renamed(w, path, shown).format() + "\n")
            select_device(device)
            if output_dir is None and shown is not None:
                out = tempfile.mkdtemp(prefix="rexfit-")
            else:
                out = output_dir_for(spec, None if output_dir is None else os.fspath(output_dir))
            results = run_job(spec, output_dir=out, no_fit=no_fit, quiet=quiet, plots=plots,
                              restart=restart, max_iter=max_iter, clock=clock)
        except InputErrors as errs:
            if shown is None:
                raise
            raise InputErrors([_renamed(e, path, shown) for e in errs.errors]) from None
        except InputError as err:
            raise InputErrors([_renamed(err, path, shown)]) from None
    return Result(results=results, output_dir=os.path.abspath(out), job=spec,
                  warnings=tuple(_renamed(w, path, shown) for w in warnings))


@contextlib.contextmanager
def _job_file(job, base_dir):
    """(path of the job file, the name errors show for it or None).  A job given as XML text
    is written to a hidden file in ``base_dir`` (so relative paths resolve there) that is
    removed afterwards."""
    if isinstance(job, bytes):
        text = job
    elif isinstance(job, str) and job.lstrip().startswith("<"):
        text = job.encode("utf-8")
    else:
        if base_dir is not None:
            raise ValueError("base_dir is for a job given as XML text; a job file's relative "
                             "paths resolve against the file's own directory")
        yield os.fspath(job), None
        return
    where = os.path.abspath(os.fspath(base_dir) if base_dir is not None else os.getcwd())
    try:
        fd, path = tempfile.mkstemp(prefix=".rexfit-job-", suffix=".xml", dir=where)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
    except OSError as exc:
        raise InputErrors([InputError(
            f"base_dir {where}: cannot write the job text there ({exc.strerror or exc}); "
            "rexfit reads a job given as text from a file in base_dir, so that its relative "
            "paths resolve: give a writable base_dir, or write the job to a file")]) from None
    try:
        yield path, STRING_JOB
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)


def _renamed(err: InputError, path: str, shown: str | None) -> InputError:
    """``err`` naming the job text ``shown`` instead of the hidden file ``path``."""
    if shown is None:
        return err
    out = copy.copy(err)
    if err.origin is not None and err.origin.path == path:
        out.origin = Origin(shown, err.origin.line)
    out.message = err.message.replace(path, shown)
    out.args = (out.message,)
    return out


# ============================================================================ rexfit.run


class CallableModule(types.ModuleType):
    """The module ``rexfit.run`` is also the API's entry point: ``rexfit.run("job.xml")``
    calls :func:`run` (SPEC §2a), while ``from rexfit.run import run_job`` keeps working."""

    def __call__(self, *args, **kwargs) -> Result:
        return run(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the module ``module_name`` callable as :func:`run` (used by rexfit.run)."""
    sys.modules[module_name].__class__ = CallableModule


__all__ = ["Prediction", "Property", "Result", "Structure", "prepare_jax", "run",
           "select_device"]
