"""The ``rexfit`` command: run a job, validate job files, print a template.

Only this module formats errors for the user: ``path:line: message`` on stderr, exit code 2 for
invalid input, 3 for a failed computation, 130 when interrupted; a traceback only with
``--traceback``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from importlib import resources

from rexfit import __version__
from rexfit.errors import (
    CalculationFailed,
    InputError,
    InputErrors,
    InputWarning,
    NotImplementedInRexfit,
)

EXIT_OK, EXIT_INPUT, EXIT_CALC, EXIT_INTERRUPT = 0, 2, 3, 130

#: The starter jobs of ``rexfit template KIND``: the files KIND.xml of rexfit/templates/.
TEMPLATES = tuple(sorted(f.name.removesuffix(".xml")
                         for f in resources.files("rexfit").joinpath("templates").iterdir()
                         if f.name.endswith(".xml")))
#: The file of the template printed when no KIND is given.
DEFAULT_TEMPLATE = "eam.xml"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and our own message style."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.print_usage(sys.stderr)
        sys.stderr.write(f"rexfit: error: {message}\n")
        raise SystemExit(EXIT_INPUT)


def _run_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="rexfit",
        description="Fit interatomic potentials from one XML job file (atomicrex-compatible).",
        epilog="Other commands: 'rexfit validate JOB.xml ...' checks job files without computing; "
               "'rexfit template KIND' prints a starter job (" + ", ".join(TEMPLATES) + "); "
               "'rexfit dataset-info FILE ...' summarises dataset files.",
    )
    p.add_argument("job", metavar="JOB.xml", help="the job file")
    p.add_argument("--output-dir", metavar="DIR",
                   help="where to write results (default: <job stem>.rexfit/ next to the job)")
    p.add_argument("--no-fit", action="store_true",
                   help="skip the training phase; compute properties at the given parameters")
    p.add_argument("--max-iter", type=int, metavar="N", help="override the minimizer's max-iter")
    p.add_argument("--restart", action="store_true",
                   help="continue the fit from the checkpoint in the output directory "
                        "(written with <fitting checkpoint-interval>)")
    plots = p.add_mutually_exclusive_group()
    plots.add_argument("--plots", dest="plots", action="store_true", default=None,
                       help="write plots (default for dataset jobs)")
    plots.add_argument("--no-plots", dest="plots", action="store_false", help="write no plots")
    verb = p.add_mutually_exclusive_group()
    verb.add_argument("-v", "--verbose", action="store_true", help="print more")
    verb.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                   help="JAX device to compute on (default: JAX's choice)")
    p.add_argument("--version", action="version", version=f"rexfit {__version__}")
    return p


def _validate_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rexfit validate",
                description="Check job files against the schema and rexfit's rules; compute nothing.")
    p.add_argument("jobs", nargs="+", metavar="JOB.xml")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also say what running the job computes")
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    return p


def _dataset_info_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rexfit dataset-info",
                description="Summarise dataset files: frames, atoms, species, groups, which "
                            "frames carry energy, forces and stress, energy per atom.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", metavar="F",
                   help="the format (as <file format=...>; default: detected)")
    p.add_argument("--group-from", metavar="G", help="comment or info:KEY (as <file>)")
    p.add_argument("--index", metavar="I", help="frames to take, ASE syntax (0:100, ::2, -1)")
    p.add_argument("--group", metavar="NAMES", help="only these groups (blank-separated)")
    p.add_argument("--select", metavar="KEY=PATTERN", help="only frames whose info matches")
    for q in ("energy", "forces", "stress"):
        p.add_argument(f"--{q}-key", metavar="KEY", help=f"read the {q} under this name")
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks on errors")
    return p


def _template_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rexfit template", description="Print a commented starter job.")
    default = DEFAULT_TEMPLATE.removesuffix(".xml")
    p.add_argument("kind", nargs="?", default=default, metavar="KIND",
                   help="one of: " + ", ".join(TEMPLATES) + f" (default: {default})")
    return p


def _print_problems(problems: list[InputError]) -> None:
    for e in problems:
        sys.stderr.write(e.format() + "\n")


def _load(path: str):
    from rexfit.job import load_job

    return load_job(path)


def cmd_validate(argv: list[str]) -> int:
    args = _validate_parser().parse_args(argv)
    status = EXIT_OK
    for path in args.jobs:
        try:
            job, warnings = _load(path)
        except InputErrors as errs:
            _print_problems(errs.errors)
            n = sum(1 for e in errs.errors if e.severity == "error")
            sys.stderr.write(f"{path}: invalid ({n} error{'s' if n != 1 else ''})\n")
            status = EXIT_INPUT
            continue
        _print_problems(warnings)
        if not args.quiet:
            from rexfit.job.summary import counts

            print(f"{path}: valid ({counts(job)})")
            if args.verbose:
                from rexfit.job.summary import describe

                for line in describe(job):
                    print(line)
    return status


def cmd_dataset_info(argv: list[str]) -> int:
    """``rexfit dataset-info FILE ...``: what each dataset file holds (imports no JAX)."""
    args = _dataset_info_parser().parse_args(argv)
    from rexfit.datasets.readers import read_dataset, resolve_format
    from rexfit.datasets.summary import describe

    keys = {q: getattr(args, f"{q}_key") for q in ("energy", "forces", "stress")
            if getattr(args, f"{q}_key") is not None}
    status = EXIT_OK
    for path in args.files:
        try:
            fmt = resolve_format(path, args.format) if os.path.exists(path) else "?"
            entries = read_dataset(path, args.format, group_from=args.group_from, keys=keys,
                                   index=args.index, groups=args.group, select=args.select)
        except InputError as err:
            if args.traceback:
                raise
            _print_problems([err])
            status = EXIT_INPUT
            continue
        for line in describe(entries, path, fmt.removeprefix("ase:")):
            print(line)
    return status


def cmd_template(argv: list[str]) -> int:
    args = _template_parser().parse_args(argv)
    if args.kind not in TEMPLATES:
        sys.stderr.write(f"rexfit template: unknown kind '{args.kind}' "
                         f"(available: {', '.join(TEMPLATES)})\n")
        return EXIT_INPUT
    text = resources.files("rexfit").joinpath("templates", f"{args.kind}.xml").read_text("utf-8")
    sys.stdout.write(text)
    return EXIT_OK


def cmd_run(argv: list[str], *, command_line: bool = False) -> int:
    """``rexfit JOB``; ``command_line``: the process ends after it (:func:`main`)."""
    args = _run_parser().parse_args(argv)
    started = time.perf_counter()
    if command_line:  # no collections while importing (module objects live to the end)
        import gc

        gc.disable()
    from rexfit.run.api import prepare_jax, select_device

    prepare_jax()  # JAX is imported here, never for --help, validate or template
    from rexfit.run import run_job
    from rexfit.timing import Clock

    if command_line:
        _freeze_imported_objects()

    clock = Clock(import_seconds=time.perf_counter() - started)
    clock.phase("setup")
    job, warnings = _load(args.job)
    _print_problems(warnings)
    select_device(args.device)
    with _input_warnings_printed():
        results = run_job(job, output_dir=args.output_dir, no_fit=args.no_fit,
                          quiet=args.quiet, plots=args.plots, restart=args.restart,
                          max_iter=args.max_iter, clock=clock)
    if results.get("fit") and results["fit"].get("interrupted"):
        sys.stderr.write("rexfit: interrupted; the best parameters so far were written\n")
        return EXIT_INTERRUPT
    return EXIT_OK


@contextlib.contextmanager
def _input_warnings_printed():
    """Input warnings found while the job runs (dataset frames without a fitted quantity) are
    printed as ``path:line: warning: message``, like the job file's warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if isinstance(message, InputWarning):
                _print_problems([message.error])
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _exit_quietly_on_interrupt(signum, frame) -> None:  # noqa: ARG001 - signal API
    """SIGINT after the command finished (while Python shuts down): no traceback from an
    exit handler and no exit code 0 — say so and exit with 130 at once."""
    try:
        sys.stderr.write("rexfit: interrupted while exiting\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_INTERRUPT)


#: The garbage collector's thresholds during a job run by the ``rexfit`` command: its youngest
#: generation is collected after this many net allocations (Python's default: 700), the older
#: ones after 20 collections of the one below. Tracing a program allocates millions of
#: short-lived objects; at the default thresholds the collector took 0.25 CPU-s of jobs/al-eam's
#: 7 (0.13 of them during the imports, which now run with it off), at these 0.06.
GC_THRESHOLDS = (20_000, 20, 20)


def _freeze_imported_objects() -> None:
    """Move the objects the imports made (JAX's, NumPy's, rexfit's: about 130,000) to the
    garbage collector's permanent generation, so that its full collections during the run
    do not traverse them again (``gc.freeze``; they live until the process ends anyway),
    and collect from now on at :data:`GC_THRESHOLDS` (the imports ran without collections).
    Only when the process ends after the command: objects frozen in a longer-lived process
    (rexfit.cli.main called from Python) would never be collected."""
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()


def _end_process(code: int) -> None:
    """End the process at once with ``code`` after a job ran: the output is flushed and the
    exit handlers run (``atexit``), but not Python's teardown of the modules JAX and rexfit
    imported (clearing about 1,000 module namespaces and collecting their objects, 0.2–0.4
    CPU-s that write nothing; every file of the run is closed by then)."""
    import atexit

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """The ``rexfit`` command; returns the exit code (SPEC §1, docs/cli.md).  Called with
    ``argv`` None (the ``rexfit`` program itself), a command that ran a job ends the process
    when it is done (:func:`_end_process`)."""
    command_line = argv is None
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv), command_line=command_line)
    finally:
        if command_line:  # the process ends after this: a late Ctrl-C exits cleanly with 130
            import signal

            try:
                signal.signal(signal.SIGINT, _exit_quietly_on_interrupt)
            except ValueError:  # not the main thread: leave the handler alone
                pass
    if command_line and "rexfit.run" in sys.modules:  # a job ran (JAX is imported)
        _end_process(code)
    return code


