"""The on-disk cache of traced programs (rexfit.programs): keys that change with everything that
determines a program, programs read back giving the same numbers as a fresh trace, and the
cases that must not be cached."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit import programs


@dataclass(frozen=True, eq=False)  # hashed by identity, as potentials are
class Shape:
    width: float
    table: np.ndarray
    name: str = "a"

    @functools.cached_property
    def derived(self):
        return jax.jit(lambda x: x)  # not fingerprintable, but derived: ignored


class Plain:
    def __init__(self, scale, fn):
        self.scale = scale
        self.fn = fn


def test_fingerprint_follows_values_not_identity():
    a = Shape(1.0, np.arange(3.0))
    b = Shape(1.0, np.arange(3.0))
    _ = a.derived  # a computed cached_property does not change the fingerprint
    assert programs.fingerprint(a) == programs.fingerprint(b)
    assert programs.fingerprint(a) != programs.fingerprint(Shape(1.5, np.arange(3.0)))
    assert programs.fingerprint(a) != programs.fingerprint(Shape(1.0, np.arange(3.0) + 1e-12))
    assert programs.fingerprint({"x": 1, "y": 2}) == programs.fingerprint({"y": 2, "x": 1})
    assert programs.fingerprint(frozenset({"C11", "C12"})) == programs.fingerprint(
        frozenset({"C12", "C11"}))
    assert programs.fingerprint((1, 2)) != programs.fingerprint([1, 2])
    assert programs.fingerprint(1) != programs.fingerprint(1.0)


def test_fingerprint_of_functions_sees_code_and_closures():
    def make(k):
        return lambda x: k * x

    assert programs.fingerprint(make(2.0)) == programs.fingerprint(make(2.0))
    assert programs.fingerprint(make(2.0)) != programs.fingerprint(make(3.0))
    f, g = (lambda x: x + 1), (lambda x: x - 1)  # same name, other code
    assert programs.fingerprint(f) != programs.fingerprint(g)


def test_what_cannot_be_fingerprinted_is_refused():
    with pytest.raises(programs.Unfingerprintable, match="Plain"):
        programs.fingerprint(Plain(1.0, jax.jit(lambda x: x)))
    with pytest.raises(programs.Unfingerprintable):
        programs.fingerprint(object())
    assert programs._static_fingerprint([object()]) is None


def test_rexfit_potentials_fingerprint_alike_when_built_alike():
    from rexfit.potentials.pair import LennardJones

    one = LennardJones(cutoff=5.0)
    assert programs.fingerprint(one) == programs.fingerprint(LennardJones(cutoff=5.0))
    assert programs.fingerprint(one) != programs.fingerprint(LennardJones(cutoff=5.5))


def _energy(shape: Shape, x, w):
    return jnp.sum(jnp.sin(shape.width * x) * w) + shape.table.sum(), {"x2": x * x}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REXFIT_PROGRAM_CACHE", "1")
    programs.enable(tmp_path)
    yield tmp_path
    programs.enable(None)


def test_program_read_back_gives_the_same_numbers(cache_dir):
    x, w = jnp.linspace(0.0, 1.0, 7), jnp.full(7, 0.5)
    shape = Shape(1.3, np.arange(4.0))
    expected = jax.jit(_energy, static_argnums=0)(shape, x, w)
    before = dict(programs.STATS)
    first = programs.jit(_energy, static_argnums=0)(shape, x, w)
    assert programs.STATS["written"] == before["written"] + 1
    assert len(list(cache_dir.glob("*.program"))) == 1
    # a new program object: as in a new process, nothing traced in memory
    again = programs.jit(_energy, static_argnums=0)(Shape(1.3, np.arange(4.0)), x, w)
    assert programs.STATS["read"] == before["read"] + 1
    for got in (first, again):
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_other_static_values_and_shapes_get_other_programs(cache_dir):
    x, w = jnp.linspace(0.0, 1.0, 7), jnp.full(7, 0.5)
    program = programs.jit(_energy, static_argnums=0)
    a = program(Shape(1.3, np.arange(4.0)), x, w)[0]
    b = programs.jit(_energy, static_argnums=0)(Shape(1.4, np.arange(4.0)), x, w)[0]
    c = programs.jit(_energy, static_argnums=0)(Shape(1.3, np.arange(4.0)), x[:5], w[:5])[0]
    assert len(list(cache_dir.glob("*.program"))) == 3
    assert float(b) == pytest.approx(float(jnp.sum(jnp.sin(1.4 * x) * w) + 6.0), rel=1e-14)
    assert float(c) == pytest.approx(float(jnp.sum(jnp.sin(1.3 * x[:5]) * w[:5]) + 6.0),
                                     rel=1e-14)
    assert float(a) != float(b)


def test_inside_a_trace_it_is_plain_jit(cache_dir):
    shape = Shape(2.0, np.zeros(1))
    program = programs.jit(_energy, static_argnums=0)
    x, w = jnp.linspace(0.0, 1.0, 5), jnp.ones(5)
    g = jax.grad(lambda v: program(shape, v, w)[0])(x)
    np.testing.assert_allclose(np.asarray(g), 2.0 * np.cos(2.0 * np.asarray(x)), rtol=1e-14)
    assert not list(cache_dir.glob("*.program"))


def test_unexportable_program_runs_and_is_marked(cache_dir):
    def with_callback(x):
        y = jax.pure_callback(lambda v: np.asarray(v) * 2.0,
                              jax.ShapeDtypeStruct(x.shape, x.dtype), x)
        return y + 1.0

    for _ in range(2):
        out = programs.jit(with_callback)(jnp.arange(3.0))
        np.testing.assert_array_equal(np.asarray(out), [1.0, 3.0, 5.0])
    assert len(list(cache_dir.glob("*.program"))) == 1  # the "not exportable" mark


def test_damaged_entry_is_traced_again(cache_dir):
    x, w = jnp.linspace(0.0, 1.0, 7), jnp.full(7, 0.5)
    shape = Shape(0.7, np.arange(2.0))
    expected = float(programs.jit(_energy, static_argnums=0)(shape, x, w)[0])
    (entry,) = cache_dir.glob("*.program")
    entry.write_bytes(b"not a program")
    got = float(programs.jit(_energy, static_argnums=0)(shape, x, w)[0])
    assert got == expected


JOB = """<job>
  <name>argon</name>
  <fitting><BFGS max-iter="3"/></fitting>
  <atom-types><species>Ar</species></atom-types>
  <potentials>
    <lennard-jones id="LJ" species-a="*" species-b="*">
      <cutoff>6.0</cutoff>
      <epsilon>0.0104</epsilon>
      <sigma>3.40</sigma>
      <fit-dof><epsilon/><sigma/></fit-dof>
    </lennard-jones>
  </potentials>
  <structures>
    <fcc-lattice id="fcc">
      <atom-type>Ar</atom-type>
      <lattice-parameter>5.26</lattice-parameter>
      <properties>
        <atomic-energy fit="true" target="-0.08"/>
        <lattice-parameter fit="true" target="5.26"/>
      </properties>
    </fcc-lattice>
  </structures>
