"""The expression language of ``<user-function>``: a muparser subset compiled to JAX.

``parse`` text into an AST, ``check_names`` against the allowed variables,
``compile_expr`` into a pure JAX function, ``to_source`` to print it back.
Nothing here ever evaluates Python source.
"""

from .ast import (
    CONSTANTS,
    FUNCTIONS,
    Binary,
    Call,
    Compare,
    Expr,
    Logical,
    Name,
    Number,
    Ternary,
    Unary,
    check_names,
    free_names,
    to_source,
    walk,
)
from .errors import ExpressionError
from .parser import parse

__all__ = [
    "CONSTANTS", "FUNCTIONS", "Binary", "Call", "Compare", "Expr", "ExpressionError", "Logical",
    "Name", "Number", "Ternary", "Unary", "check_names", "compile_expr", "free_names", "parse",
    "to_source", "walk",
]


def __getattr__(name: str):
    """``compile_expr`` is imported on first use: it imports JAX, which reading and checking a
    job (``rexfit validate``) never needs."""
    if name == "compile_expr":
        from .compile import compile_expr

        return compile_expr
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
