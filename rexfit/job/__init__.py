"""The job layer: read a job file, validate it, and return a :class:`JobSpec`.

Nothing after this layer touches lxml.
"""

from __future__ import annotations

import dataclasses

from rexfit.errors import InputError, InputErrors
from rexfit.job.build import build_job
from rexfit.job.load import load_tree, to_nodes
from rexfit.job.schema import validate
from rexfit.job.spec import JobSpec


def load_job(path: str) -> tuple[JobSpec, list[InputError]]:
    """Load, validate and check the job at ``path``.

    Returns the spec and a list of warnings. Raises :class:`InputErrors` with every error found.
    """
    try:
        loaded = load_tree(path)
    except InputError as err:
        raise InputErrors([err]) from None
    errors = validate(loaded)
    if errors:
        raise InputErrors(errors)
    spec, warnings = build_job(to_nodes(loaded), path)
    return dataclasses.replace(spec, tree=loaded), warnings


__all__ = ["JobSpec", "load_job"]
