"""Reading typed values (numbers, booleans, expressions) out of nodes, with located errors.

Every reader appends to an error list instead of raising, so one pass reports every problem.
"""

from __future__ import annotations

import math
import os

from rexfit import expr as ex
from rexfit.errors import InputError, Origin
from rexfit.job.nodes import Node

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


class Collector:
    """Accumulates errors and warnings while a job is read."""

    def __init__(self, job_dir: str):
        self.errors: list[InputError] = []
        self.warnings: list[InputError] = []
        self.job_dir = job_dir

    def error(self, message: str, origin: Origin) -> None:
        self.errors.append(InputError(message, origin))

    def warn(self, message: str, origin: Origin) -> None:
        self.warnings.append(InputError(message, origin, severity="warning"))

    # ------------------------------------------------------------------ scalars

    def number(self, text: str, node: Node, what: str) -> float | None:
        try:
            return float(text.strip())
        except ValueError:
            self.error(f"{what}: '{text.strip()}' is not a number", node.origin)
            return None

    def attr_number(self, node: Node, name: str, default: float | None = None) -> float | None:
        raw = node.get(name)
        if raw is None:
            return default
        return self.number(raw, node, f"<{node.tag}> attribute '{name}'")

    def attr_int(self, node: Node, name: str, default: int | None = None) -> int | None:
        raw = node.get(name)
        if raw is None:
            return default
        try:
            return int(raw.strip())
        except ValueError:
            self.error(f"<{node.tag}> attribute '{name}': '{raw}' is not an integer", node.origin)
            return default

    def attr_bool(self, node: Node, name: str, default: bool) -> bool:
        raw = node.get(name)
        if raw is None:
            return default
        v = raw.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        self.error(f"<{node.tag}> attribute '{name}': '{raw}' is not true or false", node.origin)
        return default

    def child_number(self, node: Node, tag: str, *, required: bool = False) -> float | None:
        child = node.find(tag)
        if child is None:
            if required:
                self.error(f"<{node.tag}> needs a <{tag}> value", node.origin)
            return None
        return self.number(child.value, child, f"<{tag}>")

    # ------------------------------------------------------------------ checks

    def positive(self, value: float | None, what: str, origin: Origin) -> None:
        if value is not None and not (math.isfinite(value) and value > 0):
            self.error(f"{what} must be a positive number, got {value:g}", origin)

    def finite(self, value: float | None, what: str, origin: Origin) -> None:
        if value is not None and not math.isfinite(value):
            self.error(f"{what} must be a finite number, got {value}", origin)

    def bounds(self, lo: float | None, hi: float | None, what: str, origin: Origin) -> None:
        for v, name in ((lo, "min"), (hi, "max")):
            if v is not None and math.isnan(v):
                self.error(f"{what}: {name} is NaN", origin)
        if lo is not None and hi is not None and lo > hi:
            self.error(f"{what}: min ({lo:g}) is larger than max ({hi:g})", origin)

    def file(self, node: Node, text: str | None = None) -> str | None:
        """Resolve a file name relative to the file the element came from; error if missing."""
        name = (text if text is not None else node.value).strip()
        if not name:
            self.error(f"<{node.tag}> needs a file name", node.origin)
            return None
        path = os.path.normpath(os.path.join(os.path.dirname(node.origin.path), name))
        if not os.path.isfile(path):
            self.error(f"<{node.tag}>: file not found: '{name}' (looked for {path})", node.origin)
            return None
        return path

    # ------------------------------------------------------------------ expressions

    def expression(self, node: Node, allowed: set[str] | None) -> object | None:
        """Parse the text of ``node`` as an expression; check its names against ``allowed``."""
        text = node.text
        try:
            tree = ex.parse(text)
            if allowed is not None:
                ex.check_names(tree, allowed)
            return tree
        except ex.ExpressionError as err:
            line_offset, column = err.locate(text)
            origin = Origin(node.origin.path, node.origin.line + line_offset)
            self.error(f"<{node.tag}> column {column}: {err.message}", origin)
            return None

