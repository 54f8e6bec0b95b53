"""Tests of rexfit.expr: parsing, errors, name checks, compilation to JAX, printing."""

import builtins
import math
import pickle
import random
import re
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import rexfit.expr as ex  # noqa: E402
from rexfit.errors import RexfitError  # noqa: E402
from rexfit.expr import (  # noqa: E402
    Binary, Call, ExpressionError, Name, Number, Ternary, Unary,
    check_names, compile_expr, free_names, parse, to_source,
)

ENV = {"r": 1.7, "cutoff": 5.0, "h": 0.5, "A": 3.2, "lambda": 1.3, "D": 2.0, "rho": 0.7,
       "a": 1.5, "b": -2.25, "c": 0.75}


def evaluate(text, env=ENV):
    names = tuple(env)
    return compile_expr(parse(text), names)(*(env[n] for n in names))


# ---------------------------------------------------------------- values

r, cutoff, h, A, lam, D, rho, a, b, c = (ENV[k] for k in ENV)
VALUES = [
    ("1 - 1/(1 + ((r - cutoff) / h)^4)", 1 - 1 / (1 + ((r - cutoff) / h) ** 4)),
    ("A * exp(-lambda * r)", A * np.exp(-lam * r)),
    ("-D * sqrt(rho)", -D * np.sqrt(rho)),
    ("-2^2", -4.0),
    ("2^3^2", 512.0),
    ("(2^3)^2", 64.0),
    ("2^-1", 0.5),
    ("-a^2", -(a**2)),
    ("(-a)^2", a**2),
    ("b^2", b**2),
    ("b^3", b**3),
    ("b^-2", b**-2.0),
    ("a^0.5", a**0.5),
    ("a^c", a**c),
    ("a - b - c", a - b - c),
    ("a - (b - c)", a - (b - c)),
    ("a / b / c", a / b / c),
    ("a / (b / c)", a / (b / c)),
    ("a + b * c", a + b * c),
    ("a * b + c", a * b + c),
    ("a * -b", a * -b),
    ("--a", a),
    ("+a", a),
    ("-+a", -a),
    ("a < b", 0.0), ("a <= a", 1.0), ("a > b", 1.0), ("b >= a", 0.0), ("a == a", 1.0), ("a != a", 0.0),
    ("1 + a < b", 0.0),
    ("a < b == 0", 1.0),
    ("b < c && c < a", 1.0),
    ("a > b || c > 1", 1.0),
    ("a && 0", 0.0),
    ("0 || 0", 0.0),
    ("1 || 0 && 0", 1.0),
    ("a > b ? a : b", a),
    ("a < b ? 1 : b < c ? 2 : 3", 2.0),
    ("a ? b ? 1 : 2 : 3", 1.0),
    ("0 ? 1 : 2 + 3", 5.0),
    ("(a > 0 ? a : b) * 2", 2 * a),
    ("exp(a) + log(a) + ln(c) + log10(a) + log2(a)",
     np.exp(a) + np.log(a) + np.log(c) + np.log10(a) + np.log2(a)),
    ("sqrt(a) + sin(a) + cos(a) + tan(a)", np.sqrt(a) + np.sin(a) + np.cos(a) + np.tan(a)),
    ("asin(c) + acos(c) + atan(b)", np.arcsin(c) + np.arccos(c) + np.arctan(b)),
    ("sinh(b) + cosh(b) + tanh(b)", np.sinh(b) + np.cosh(b) + np.tanh(b)),
    ("abs(b) + sign(b)", abs(b) - 1),
    ("min(a, b) + max(a, b, c) + min(a, b, c)", b + a + b),
    ("_pi + _e + sin(_pi / 2)", math.pi + math.e + 1),
    ("1e-3 + .5 + 1.e2 + 2.5E+2 + 007", 0.001 + 0.5 + 100 + 250 + 7),
    (" A *\n\texp( -lambda\r\n* r ) ", A * np.exp(-lam * r)),
]


@pytest.mark.parametrize("text, expected", VALUES)
def test_values(text, expected):
    np.testing.assert_allclose(evaluate(text), expected, rtol=1e-14, atol=0)