</job>
"""


def test_second_run_reads_its_programs_and_gives_identical_results(tmp_path):
    job = tmp_path / "job.xml"
    job.write_text(JOB)
    env = dict(os.environ, REXFIT_CACHE_DIR=str(tmp_path / "cache"), REXFIT_PROGRAM_CACHE="1")
    results = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        proc = subprocess.run([sys.executable, "-m", "rexfit", str(job), "-q", "--no-plots",
                               "--output-dir", str(out)], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads((out / "results.json").read_text()))
    assert results[0]["timing"]["programs_loaded"] == 0
    assert results[1]["timing"]["programs_loaded"] > 0
    assert list((tmp_path / "cache" / "programs").glob("*.program"))

    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k not in ("timing", "seconds")}
        if isinstance(d, list):
            return [strip(v) for v in d]
        return d

    assert strip(results[0]) == strip(results[1])
    files0 = sorted(p.name for p in (tmp_path / "out0").iterdir())
    assert files0 == sorted(p.name for p in (tmp_path / "out1").iterdir())
    for name in files0:
        if name not in ("results.json", "log.txt"):
            assert (tmp_path / "out0" / name).read_bytes() == (
                tmp_path / "out1" / name).read_bytes(), name


def test_program_cache_off_in_the_test_session():
    # tests monkeypatch module constants that programs read while tracing: a program kept
    # on disk by one test must not serve another
    assert os.environ.get("REXFIT_PROGRAM_CACHE") == "0"


def test_cache_is_bounded(cache_dir, monkeypatch):
    monkeypatch.setattr(programs, "MAX_PROGRAMS", 10)
    monkeypatch.setattr(programs, "_pruned", [False])
    for k in range(12):
        p = cache_dir / f"old{k:02d}.program"
        p.write_bytes(b"x")
        os.utime(p, (1000 + k, 1000 + k))
    programs.jit(_energy, static_argnums=0)(Shape(0.3, np.zeros(2)), jnp.ones(3), jnp.ones(3))
    left = sorted(p.name for p in cache_dir.glob("*.program"))
    assert len(left) == 5 + 1  # the newest half of the old ones, and the new program
    assert "old11.program" in left and "old06.program" not in left
