"""rexfit: fit interatomic potentials from one XML job file, with exact JAX gradients.

rexfit computes in 64-bit floating point always (SPEC §2a): importing the package turns on
JAX's 64-bit mode — at once if JAX is already imported, otherwise the moment JAX is imported —
so no module of rexfit ever makes a float32 array.  ``import rexfit`` itself does not import JAX
(which takes a second or more), so ``rexfit --version``, ``rexfit validate`` and
``rexfit template`` stay fast.  JAX's 64-bit mode is a process-wide setting: other JAX code in
the same process computes in 64-bit too.

The Python API (SPEC §2a, docs/python-api.md)::

    import rexfit
    res = rexfit.run("job.xml", no_fit=True)   # a rexfit.Result
    res.objective, res.parameters, res.calculator()

``rexfit.run`` (the module :mod:`rexfit.run`, callable as :func:`rexfit.run.api.run`),
``rexfit.Result``, ``rexfit.InputErrors``, ``rexfit.InputError`` and
``rexfit.CalculationFailed`` are loaded on first use.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"


def _enable_x64(jax) -> None:
    jax.config.update("jax_enable_x64", True)


class _X64WhenJaxLoads:
    """A one-shot import hook: lets the normal finders locate ``jax``, then enables 64-bit mode
    right after the ``jax`` package has been executed, before anyone can use it."""

    def find_spec(self, name, path=None, target=None):
        if name != "jax":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = getattr(loader, "exec_module", None)
        if run is None:
            return None  # an unusual loader: leave it; rexfit.run enables x64 when it runs

        def exec_module(module):
            run(module)
            self.remove()
            _enable_x64(module)

        loader.exec_module = exec_module
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


if "jax" in sys.modules and hasattr(sys.modules["jax"], "config"):
    _enable_x64(sys.modules["jax"])
elif not any(isinstance(f, _X64WhenJaxLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _X64WhenJaxLoads())


#: Names loaded on first use: {name: module defining it}.
_LAZY = {
    "Result": "rexfit.run.api",
    "InputError": "rexfit.errors",
    "InputErrors": "rexfit.errors",
    "CalculationFailed": "rexfit.errors",
    "RexfitError": "rexfit.errors",
}


def __getattr__(name: str):
    import importlib

    if name == "run":  # the module rexfit.run, callable as rexfit.run.api.run (imports JAX)
        return importlib.import_module("rexfit.run")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rexfit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "run", *_LAZY])


__all__ = ["CalculationFailed", "InputError", "InputErrors", "Result", "RexfitError", "run",
           "__version__"]
