"""Imports follow the one-way flow job -> spec -> model -> physics -> objective -> fit ->
report/export: no module imports a layer that comes after it (or the input layer, from the
engine). The rules are those of the shared ``tools/import_flow.py``, with the entry points
(cli.py, the run package (the driver and the Python API), __main__.py) allowed to import everything."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "rexfit"

#: Modules that drive a whole job; they may import any layer.
ENTRY_POINTS = {"cli", "run", "__main__"}
#: The job's data contract (specs, parameter paths, the language's tables), which the
#: objective, the fit and the datasets may read.
CONTRACT = {"spec", "names", "language"}
CONTRACT_USERS = {"objective", "fit", "datasets"}
#: Layer -> the layers that may import it (layers not listed may be imported by anyone).
IMPORTERS = {
    "job": {"model", "report", "export", "ase"},
    "report": {"export"},
    "export": set(),
    "run": {"cli", "__main__"},
    "cli": {"__main__"},
}


def layer_of(path: Path, package: Path) -> str:
    """The layer of a module: its subpackage of rexfit, or its own name at the top level."""
    rel = path.relative_to(package)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported(path: Path, package: Path, tree: ast.AST):
    """(line, layer, submodule) per import of rexfit in a module, relative imports resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if node.level:
                base = path.relative_to(package).parts[:-node.level]
                module = ".".join(("rexfit", *base, module))
            targets = [(module, a.name) for a in node.names]
        else:
            continue
        for module, name in targets:
            parts = module.split(".")
            if parts == ["rexfit"] and name:  # from rexfit import job
                parts = ["rexfit", name]
                name = ""
            if parts[0] == "rexfit" and len(parts) > 1:
                yield node.lineno, parts[1], parts[2] if len(parts) > 2 else name


def against_the_flow(package: Path = PACKAGE) -> list[str]:
    """``file:line: importer -> imported`` for every import that runs against the flow."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        src = layer_of(path, package)
        if src in ENTRY_POINTS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, dst, sub in imported(path, package, tree):
            if dst == src or dst not in IMPORTERS or src in IMPORTERS[dst]:
                continue
            if dst == "job" and sub in CONTRACT and src in CONTRACT_USERS:
                continue
            bad.append(f"{path.relative_to(package.parent)}:{line}: {src} -> {dst}")
    return bad


def test_no_import_against_the_flow():
    bad = against_the_flow()
    assert not bad, "imports against the flow (rules: this file's docstring):\n" + "\n".join(bad)


def test_the_check_sees_a_bad_import(tmp_path):
    """An engine module importing the job builder, report (relatively) or export is caught;
    the objective reading the job's contract and an entry point importing anything are not."""
    pkg = tmp_path / "rexfit"
    (pkg / "physics").mkdir(parents=True)
    (pkg / "objective").mkdir()
    (pkg / "physics" / "bad.py").write_text("from rexfit.job.build import PROPERTIES\n"
                                           "from ..report import lines\n"
                                           "from rexfit import export\n")
    (pkg / "objective" / "ok.py").write_text("from rexfit.job import spec\n"
                                            "from rexfit.job.language import PROPERTIES\n")
    (pkg / "run").mkdir()
    (pkg / "run" / "api.py").write_text("import rexfit.run\nfrom rexfit.job import load_job\n")
    assert against_the_flow(pkg) == ["rexfit/physics/bad.py:1: physics -> job",
                                     "rexfit/physics/bad.py:2: physics -> report",
                                     "rexfit/physics/bad.py:3: physics -> export"]