def test_constant_broadcasts_to_argument_shape_and_dtype():
    f = compile_expr(parse("2"), ("r",))
    out = f(jnp.ones((3, 2), jnp.float32))
    assert out.shape == (3, 2) and out.dtype == jnp.float32
    assert compile_expr(parse("r < 1"), ("r",))(np.float32(0.5)).dtype == jnp.float32
    assert compile_expr(parse("r"), ("r",))(3).dtype == jnp.float64  # integers become floats
    assert float(compile_expr(parse("1/0"), ())()) == math.inf


# ---------------------------------------------------------------- gradients, vmap, jit

SCREEN = compile_expr(parse("1 - 1/(1 + ((r - cutoff) / h)^4)"), ("r", "cutoff", "h"))


def screen_dr(r, c, h):
    u = (r - c) / h
    return 4 * u**3 / h / (1 + u**4) ** 2


GRADIENTS = [
    # text, args, argnum, analytic derivative
    ("1 - 1/(1 + ((r - cutoff) / h)^4)", ("r", "cutoff", "h"), (4.2, 5.0, 0.5), 0, screen_dr(4.2, 5.0, 0.5)),
    ("1 - 1/(1 + ((r - cutoff) / h)^4)", ("r", "cutoff", "h"), (4.2, 5.0, 0.5), 1, -screen_dr(4.2, 5.0, 0.5)),
    ("A * exp(-lambda * r)", ("A", "lambda", "r"), (3.2, 1.3, 1.7), 2, -3.2 * 1.3 * np.exp(-1.3 * 1.7)),
    ("A * exp(-lambda * r)", ("A", "lambda", "r"), (3.2, 1.3, 1.7), 1, -3.2 * 1.7 * np.exp(-1.3 * 1.7)),
    ("-D * sqrt(rho)", ("D", "rho"), (2.0, 0.7), 1, -2.0 / (2 * np.sqrt(0.7))),
    ("(r - c)^4", ("r", "c"), (1.0, 3.0), 0, 4 * (1.0 - 3.0) ** 3),
    ("(r - c)^-2", ("r", "c"), (1.0, 3.0), 0, -2 * (1.0 - 3.0) ** -3),
    ("r^2.5", ("r",), (1.7,), 0, 2.5 * 1.7**1.5),
    ("r < c ? (r - c)^2 : 0", ("r", "c"), (1.0, 3.0), 0, 2 * (1.0 - 3.0)),
    ("r < c ? (r - c)^2 : 0", ("r", "c"), (4.0, 3.0), 0, 0.0),
    ("max(r, c) * min(r, c)", ("r", "c"), (1.0, 3.0), 0, 3.0),
    ("tanh(r) / r", ("r",), (0.8,), 0, (1 - np.tanh(0.8) ** 2) / 0.8 - np.tanh(0.8) / 0.64),
]


@pytest.mark.parametrize("text, names, args, argnum, expected", GRADIENTS)
def test_gradients(text, names, args, argnum, expected):
    f = compile_expr(parse(text), names)
    got = jax.grad(f, argnums=argnum)(*args)
    assert abs(got - expected) <= 1e-12 * max(1.0, abs(expected))


def test_ternary_gradient_caveat():
    """Documented jnp.where behaviour: a non-finite derivative in the branch not taken leaks NaN."""
    f = compile_expr(parse("r > 0 ? sqrt(r) : 0"), ("r",))
    assert float(f(-1.0)) == 0.0 and float(jax.grad(f)(4.0)) == 0.25
    assert math.isnan(float(jax.grad(f)(-1.0)))


