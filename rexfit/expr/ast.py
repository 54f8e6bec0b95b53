"""AST of the expression language, name checks and canonical printing.

Nodes are frozen dataclasses; ``position`` (0-based offset into the parsed text: the
operator for operators, the start for operands) is excluded from equality.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Union

from .errors import ExpressionError, unknown_message

#: Built-in functions: name -> (minimum, maximum) number of arguments (None: unbounded).
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    **{f: (1, 1) for f in (
        "exp", "log", "ln", "log10", "log2", "sqrt", "abs", "sign",
        "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
    )},
    "min": (2, None),
    "max": (2, None),
}
#: Built-in constants (muparser names); always allowed, never free names.
CONSTANTS: dict[str, float] = {"_pi": math.pi, "_e": math.e}


@dataclass(frozen=True)
class Number:
    value: float
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Name:
    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "+"
    operand: Expr
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    op: str  # "+", "-", "*", "/", "^"
    left: Expr
    right: Expr
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Compare:
    op: str  # "<", "<=", ">", ">=", "==", "!="; yields 1.0 or 0.0
    left: Expr
    right: Expr
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Logical:
    op: str  # "&&" or "||"; nonzero is true; yields 1.0 or 0.0
    left: Expr
    right: Expr
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Ternary:
    condition: Expr
    if_true: Expr
    if_false: Expr
    position: int = field(default=0, compare=False)


Expr = Union[Number, Name, Unary, Binary, Compare, Logical, Call, Ternary]


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct subexpressions of ``expr``, in text order."""
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, (Binary, Compare, Logical)):
        return (expr.left, expr.right)
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, Ternary):
        return (expr.condition, expr.if_true, expr.if_false)
    return ()


def walk(expr: Expr) -> Iterator[Expr]:
    """All nodes, pre-order; leaves come in text order."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def depth(expr: Expr) -> int:
    """Height of the tree (a leaf has depth 1)."""
    stack, deepest = [(expr, 1)], 0
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in children(node))
    return deepest


def free_names(expr: Expr) -> frozenset[str]:
    """Names the expression reads, excluding the built-in constants."""
    return frozenset(n.name for n in walk(expr) if isinstance(n, Name) and n.name not in CONSTANTS)


def check_names(expr: Expr, allowed: Iterable[str]) -> None:
    """Raise ExpressionError at the first name that is neither in ``allowed`` nor a constant.

    The message lists ``allowed`` in the given order (sorted if it is a set).
    """
    if isinstance(allowed, (set, frozenset)):
        allowed = sorted(allowed, key=lambda s: (s.lower(), s))
    known = list(allowed)
    for node in walk(expr):
        if isinstance(node, Name) and node.name not in known and node.name not in CONSTANTS:
            raise ExpressionError(unknown_message("name", node.name, known, CONSTANTS), node.position)


_PRECEDENCE = {
    "||": 1, "&&": 2,
    "<": 3, "<=": 3, ">": 3, ">=": 3, "==": 3, "!=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5,
}
_UNARY, _POWER, _ATOM = 6, 7, 8


def to_source(expr: Expr) -> str:
    """Canonical muparser text with minimal parentheses; ``parse(to_source(e)) == e``."""
    return _source(expr)[0]


def _format_number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"cannot print non-finite number {value!r}")
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value)) if math.copysign(1.0, value) > 0 else f"-{int(-value)}"
    return repr(float(value))


def _source(expr: Expr) -> tuple[str, int]:
    """Text of ``expr`` and its binding strength."""

    def wrap(child: Expr, at_least: int) -> str:
        text, strength = _source(child)
        return text if strength >= at_least else f"({text})"

    if isinstance(expr, Number):
        text = _format_number(expr.value)
        return text, _UNARY if text.startswith("-") else _ATOM
    if isinstance(expr, Name):
        return expr.name, _ATOM
    if isinstance(expr, Call):
        return f"{expr.function}({', '.join(to_source(a) for a in expr.args)})", _ATOM
    if isinstance(expr, Unary):
        return expr.op + wrap(expr.operand, _UNARY), _UNARY
    if isinstance(expr, Binary) and expr.op == "^":
        return f"{wrap(expr.left, _ATOM)}^{wrap(expr.right, _UNARY)}", _POWER
    if isinstance(expr, (Binary, Compare, Logical)):
        p = _PRECEDENCE[expr.op]
        return f"{wrap(expr.left, p)} {expr.op} {wrap(expr.right, p + 1)}", p
    if isinstance(expr, Ternary):
        return f"{wrap(expr.condition, 1)} ? {wrap(expr.if_true, 0)} : {wrap(expr.if_false, 0)}", 0
    raise TypeError(f"not an expression node: {expr!r}")
