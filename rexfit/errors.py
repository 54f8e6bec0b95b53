"""The exception hierarchy of rexfit, named by intent.

Only the CLI formats these for the user; everything else raises them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """Where an element of a job came from: a file and a 1-based line number."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class RexfitError(Exception):
    """Base class of every error rexfit raises on purpose."""


class InputError(RexfitError):
    """One problem with the user's input, located at ``origin`` (file and line).

    ``severity`` is ``"error"`` or ``"warning"``.
    """

    def __init__(self, message: str, origin: Origin | None = None, *, severity: str = "error"):
        super().__init__(message)
        self.message = message
        self.origin = origin
        self.severity = severity

    def format(self) -> str:
        prefix = f"{self.origin}: " if self.origin is not None else ""
        kind = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{kind}{self.message}"

    def __str__(self) -> str:
        return self.format()


class InputErrors(RexfitError):
    """Several input errors found in one pass; all of them are reported together."""

    def __init__(self, errors: list[InputError]):
        self.errors = list(errors)
        super().__init__("\n".join(e.format() for e in self.errors))


class InputWarning(UserWarning):
    """A problem with the input that does not stop the job (some frames of a dataset file lack
    a quantity the dataset fits), issued with :func:`warnings.warn` where it is found.

    ``error`` is the :class:`InputError` (severity ``"warning"``) that says where and what; the
    command line prints it as ``path:line: warning: message``.
    """

    def __init__(self, error: InputError):
        super().__init__(error.format())
        self.error = error


class CalculationFailed(RexfitError):
    """A computation failed (relaxation diverged, NaN in the objective, ...).

    The message names the structure and property concerned.
    """


class GeometryError(CalculationFailed):
    """A geometry no neighbour list can be built for: a non-finite or absurdly large
    position, cell vector or cutoff, a degenerate periodic cell, or more periodic images,
    pairs or triplets than the bounds of :mod:`rexfit.structures.neighbors` allow.

    Raised by the list builders, which do not know the structure; callers that do re-raise
    it naming the structure (an :class:`InputError` when the geometry is the user's, a
    :class:`CalculationFailed` when a relaxation made it).  Left alone it is a
    :class:`CalculationFailed`, never a traceback.
    """


class NotImplementedInRexfit(RexfitError):
    """A feature the job language describes but this version of rexfit does not compute yet."""