def test_vmap_and_jit():
    rs = np.linspace(3.0, 6.0, 31)
    np.testing.assert_allclose(SCREEN(rs, 5.0, 0.5), 1 - 1 / (1 + ((rs - 5.0) / 0.5) ** 4), rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(SCREEN, (0, None, None))(rs, 5.0, 0.5), SCREEN(rs, 5.0, 0.5), rtol=1e-15)
    dr = jax.vmap(jax.grad(SCREEN), (0, None, None))(rs, 5.0, 0.5)
    np.testing.assert_allclose(dr, screen_dr(rs, 5.0, 0.5), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.jit(SCREEN)(rs, 5.0, 0.5), SCREEN(rs, 5.0, 0.5), rtol=1e-15)
    cut = compile_expr(parse("r < rc ? A * exp(-r) : 0"), ("r", "rc", "A"))
    np.testing.assert_allclose(jax.jit(cut)(rs, 4.5, 2.0), np.where(rs < 4.5, 2.0 * np.exp(-rs), 0.0), rtol=1e-15)
    assert jax.jit(jax.grad(cut, argnums=2))(4.0, 4.5, 2.0) == pytest.approx(np.exp(-4.0), rel=1e-14)


def test_compile_checks_names_and_arity():
    with pytest.raises(ExpressionError) as info:
        compile_expr(parse("A * exp(-lamda * r)"), ("A", "lambda", "r"))
    assert info.value.position == 9
    with pytest.raises(TypeError):
        compile_expr(parse("r"), ("r",))(1.0, 2.0)
    with pytest.raises(ValueError):
        compile_expr(parse("r"), ("r", "r"))


def test_function_tables_agree():
    from rexfit.expr.compile import _FUNCTIONS
    assert set(_FUNCTIONS) == set(ex.FUNCTIONS)


# ---------------------------------------------------------------- AST, names

def test_ast_positions_and_equality():
    e = parse("a + b*c")
    assert e == Binary("+", Name("a"), Binary("*", Name("b"), Name("c")))
    assert (e.position, e.left.position, e.right.position, e.right.right.position) == (2, 0, 5, 6)
    assert parse("-2^2") == Unary("-", Binary("^", Number(2.0), Number(2.0)))
    assert parse("a ? b : c ? d : e") == Ternary(Name("a"), Name("b"), Ternary(Name("c"), Name("d"), Name("e")))
    assert parse(" max(a,\n b)") == Call("max", (Name("a"), Name("b")))
    assert parse(" max(a,\n b)").args[1].position == 9


def test_free_names():
    assert free_names(parse("A * exp(-lambda * r) + _pi + cutoff * A")) == {"A", "lambda", "r", "cutoff"}
    assert free_names(parse("exp(2)")) == frozenset()


def test_check_names():
    check_names(parse("A * exp(-lambda * r) * _e"), {"A", "lambda", "r"})
    with pytest.raises(ExpressionError) as info:
        check_names(parse("A * exp(-lamda * r) + x"), ("A", "lambda", "r", "cutoff"))
    assert info.value.message == "unknown name 'lamda'; did you mean 'lambda'? (known: A, lambda, r, cutoff)"
    assert info.value.position == 9
    with pytest.raises(ExpressionError) as info:
        check_names(parse("r + zzz"), {"r", "cutoff", "A"})
    assert info.value.message == "unknown name 'zzz' (known: A, cutoff, r)"
    with pytest.raises(ExpressionError, match="did you mean 'A'"):
        check_names(parse("a"), {"A", "r"})
    with pytest.raises(ExpressionError, match="did you mean '_pi'"):
        check_names(parse("_pj"), {"r"})


# ---------------------------------------------------------------- errors

