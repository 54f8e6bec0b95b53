"""Central finite-difference checks of a potential's forces and stress as
:func:`rexfit.physics.properties.evaluate` gives them."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rexfit.physics.properties import evaluate
from rexfit.physics.strain import deform

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def check_forces_and_stress(potential, params, system, nbrs, h=1e-5):
    """Every force component against −ΔE/Δx, every stress component against ΔE/(Δε V)."""
    ev = evaluate(potential, params, system, nbrs)
    energy = jax.jit(lambda x: potential.energy(params, system.replace(positions=x), nbrs))
    x0 = np.asarray(system.positions)
    for atom in range(len(x0)):
        for axis in range(3):
            dx = np.zeros_like(x0)
            dx[atom, axis] = h
            fd = -(float(energy(x0 + dx)) - float(energy(x0 - dx))) / (2 * h)
            assert float(ev.forces[atom, axis]) == pytest.approx(fd, rel=1e-6, abs=1e-8)
    strained = jax.jit(lambda eps: potential.energy(params, deform(system, eps), nbrs))
    volume = abs(np.linalg.det(np.asarray(system.cell)))
    for v, (a, c) in enumerate(VOIGT):
        eps = np.zeros((3, 3))
        eps[a, c] = eps[c, a] = h  # a shear strain moves both off-diagonal components
        fd = (float(strained(eps)) - float(strained(-eps))) / (
            2 * h * (2.0 if a != c else 1.0) * volume)
        assert float(ev.stress[v]) == pytest.approx(fd, rel=1e-6, abs=1e-9)