def _main(argv: list[str], *, command_line: bool = False) -> int:
    traceback = "--traceback" in argv
    try:
        if argv and argv[0] == "validate":
            return cmd_validate(argv[1:])
        if argv and argv[0] == "template":
            return cmd_template(argv[1:])
        if argv and argv[0] == "dataset-info":
            return cmd_dataset_info(argv[1:])
        if not argv:
            _run_parser().print_help(sys.stderr)
            return EXIT_INPUT
        return cmd_run(argv, command_line=command_line)
    except InputErrors as errs:
        if traceback:
            raise
        _print_problems(errs.errors)
        return EXIT_INPUT
    except InputError as err:
        if traceback:
            raise
        _print_problems([err])
        return EXIT_INPUT
    except NotImplementedInRexfit as err:
        if traceback:
            raise
        sys.stderr.write(f"rexfit: {err}\n")
        return EXIT_CALC
    except CalculationFailed as err:
        if traceback:
            raise
        run = sys.modules.get("rexfit.run")
        if run is not None and isinstance(err, run.OutputNotWritten):  # results kept elsewhere
            sys.stderr.write(f"rexfit: {err}\n")
        else:
            sys.stderr.write(f"rexfit: computation failed: {err}\n")
        return EXIT_CALC
    except KeyboardInterrupt as exc:
        if traceback:
            raise
        sys.stderr.write(f"rexfit: interrupted{f' {exc}' if str(exc) else ''}\n")
        return EXIT_INTERRUPT