ERRORS = [
    # text, message, position
    ("", "empty expression", 0),
    ("  \n\t", "empty expression", 0),
    ("a @ b", "unexpected character '@'", 2),
    ("x[1]", "unexpected character '['", 1),
    ("'a'", "unexpected character \"'\"; strings are not supported", 0),
    ("a.b", "unexpected character '.' (attribute access is not supported)", 1),
    ("a = 1", "unexpected character '='; use '==' to compare", 2),
    ("a & b", "unexpected character '&'; use '&&' for logical and", 2),
    ("!a", "unexpected character '!'; there is no logical not (use 'x == 0')", 0),
    ("r λ", "unexpected character 'λ'", 2),
    ("2 ** 3", "'**' is not an operator; use ^ for powers", 2),
    ("2x", "malformed number '2x'", 0),
    ("1 + 1.2.3", "malformed number '1.2.3'", 4),
    ("1e999", "number '1e999' is out of range", 0),
    ("(1 + 2", "unclosed '('", 0),
    ("((1) + 2", "unclosed '('", 0),
    ("exp(1", "unclosed '(' of exp()", 3),
    ("1 + 2)", "unmatched ')'", 5),
    ("()", "empty parentheses", 0),
    ("1 +", "missing operand after '+'", 2),
    ("-", "missing operand after '-'", 0),
    ("(1 * )", "missing operand after '*'", 3),
    ("* 2", "missing operand before '*'", 0),
    ("1 + * 2", "missing operand before '*'", 4),
    ("max(1, )", "missing operand after ','", 5),
    ("a ? : b", "missing operand before ':'", 4),
    ("1 2", "missing operator before '2'", 2),
    ("2 (b)", "missing operator before '('", 2),
    ("a (b)", "unknown function 'a'", 0),
    ("(1, 2)", "unexpected ','", 2),
    ("lambda x: x", "missing operator before 'x'", 7),
    ("lambda: 0", "':' without matching '?'", 6),
    ("a : b", "':' without matching '?'", 2),
    ("a ? b", "'?' without matching ':'", 2),
    ("max(a ? b, c)", "'?' without matching ':'", 6),
    ("foo(1)", "unknown function 'foo'", 0),
    ("1 + expp(1)", "unknown function 'expp'; did you mean 'exp'?", 4),
    ("__import__('os')", "unknown function '__import__'", 0),
    ("exp(1, 2)", "exp() takes 1 argument, got 2", 0),
    ("sqrt()", "sqrt() takes 1 argument, got 0", 0),
    ("max(1)", "max() takes at least 2 arguments, got 1", 0),
    ("(" * 150 + "1" + ")" * 150, "expression nested too deeply (more than 100 levels)", 100),
    ("-" * 150 + "1", "expression nested too deeply (more than 100 levels)", 99),
    ("+".join(["1"] * 1000), "expression too long or nested (more than 400 levels)", 0),
]


@pytest.mark.parametrize("text, message, position", ERRORS)
def test_errors(text, message, position):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.message.startswith(message)
    assert info.value.position == position
    assert str(info.value) == info.value.message
    assert info.value.locate(text) == (0, position + 1) or "\n" in text


def test_locate_multiline():
    text = "A * exp(\n  -lambda * r)\n  + 1 +\n\t@ 2"
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.locate(text) == (3, 2)
    text = "\n  A * exp(-lamda * r)"
    with pytest.raises(ExpressionError) as info:
        check_names(parse(text), {"A", "lambda", "r"})
    assert info.value.locate(text) == (1, 12)
    assert ExpressionError("x", 0).locate("") == (0, 1)


def test_error_is_a_rexfit_error_and_pickles():
    e = pickle.loads(pickle.dumps(ExpressionError("bad", 3)))
    assert isinstance(e, RexfitError) and (e.message, e.position) == ("bad", 3)


# ---------------------------------------------------------------- no code execution

EVIL = [
    "__import__('os').system('touch {target}')",
    "__import__(\"os\").system(\"touch {target}\")",
    "exec('open(\"{target}\", \"w\")')",
    "eval('1')",
    "compile('1', '', 'eval')",
    "open('{target}', 'w')",
    "os.system('touch {target}')",
    "().__class__.__bases__[0].__subclasses__()",
    "r.__class__",
    "__builtins__",
    "globals()",
    "lambda: __import__('os')",
    "[x for x in (1,)]",
    "{target}",
    "exp(r); import os",
]


