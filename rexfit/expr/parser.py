"""Recursive-descent parser of the muparser subset used by ``<user-function>``.

Precedence, loosest first: ``?:`` (right), ``||``, ``&&``, comparisons, ``+ -``,
``* /``, unary ``- +``, ``^`` (right; ``-2^2 == -4``, ``2^-1 == 0.5``), operands.
"""

from __future__ import annotations

import math

from .ast import FUNCTIONS, Binary, Call, Compare, Expr, Logical, Name, Number, Ternary, Unary, depth
from .errors import ExpressionError, unknown_message
from .lexer import Token, tokenize

MAX_DEPTH = 100  # nesting of parentheses, signs and conditionals
MAX_TREE_DEPTH = 400  # height of the resulting tree

_BINARY = {
    "||": (1, Logical), "&&": (2, Logical),
    **{op: (3, Compare) for op in ("<", "<=", ">", ">=", "==", "!=")},
    "+": (4, Binary), "-": (4, Binary), "*": (5, Binary), "/": (5, Binary),
}


def parse(text: str) -> Expr:
    """Parse ``text`` into an AST; raise ExpressionError with the offending position."""
    expr = _Parser(text).parse()
    if depth(expr) > MAX_TREE_DEPTH:
        raise ExpressionError(f"expression too long or nested (more than {MAX_TREE_DEPTH} levels)", 0)
    return expr


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.tok: Token = next(self.tokens)
        self.prev: Token | None = None
        self.nesting = 0

    def advance(self) -> Token:
        self.prev, self.tok = self.tok, next(self.tokens)
        return self.prev

    def at(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise ExpressionError("empty expression", 0)
        expr = self.conditional()
        if self.tok.kind != "end":
            self.unexpected()
        return expr

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExpressionError(f"expression nested too deeply (more than {MAX_DEPTH} levels)", self.tok.position)

    def conditional(self) -> Expr:
        self.enter()
        expr = self.binary(1)
        if self.at("?"):
            question = self.advance()
            if_true = self.conditional()
            if not self.at(":"):
                if self.tok.kind in ("number", "name") or self.at("("):
                    self.unexpected()
                raise ExpressionError("'?' without matching ':'", question.position)
            self.advance()
            expr = Ternary(expr, if_true, self.conditional(), question.position)
        self.nesting -= 1
        return expr

    def binary(self, min_precedence: int) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in _BINARY:
            precedence, node = _BINARY[self.tok.text]
            if precedence < min_precedence:
                break
            op = self.advance()
            left = node(op.text, left, self.binary(precedence + 1), op.position)
        return left

    def unary(self) -> Expr:
        if not self.at("-", "+"):
            return self.power()
        self.enter()
        op = self.advance()
        expr = Unary(op.text, self.unary(), op.position)
        self.nesting -= 1
        return expr

    def power(self) -> Expr:
        base = self.operand()
        if self.at("^"):
            op = self.advance()
            return Binary("^", base, self.unary(), op.position)
        return base

    def operand(self) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            value = float(tok.text)
            if not math.isfinite(value):
                raise ExpressionError(f"number {tok.text!r} is out of range", tok.position)
            return Number(value, tok.position)
        if tok.kind == "name":
            self.advance()
            return self.call(tok) if self.at("(") else Name(tok.text, tok.position)
        if self.at("("):
            self.advance()
            expr = self.conditional()
            self.close(tok, "unclosed '('")
            return expr
        self.missing_operand()

    def call(self, name: Token) -> Call:
        if name.text not in FUNCTIONS:
            raise ExpressionError(unknown_message("function", name.text, sorted(FUNCTIONS)), name.position)
        paren = self.advance()
        args = []
        if not self.at(")"):
            args.append(self.conditional())
            while self.at(","):
                self.advance()
                args.append(self.conditional())
        self.close(paren, f"unclosed '(' of {name.text}()")
        least, most = FUNCTIONS[name.text]
        if not least <= len(args) <= (most if most is not None else len(args)):
            wanted = f"at least {least}" if most is None else str(least)
            plural = "" if wanted == "1" else "s"
            raise ExpressionError(f"{name.text}() takes {wanted} argument{plural}, got {len(args)}", name.position)
        return Call(name.text, tuple(args), name.position)

    def close(self, opening: Token, message: str) -> None:
        if self.at(")"):
            self.advance()
        elif self.tok.kind == "end":
            raise ExpressionError(message, opening.position)
        else:
            self.unexpected()

    def unexpected(self) -> None:
        """Raise for a token that cannot follow a complete operand."""
        tok = self.tok
        if tok.kind in ("number", "name") or tok.text == "(":
            message = f"missing operator before {tok.text!r}"
        elif tok.text == ")":
            message = "unmatched ')'"
        elif tok.text == ":":
            message = "':' without matching '?'"
        else:
            message = f"unexpected {tok.text!r}"
        raise ExpressionError(message, tok.position)

    def missing_operand(self) -> None:
        """Raise where an operand was expected but ``self.tok`` found."""
        tok, prev = self.tok, self.prev
        if prev is not None and (tok.kind == "end" or tok.text in (")", ",")):
            if prev.text == "(" and tok.text == ")":
                raise ExpressionError("empty parentheses", prev.position)
            raise ExpressionError(f"missing operand after {prev.text!r}", prev.position)
        raise ExpressionError(f"missing operand before {tok.text!r}", tok.position)
