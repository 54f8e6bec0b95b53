"""Shared pieces of the descriptor tests: a small perturbed periodic cell, a brute-force neighbour
search over periodic images (for the NumPy reference implementations), and the derivative
checks every descriptor must pass (forces and strain derivatives of E = Σ_i w·B_i against
central finite differences, and forward-over-reverse against finite differences of the
gradient)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rexfit.physics.strain import deform


def periodic_cell(seed, species_kinds=1):
    """A perturbed, triclinic 4-atom fcc-like cell (smaller than the cutoff: many images)."""
    rng = np.random.default_rng(seed)
    a = 3.6
    cell = a * np.eye(3) @ (np.eye(3) + rng.normal(0.0, 0.05, (3, 3)))
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    pos = frac @ cell + rng.normal(0.0, 0.12, (4, 3))
    species = np.array([0, 1, 1, 0]) if species_kinds == 2 else np.zeros(4, int)
    return pos, cell, species, (True, True, True)


def brute_force_neighbours(pos, cell, pbc, rcut):
    """{i: [(j, displacement)]} over all images with 0 < r < rcut."""
    pos, cell = np.asarray(pos, float), np.asarray(cell, float)
    ranges = []
    for k in range(3):
        if pbc[k]:
            normal = np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])
            spacing = abs(cell[k] @ normal) / np.linalg.norm(normal)
            m = int(np.ceil((rcut + np.ptp(pos @ normal / np.linalg.norm(normal))) / spacing)) + 1
            ranges.append(range(-m, m + 1))
        else:
            ranges.append(range(0, 1))
    out = {i: [] for i in range(len(pos))}
    for i in range(len(pos)):
        for j in range(len(pos)):
            for n0 in ranges[0]:
                for n1 in ranges[1]:
                    for n2 in ranges[2]:
                        d = pos[j] + np.array([n0, n1, n2]) @ cell - pos[i]
                        r = np.linalg.norm(d)
                        if 0.0 < r < rcut:
                            out[i].append((j, d))
    return out


def check_derivatives(desc, system, nbrs, h=1e-5, jacobian=False):
    """E = Σ_i w·B_i (random w): position and strain gradients against central finite
    differences, and the directional derivative of the gradient (forward-over-reverse)
    against finite differences of the gradient; with ``jacobian`` also ∂B/∂x by forward
    mode against finite differences of the features."""
    w = jnp.asarray(np.random.default_rng(4).normal(size=desc.n_features))

    def energy(x, strain):
        s = deform(system.replace(positions=x), strain)
        return jnp.sum(desc.features(s, nbrs) @ w)

    # one program for the gradient and its forward-mode directional derivative
    grads = jax.grad(energy, argnums=(0, 1))
    grad_and_hvp = jax.jit(lambda x, eps, dx: jax.jvp(lambda y: grads(y, eps), (x,), (dx,)))
    energy = jax.jit(energy)
    zero = jnp.zeros((3, 3))
    direction = jnp.asarray(np.random.default_rng(5).normal(size=system.positions.shape))
    (gx, geps), (hvp, _) = grad_and_hvp(system.positions, zero, direction)
    for atom, axis in [(0, 0), (1, 2), (3, 1)]:
        step = jnp.zeros_like(system.positions).at[atom, axis].set(h)
        fd = (energy(system.positions + step, zero) - energy(system.positions - step, zero))
        assert float(gx[atom, axis]) == pytest.approx(float(fd) / (2 * h), rel=1e-6, abs=1e-8)
    for a, b in [(0, 0), (1, 2), (2, 0)]:
        step = zero.at[a, b].set(h)
        fd = (energy(system.positions, step) - energy(system.positions, -step)) / (2 * h)
        assert float(geps[a, b]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)
    (g_plus, _), _ = grad_and_hvp(system.positions + h * direction, zero, direction)
    (g_minus, _), _ = grad_and_hvp(system.positions - h * direction, zero, direction)
    np.testing.assert_allclose(np.asarray(hvp), np.asarray(g_plus - g_minus) / (2 * h),
                               rtol=1e-5, atol=1e-6 * float(jnp.abs(hvp).max()))
    if not jacobian:
        return
    feats = jax.jit(lambda x: desc.features(system.replace(positions=x), nbrs))
    jac = jax.jit(jax.jacfwd(feats))(system.positions)  # (N, K, N, 3)
    for atom, axis in [(0, 1), (2, 0)]:
        step = jnp.zeros_like(system.positions).at[atom, axis].set(h)
        fd = (feats(system.positions + step) - feats(system.positions - step)) / (2 * h)
        np.testing.assert_allclose(np.asarray(jac[:, :, atom, axis]), np.asarray(fd),
                                   rtol=1e-5, atol=1e-7 * float(jnp.abs(fd).max()))