def test_nothing_is_ever_executed(monkeypatch, tmp_path):
    target = tmp_path / "x"
    calls = []

    def trap(name):
        def trapped(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called")
        return trapped

    good = compile_expr(parse("r + 1"), ("r",))
    float(good(1.0))  # warm up jax (it imports lazily) before trapping imports
    outcomes = []
    try:
        for name in ("eval", "exec", "compile", "open", "__import__"):  # __import__ last
            monkeypatch.setattr(builtins, name, trap(name))
        for template in EVIL:
            try:
                compile_expr(parse(template.format(target=target)), ("r",))
                outcomes.append("compiled")
            except ExpressionError:
                outcomes.append("rejected")
        compile_expr(parse("r < 2 ? exp(-r) : max(r, 2)^2"), ("r",))
        value = good(2.0)
    finally:
        monkeypatch.undo()
    assert calls == []
    assert outcomes == ["rejected"] * len(EVIL)
    assert value == 3.0
    assert not target.exists()


def test_source_never_evaluates_python():
    pattern = re.compile(r"(?<![\w.])(eval|exec|compile|__import__|getattr|globals|locals)\s*\(|importlib")
    for path in Path(ex.__file__).parent.glob("*.py"):
        assert not pattern.search(path.read_text()), path


# ---------------------------------------------------------------- printing

ROUND_TRIP = [text for text, _ in VALUES] + [
    "a - (b - c)", "a - (b + c)", "(a + b) * c", "a * (b * c)", "(a * b) * c", "a / (b * c)",
    "(a ? b : c) ? d : e", "a ? (b ? c : d) : e", "(a ? b : c) + 1", "-(a + b)", "-(-a)", "- -a",
    "(-a)^b", "-a^-b", "a^(b^c)", "(a^b)^c", "a^(-b)^c", "(a < b) < c", "a < (b < c)",
    "(a || b) && c", "a || b && c", "(a == b) != c",
    "max(a ? b : c, -d, e^2)", "1.5e-300 * 2.5e20 + 0.1 + 1e16 + 123456789012345678",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(text):
    expr = parse(text)
    source = to_source(expr)
    assert parse(source) == expr
    assert to_source(parse(source)) == source


def test_canonical_source():
    assert to_source(parse("1-1/(1+((r-cutoff)/h)^4)")) == "1 - 1 / (1 + ((r - cutoff) / h)^4)"
    assert to_source(parse("((a)) ? (b) : ((c))")) == "a ? b : c"
    assert to_source(Binary("^", Number(-2.0), Number(2.0))) == "(-2)^2"
    assert to_source(Number(1e-3)) == "0.001"


def random_expr(rng, depth):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([Name(rng.choice("abc")), Number(rng.choice([0.0, 1.0, 2.5, 1e-7, 3e20]))])
    kind = rng.randrange(6)
    sub = lambda: random_expr(rng, depth - 1)  # noqa: E731
    if kind == 0:
        return Unary(rng.choice("-+"), sub())
    if kind == 1:
        return Binary(rng.choice("+-*/^"), sub(), sub())
    if kind == 2:
        return ex.Compare(rng.choice(["<", "<=", ">", ">=", "==", "!="]), sub(), sub())
    if kind == 3:
        return ex.Logical(rng.choice(["&&", "||"]), sub(), sub())
    if kind == 4:
        return Ternary(sub(), sub(), sub())
    return Call(rng.choice(["exp", "max", "min"]), (sub(),) if rng.random() < 0.3 else (sub(), sub()))


def test_round_trip_random_trees():
    rng = random.Random(1234)
    for _ in range(2000):
        expr = _fix_arity(random_expr(rng, 5))
        assert parse(to_source(expr)) == expr, to_source(expr)


def _fix_arity(expr):
    """Make random calls valid: exp takes one argument, min/max two."""
    if isinstance(expr, Call):
        args = tuple(_fix_arity(x) for x in expr.args)
        args = args[:1] if expr.function == "exp" else (args * 2)[:2]
        return Call(expr.function, args)
    if isinstance(expr, Unary):
        return Unary(expr.op, _fix_arity(expr.operand))
    if isinstance(expr, Ternary):
        return Ternary(*(_fix_arity(x) for x in (expr.condition, expr.if_true, expr.if_false)))
    if isinstance(expr, (Binary, ex.Compare, ex.Logical)):
        return type(expr)(expr.op, _fix_arity(expr.left), _fix_arity(expr.right))
    return expr
