"""Linear ACE with fixed radial functions as a descriptor model, for the dataset engine's
descriptor kernel (:mod:`rexfit.datasets.descriptor_kernel`).

With one density, the linear embedding (``FinnisSinclairShiftedScaled`` with m = 1, weight w)
and the radial coefficients crad held at fixed values, an atom's energy is affine in the
function coefficients c:

    E_i = w_{μ_i} f_i (B_i · c) + ρ_core,i              (``distance``, ``density``),
    E_i = w_{μ_i} f_i (B_i · c) + (1 − f_i) ρ_core,i    (``zbl``),

B_i the B-basis values (:meth:`ACE.features`), f_i the ``density`` inner cutoff's factor
f_cut(ρ_core,i) (1 far from the core; 1 for ``distance``), or the ``zbl`` mode's weight, the
quintic step in the distance of the atom's nearest neighbour (:meth:`ACE.zbl_switch`), and
ρ_core,i the sum of the core repulsion (ZBL) over the neighbours: everything but c depends on
the geometry only.  :class:`LinearACE` is that potential (an :class:`ACE` whose crad are part
of the potential, not of params); its :attr:`LinearACE.descriptor`, :class:`ACEDescriptor`,
gives the rows [f_i B_i, ρ_core,i] (``zbl``: [f_i B_i, (1 − f_i) ρ_core,i]; F + 1 columns,
file order, the last the constant part) and their derivatives with respect to the
neighbours' pair vectors, and :meth:`LinearACE.energies_from_features` the energies from
those rows.  The ``zbl`` weight's derivative, ∂row_i/∂d_p = ∂row_i/∂(sums) ∂(sums)/∂d_p +
[B_i, −ρ_core,i] ∂f_i/∂r_p u_p, is non-zero for the nearest neighbour only (JAX's mean over
tied nearest neighbours, as the model's).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import jax
import jax.numpy as jnp
import numpy as np

from rexfit.potentials.ace.files import bond_key
from rexfit.potentials.ace.model import ACE
from rexfit.structures.neighbors import NeighborList
from rexfit.structures.system import System


def linear_embedding(potential: ACE) -> bool:
    """True if every element has one density with the linear embedding (F = ρ): then E is
    affine in c at fixed crad, whatever the inner cutoff (:class:`LinearACE` applies)."""
    return all(e.kind == "FinnisSinclairShiftedScaled" and e.ndensity == 1
               and abs(e.exponents[0] - 1.0) < 1e-10 for e in potential.embeddings)


@dataclass(frozen=True)
class LinearACE(ACE):
    """An :class:`ACE` with a linear embedding whose radial coefficients are fixed:
    ``frozen_crad`` ((bond key, shape, values), …) replaces ``params["crad"]`` (which is
    read by nothing but the file writers).  Build with :meth:`freeze`."""

    frozen_crad: tuple = ()

    @staticmethod
    def freeze(potential: ACE, crad) -> "LinearACE":
        """``potential`` with its radial coefficients fixed at ``crad`` ({bond key: array,
        shaped or flat}); ValueError unless :func:`linear_embedding`."""
        if not linear_embedding(potential):
            raise ValueError("LinearACE: needs one density per element with the linear "
                             "embedding (FinnisSinclairShiftedScaled, m = 1)")
        shapes = dict(potential.crad_shapes)
        frozen = tuple((key, tuple(shape), tuple(float(v) for v in np.ravel(crad[key])))
                       for key, shape in shapes.items())
        values = {f.name: getattr(potential, f.name) for f in fields(ACE)}
        out = LinearACE(**values, frozen_crad=frozen)
        object.__setattr__(out, "tables", potential.tables)
        return out

    def _crad(self, params):
        """The fixed radial coefficients per ordered pair type (``params`` not read)."""
        fixed = {key: np.reshape(np.asarray(v, np.float64), shape)
                 for key, shape, v in self.frozen_crad}
        out = []
        for a in self.elements:
            for b in self.elements:
                c = fixed[bond_key(a, b)]
                n, l, k = c.shape
                out.append(np.pad(c, ((0, self.nradmax - n), (0, self.lmax + 1 - l),
                                      (0, self.nradbase - k))))
        return jnp.asarray(np.stack(out))

    @property
    def descriptor(self) -> "ACEDescriptor":
        """The rows of the descriptor kernel (:class:`ACEDescriptor`)."""
        return ACEDescriptor(self)

    def species_linear(self) -> int:
        """S, the species of the systems evaluated: ε_i = β_s·row_i with β depending on the
        atom's species s only (the descriptor kernel keeps per-atom designs)."""
        return len(self.species if self.species is not None else self.elements)

    def energies_from_features(self, params, b, species, mask) -> jax.Array:
        """Per-atom energies (...,) eV from rows ``b`` (..., F + 1) of :class:`ACEDescriptor`:
        w_{μ_i} row_i[:F] · c + row_i[F]; 0 for padding and species the potential does not
        know."""
        element, known = self._elements_of(species)
        c = jnp.concatenate([jnp.reshape(jnp.asarray(params["c"][name], jnp.float64), (-1,))
                             for name, _ in self.functions])
        w = jnp.asarray([e.weights[0] for e in self.embeddings])[element]
        e = w * (b[..., :-1] @ c) + b[..., -1]
        return jnp.where(mask & known, e, 0.0)


