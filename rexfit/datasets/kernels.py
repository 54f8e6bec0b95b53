"""The jitted per-chunk programs of the dataset engine (:data:`KERNELS`): variables → prepared
data once per evaluation (the transform, then the analytic kernel's spline coefficients), a
chunk's outputs, residual block, loss, gradient, Jacobian, JVP and VJP, the analytic
kernel's parameter-free terms of a chunk (``"fixed"``: (spec, chunk), once per chunk), and
the pull-back of the summed chunk gradients to the variables.  Module-level ``jax.jit`` objects with the
:class:`Spec` (hashed by value) as static argument: one trace and compilation per chunk shape
for the whole process, whichever objective calls them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from rexfit import programs
from rexfit.datasets import descriptor_kernel as dk
from rexfit.datasets.analytic import analytic_fixed, analytic_outputs, prepare_analytic
from rexfit.datasets.chunks import VOIGT, Chunk, autodiff_outputs
from rexfit.potentials.analytic_dataset import scatter_atoms


@dataclass(frozen=True)
class Spec:
    """What a kernel compiles for (static): potential, kernel name, transform (or None)."""

    potential: Any
    kernel: str
    transform: Any


def _prepare(spec: Spec, x):
    params = x if spec.transform is None else spec.transform(x)
    if spec.kernel == "analytic":
        return prepare_analytic(spec.potential, params)
    return params


def _outputs(spec: Spec, prepared, c: Chunk):
    """energy (B,), forces (3, B, n), virial (6, B), stress (6, B) of a chunk."""
    if spec.kernel == "analytic":
        return analytic_outputs(spec.potential, prepared, c)
    if spec.kernel == "descriptor":
        return dk.descriptor_outputs(spec.potential, prepared, c, scatter_atoms, VOIGT)
    return autodiff_outputs(spec.potential, prepared, c)


def _residual_block(spec: Spec, prepared, c: Chunk):
    """A chunk's residual block: [r_E (B,), r_F (3, B, n), r_S (6, B)] flattened."""
    return _block_of(_outputs(spec, prepared, c), c)


def _block_of(outputs, c: Chunk):
    energy, forces, _, stress = outputs
    r_e = c.ce * (energy - c.e_ref)
    r_f = c.cf[None] * (forces - c.f_ref)
    r_s = c.cs[None] * (stress - c.s_ref)
    return jnp.concatenate([r_e, r_f.reshape(-1), r_s.reshape(-1)])


def _loss(spec: Spec, prepared, c: Chunk):
    r = _residual_block(spec, prepared, c)
    return jnp.sum(r * r)


def _loss_and_outputs(spec: Spec, prepared, c: Chunk):
    """(Σ r² of the chunk, its outputs as :func:`_outputs`): one program serves both
    :meth:`.engine.DatasetObjective.value` and :meth:`.engine.DatasetObjective.predictions`."""
    outputs = _outputs(spec, prepared, c)
    r = _block_of(outputs, c)
    return jnp.sum(r * r), outputs


def _jacobian_tangents(spec: Spec, x):
    """∂prepared/∂x with the variables (ravelled x) as the last axis of every leaf."""
    flat, unravel = ravel_pytree(x)
    return jax.jacfwd(lambda f: _prepare(spec, unravel(f)))(flat)


def _direction_tangents(spec: Spec, x, directions):
    """∂prepared/∂x · D for directions D (P, K) in ravelled-x order; K as the last axis."""
    flat, unravel = ravel_pytree(x)

    def along(d):
        return jax.jvp(lambda f: _prepare(spec, unravel(f)), (flat,), (d,))[1]

    return jax.vmap(along, in_axes=1, out_axes=-1)(directions)


def _chunk_jacobian(spec: Spec, prepared, tangents, c: Chunk):
    """(residual block, (P, block) rows of the Jacobian, the chunk's outputs as
    :func:`_outputs`) by forward mode: the residuals are
    linearised once and the linear map is applied to one tangent after another.  (Mapping
    it over all tangents at once with ``vmap`` gives XLA's CPU backend fusions that redo
    primal work per tangent: 3× slower for Stillinger–Weber at five tangents.)"""
    def block(p):
        outputs = _outputs(spec, p, c)
        return _block_of(outputs, c), outputs

    r, linear, outputs = jax.linearize(block, prepared, has_aux=True)
    return r, jax.lax.map(linear, jax.tree_util.tree_map(
        lambda t: jnp.moveaxis(t, -1, 0), tangents)), outputs


def _static(fn):
    return programs.jit(fn, static_argnums=0)


KERNELS = {
    "prepare": _static(_prepare),
    "pullback": _static(lambda spec, x, g: jax.vjp(partial(_prepare, spec), x)[1](g)[0]),
    "prepare_jvp": _static(lambda spec, x, t: jax.jvp(partial(_prepare, spec), (x,), (t,))),
    "jacobian_tangents": _static(_jacobian_tangents),
    "direction_tangents": _static(_direction_tangents),
    "value": _static(_loss_and_outputs),
    "value_and_grad": _static(jax.value_and_grad(_loss, argnums=1)),
    "residuals": _static(_residual_block),
    "predictions": None,  # the "value" program (loss and outputs), set below
    "jvp": _static(lambda spec, p, t, c: jax.jvp(
        lambda q: _residual_block(spec, q, c), (p,), (t,))),
    "vjp": _static(lambda spec, p, ct, c: jax.vjp(
        lambda q: _residual_block(spec, q, c), p)[1](ct)[0]),
    "jacobian": _static(_chunk_jacobian),
    "fixed": _static(lambda spec, c: analytic_fixed(spec.potential, c)),
}
"""The jitted kernels, by name; per-chunk ones take (spec, prepared, ..., chunk)."""
KERNELS["predictions"] = KERNELS["value"]

#: Chunks of at most this many atom slots (structures × slots per structure) run the chunk
#: kernels built with the quick compile options of small structures
#: (:func:`rexfit.physics.relax.quick_compile_options`: about half the compile time; the
#: programs run slower, which small chunks do not notice; values equal to round-off).
QUICK_CHUNK_SLOTS = 256
_QUICK: dict = {}


def chunk_kernel(name: str, atom_slots: int):
    """The per-chunk kernel ``name`` for chunks of ``atom_slots`` atom slots in all."""
    fn = KERNELS[name]
    if atom_slots > QUICK_CHUNK_SLOTS:
        return fn
    # keyed by the kernel, not its name: names that share a program ("value" and
    # "predictions") share its quick build too (else it is traced and requested twice)
    quick = _QUICK.get(id(fn))
    if quick is None:
        from rexfit.physics.relax import quick_compile_options

        quick = _QUICK[id(fn)] = programs.jit(fn.__wrapped__, static_argnums=0,
                                              compiler_options=dict(quick_compile_options()))
    return quick

