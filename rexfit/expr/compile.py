"""Compile an AST to a pure JAX function by composing closures (no Python source is generated).

Semantics: comparisons and ``&&``/``||`` yield 1.0/0.0, nonzero counts as true, both
sides are always evaluated.  ``c ? a : b`` is ``jnp.where(c != 0, a, b)``: values are
right, but as with any ``jnp.where`` the gradient is NaN where the branch *not* taken
has a non-finite derivative (e.g. ``r > 0 ? sqrt(r) : 0`` at ``r < 0``).  ``x^n`` with
an integer literal ``n`` (optionally signed) uses ``lax.integer_pow``, so negative
bases work and differentiate exactly; other powers use ``jnp.power``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax.numpy as jnp
from jax import lax

from .ast import CONSTANTS, Binary, Call, Compare, Expr, Logical, Name, Number, Ternary, Unary, check_names, to_source

_Body = Callable[[tuple], object]

_FUNCTIONS: dict[str, Callable] = {
    "exp": jnp.exp, "log": jnp.log, "ln": jnp.log, "log10": jnp.log10, "log2": jnp.log2,
    "sqrt": jnp.sqrt, "abs": jnp.abs, "sign": jnp.sign,
    "sin": jnp.sin, "cos": jnp.cos, "tan": jnp.tan,
    "asin": jnp.arcsin, "acos": jnp.arccos, "atan": jnp.arctan,
    "sinh": jnp.sinh, "cosh": jnp.cosh, "tanh": jnp.tanh,
    "min": lambda *a: functools.reduce(jnp.minimum, a),
    "max": lambda *a: functools.reduce(jnp.maximum, a),
}
_ARITHMETIC = {"+": jnp.add, "-": jnp.subtract, "*": jnp.multiply, "/": jnp.true_divide, "^": jnp.power}
_COMPARE = {
    "<": jnp.less, "<=": jnp.less_equal, ">": jnp.greater, ">=": jnp.greater_equal,
    "==": jnp.equal, "!=": jnp.not_equal,
}
_LOGICAL = {"&&": jnp.logical_and, "||": jnp.logical_or}
_MAX_INTEGER_POWER = 1024


def compile_expr(expr: Expr, arg_names: Sequence[str]) -> Callable:
    """Return ``f(*args)`` evaluating ``expr`` with ``arg_names[i] = args[i]``.

    ``f`` is pure (jit/grad/vmap-safe); its result has the broadcast shape of the
    arguments and their common floating dtype.  Unknown names raise ExpressionError.
    """
    arg_names = tuple(arg_names)
    if len(set(arg_names)) != len(arg_names):
        raise ValueError(f"duplicate argument names: {arg_names}")
    check_names(expr, arg_names)
    body = _build(expr, {name: i for i, name in enumerate(arg_names)})

    def function(*args):
        if len(args) != len(arg_names):
            raise TypeError(f"expression takes {len(arg_names)} argument(s) {arg_names}, got {len(args)}")
        args = tuple(jnp.asarray(a, jnp.result_type(a, 1.0)) for a in args)
        dtype = jnp.result_type(*args, 1.0)
        shape = jnp.broadcast_shapes(*(a.shape for a in args))
        return jnp.broadcast_to(jnp.asarray(body(args), dtype), shape)

    function.__doc__ = f"f({', '.join(arg_names)}) = {to_source(expr)}"
    return function


def _truth(value):
    return jnp.not_equal(value, 0.0)


def _as_float(condition):
    return jnp.where(condition, 1.0, 0.0)


def _integer_exponent(expr: Expr) -> int | None:
    sign = 1
    while isinstance(expr, Unary):
        sign, expr = (-sign if expr.op == "-" else sign), expr.operand
    if isinstance(expr, Number) and expr.value.is_integer() and abs(expr.value) <= _MAX_INTEGER_POWER:
        return sign * int(expr.value)
    return None


def _build(expr: Expr, index: dict[str, int]) -> _Body:
    """A closure ``args -> value`` for ``expr``."""
    if isinstance(expr, Number):
        value = expr.value
        return lambda args: value
    if isinstance(expr, Name):
        if expr.name in index:
            i = index[expr.name]
            return lambda args: args[i]
        value = CONSTANTS[expr.name]
        return lambda args: value
    if isinstance(expr, Unary):
        operand = _build(expr.operand, index)
        return (lambda args: jnp.negative(operand(args))) if expr.op == "-" else operand
    if isinstance(expr, Call):
        fn, parts = _FUNCTIONS[expr.function], [_build(a, index) for a in expr.args]
        return lambda args: fn(*(p(args) for p in parts))
    if isinstance(expr, Ternary):
        cond, yes, no = (_build(e, index) for e in (expr.condition, expr.if_true, expr.if_false))
        return lambda args: jnp.where(_truth(cond(args)), yes(args), no(args))
    left = _build(expr.left, index)
    if isinstance(expr, Binary) and expr.op == "^" and (n := _integer_exponent(expr.right)) is not None:
        return lambda args: lax.integer_pow(jnp.asarray(left(args)), n)
    right = _build(expr.right, index)
    if isinstance(expr, Binary):
        op = _ARITHMETIC[expr.op]
        return lambda args: op(left(args), right(args))
    if isinstance(expr, Compare):
        op = _COMPARE[expr.op]
        return lambda args: _as_float(op(left(args), right(args)))
    if isinstance(expr, Logical):
        op = _LOGICAL[expr.op]
        return lambda args: _as_float(op(_truth(left(args)), _truth(right(args))))
    raise TypeError(f"not an expression node: {expr!r}")