@dataclass(frozen=True)
class ACEDescriptor:
    """The rows [f_i B_i (F, file order, zero outside the atom's element's functions),
    ρ_core,i (``zbl``: (1 − f_i) ρ_core,i)] of a :class:`LinearACE` (module docstring), a
    descriptor of the dataset
    engine: ``cutoff``, ``n_features``, ``features`` and ``features_and_neighbor_gradients``
    (atom-major)."""

    potential: LinearACE

    #: atom slots of the dataset engine's row blocks (a structure of up to 256 atoms shares
    #: one compiled block program; each costs several seconds to compile)
    block_atoms = 256

    @property
    def cutoff(self) -> float:
        return self.potential.cutoff

    @property
    def n_features(self) -> int:
        return len(self.potential.tables.mu0) + 1

    def _rows(self, b, rho_core, element, live, zbl=None):
        """(N, F + 1) rows from B values in the tables' order (N, F_evaluated), ρ_core (N,),
        element indices and live atoms (N,); ``zbl`` (N,): the ``zbl`` mode's weights (None
        in the other modes)."""
        pot = self.potential
        tab = pot.tables
        own = jnp.asarray(tab.mu0)[tab.order][None, :] == element[:, None]
        weight = pot.core_weight(rho_core, element) if zbl is None else zbl
        b = jnp.where(own & live[:, None], b * weight[:, None], 0.0)
        rows = jnp.zeros((b.shape[0], self.n_features), b.dtype).at[:, tab.order].set(b)
        constant = rho_core if zbl is None else (1.0 - zbl) * rho_core
        return rows.at[:, -1].set(jnp.where(live, constant, 0.0))

    def features(self, system: System, nbrs: NeighborList) -> jax.Array:
        """(N, F + 1) rows of every atom slot from a full neighbour list."""
        pot = self.potential
        b, rho_core = pot.descriptors({}, system, nbrs)
        element, known = pot._elements_of(system.species)
        zbl = pot._zbl_switch(system, nbrs) if pot.zbl_inner else None
        return self._rows(b, rho_core, element, known & system.mask, zbl)

    def features_and_neighbor_gradients(self, species, mask, neighbor_species, d, slot_mask):
        """(rows (A, F + 1) as :meth:`features`, ∂row_a/∂d_am (A, M, F + 1, 3)) of atoms
        given with their neighbours atom-major: species, mask (A,), per atom M slots with the
        neighbour's species (A, M), pair vector d (A, M, 3) Å and slot mask (A, M).

        Each pair's terms (radial basis, core repulsion, R_nl Y_lm) and their derivatives by
        forward mode (three tangents); each atom's sums over its slots; per atom the Jacobian
        of its row with respect to those sums (the product basis, f_cut and ρ_core), and the
        chain rule per slot as one contraction over the summed terms; the ``zbl`` mode's weight
        f_i and its derivative ∂f_i/∂r_am (:meth:`ACE.zbl_switch_and_slope`) enter the rows
        as one more per-atom input (its Jacobian column times ∂f_i/∂r_am u_am per slot)."""
        pot = self.potential
        n_el = len(pot.elements)
        atoms, slots = slot_mask.shape
        element, known = pot._elements_of(species)
        other, other_known = pot._elements_of(neighbor_species)
        live = mask & known
        t = (element[:, None] * n_el + other).reshape(-1)
        ok = (slot_mask & live[:, None] & other_known).reshape(-1)
        flat = d.reshape(-1, 3)
        parts, linear = jax.linearize(lambda v: pot.pair_terms({}, v, t, ok), flat)
        unit = jnp.eye(3, dtype=flat.dtype)
        dparts = jnp.stack([linear(jnp.broadcast_to(unit[a], flat.shape)) for a in range(3)],
                           axis=-1).reshape(atoms, slots, -1, 3)  # (A, M, P, 3)
        parts = parts.reshape(atoms, slots, -1)
        which = (other[..., None] == jnp.arange(n_el)[None, None, :]).astype(parts.dtype)  # (A, M, S)
        summed = jnp.einsum("amp,ams->asp", parts, which)

        def rows_of(s, e, alive, zbl):
            b, rho_core = pot.basis_from_sums(s)
            return self._rows(b, rho_core, e, alive, zbl)

        if not pot.zbl_inner:
            def one(s, e, alive):
                return rows_of(s[None], e[None], alive[None], None)[0]

            rows = rows_of(summed, element, live, None)
            # forward mode (S·P tangents): twice as fast as reverse (F + 1 cotangents) even
            # where F + 1 < S·P (Cu, 56 and 63: 0.45 against 0.9 ms per atom of set-up)
            dsum = jax.vmap(jax.jacfwd(one))(summed, element, live)  # (A, F + 1, S, P)
        else:  # the weight f_i of the atom's nearest neighbour, and ∂f_i/∂r per slot
            r = jnp.sqrt(jnp.sum(flat * flat, axis=-1))
            valid = ok & (r < jnp.asarray(pot.tables.rcut)[t])
            r = jnp.where(valid, r, 2.0 * pot.cutoff + 1.0)
            centre = jnp.repeat(jnp.arange(atoms), slots, total_repeat_length=atoms * slots)
            zbl, dzbl = pot.zbl_switch_and_slope(r, t, valid, centre, atoms)
            dzbl = jnp.where(valid, dzbl, 0.0)
            slope = (dzbl[:, None] * flat / r[:, None]).reshape(atoms, slots, 3)  # ∂f_i/∂d

            def one(s, e, alive, f):
                return rows_of(s[None], e[None], alive[None], f[None])[0]

            rows = rows_of(summed, element, live, zbl)
            dsum, dzbl_row = jax.vmap(jax.jacfwd(one, argnums=(0, 3)))(summed, element, live,
                                                                      zbl)
        grads = sum(jnp.einsum("akp,ampx->amkx", dsum[:, :, s],
                               dparts * which[:, :, s, None, None]) for s in range(n_el))
        if pot.zbl_inner:
            grads = grads + dzbl_row[:, None, :, None] * slope[:, :, None, :]
        return rows, grads
