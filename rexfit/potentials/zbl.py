"""Ziegler–Biersack–Littmark screened nuclear repulsion, exactly as LAMMPS ``pair_style zbl``.

For a pair of atoms with nuclear charges Z_i, Z_j at distance r < r_c (= ``outer``):

    E(r) = e(r) + S(r),   e(r) = k_e Z_i Z_j / r · φ(r / a),
    a = 0.46850 Å / (Z_i^0.23 + Z_j^0.23)
    φ(x) = 0.18175 e^(−3.19980 x) + 0.50986 e^(−0.94229 x) + 0.28022 e^(−0.40290 x)
           + 0.02817 e^(−0.20162 x)

with k_e = e²/(4πε₀) = 14.399645 eV·Å (LAMMPS's ``qqr2e`` of metal units) and the screening
length constant 0.46850 Å (0.8854 × the Bohr radius, in Å as metal units have it).  S is the
switching function of LAMMPS ``lj/gromacs`` (r₁ = ``inner``, d = r_c − r₁, derivatives of e
taken at r_c):

    S(r) = C                                   r ≤ r₁
    S(r) = A/3 (r − r₁)³ + B/4 (r − r₁)⁴ + C     r₁ < r < r_c
    A = (−3e' + d e'')/d²,  B = (2e' − d e'')/d³,  C = −e + d e'/2 − d² e''/12

so that E, E' and E'' vanish at r_c; the constant C shifts the whole curve, inside r₁ too.
Beyond r_c a pair contributes nothing.  Each pair counts once (on full lists each listed
direction counts ½).  ZBL has nothing to fit: ``params`` is ``{}`` (ignored); the cutoffs and
charges are static settings of the potential object.

The family record :data:`FAMILY` (``<zbl inner= outer=>`` with optional ``<atomic-number
species=...>Z</atomic-number>``) declares how a job reads it and builds the potential.  JAX is
imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rexfit.errors import InputError, InputErrors, Origin
from rexfit.potentials.family import Family

if TYPE_CHECKING:
    import jax

    from rexfit.potentials.base import Params
    from rexfit.structures.neighbors import NeighborList
    from rexfit.structures.system import System

#: e²/(4πε₀) in eV·Å: LAMMPS's ``qqr2e`` for ``units metal``.
COULOMB_EV_A = 14.399645
#: Screening length constant of the universal ZBL potential (Å): 0.8854 a_Bohr.
SCREENING_LENGTH = 0.46850
#: Exponent of Z in the screening length.
Z_EXPONENT = 0.23
#: Universal screening function φ(x) = Σ_k c_k exp(−d_k x).
PHI_C = (0.18175, 0.50986, 0.28022, 0.02817)
PHI_D = (3.19980, 0.94229, 0.40290, 0.20162)


def _screened_coulomb(zi: float, zj: float, r: float) -> tuple[float, float, float]:
    """(e, e', e'') of the unswitched ZBL energy at distance r (host, float64)."""
    k = COULOMB_EV_A * zi * zj
    ainv = (zi**Z_EXPONENT + zj**Z_EXPONENT) / SCREENING_LENGTH
    g = g1 = g2 = 0.0
    for c, d in zip(PHI_C, PHI_D):
        term = c * np.exp(-d * ainv * r)
        g += term
        g1 -= d * ainv * term
        g2 += (d * ainv) ** 2 * term
    return (k * g / r, k * (g1 / r - g / r**2), k * (g2 / r - 2.0 * g1 / r**2 + 2.0 * g / r**3))


@dataclass(frozen=True)
class ZBL:
    """ZBL repulsion between species with nuclear charges ``atomic_numbers`` (species s ↦ Z[s]).

    inner, outer: Å, where the switching starts and the global cutoff (0 < inner < outer).
    Species ≥ len(atomic_numbers) do not interact.  ``energy`` works on half and full lists;
    params = {} (no fitted parameters).  Hashable: a static ``jit`` argument.
    """

    inner: float
    outer: float
    atomic_numbers: tuple[float, ...]

    #: a parameter-free pair term: the dataset engine evaluates it once, as a fixed base
    fixed_pair = True

    def __post_init__(self):
        object.__setattr__(self, "inner", float(self.inner))
        object.__setattr__(self, "outer", float(self.outer))
        object.__setattr__(self, "atomic_numbers", tuple(float(z) for z in self.atomic_numbers))
        if not 0.0 < self.inner < self.outer:
            raise ValueError(f"ZBL needs 0 < inner < outer, got {self.inner}, {self.outer}")
        if not self.atomic_numbers or min(self.atomic_numbers) <= 0.0:
            raise ValueError(f"ZBL atomic numbers must be positive, got {self.atomic_numbers}")

    @property
    def cutoff(self) -> float:
        """The outer cutoff (Å)."""
        return self.outer

    def tables(self) -> dict[str, np.ndarray]:
        """Per species pair (S, S) float64 host tables: k_e Z_i Z_j (eV·Å), 1/a (1/Å) and the
        switching coefficients A (eV/Å³), B (eV/Å⁴), C (eV)."""
        z = np.asarray(self.atomic_numbers, dtype=np.float64)
        n = len(z)
        out = {key: np.zeros((n, n)) for key in ("k", "ainv", "A", "B", "C")}
        d = self.outer - self.inner
        for s in range(n):
            for t in range(n):
                e, e1, e2 = _screened_coulomb(z[s], z[t], self.outer)
                out["k"][s, t] = COULOMB_EV_A * z[s] * z[t]
                out["ainv"][s, t] = (z[s] ** Z_EXPONENT + z[t] ** Z_EXPONENT) / SCREENING_LENGTH
                out["A"][s, t] = (-3.0 * e1 + d * e2) / d**2
                out["B"][s, t] = (2.0 * e1 - d * e2) / d**3
                out["C"][s, t] = -e + 0.5 * d * e1 - d * d * e2 / 12.0
        return out

    def pair_energy(self, r: jax.Array, si: jax.Array, sj: jax.Array) -> jax.Array:
        """Switched ZBL energy E(r) (eV) of pairs at r (Å) between species si, sj (valid
        indices), without the cutoff at ``outer``."""
        import jax.numpy as jnp

        tab = {key: jnp.asarray(v)[si, sj] for key, v in self.tables().items()}
        x = r * tab["ainv"]
        phi = sum(c * jnp.exp(-d * x) for c, d in zip(PHI_C, PHI_D))
        t = jnp.maximum(r - self.inner, 0.0)
        switch = t * t * t * (tab["A"] / 3.0 + tab["B"] / 4.0 * t) + tab["C"]
        return tab["k"] / r * phi + switch

    def energy(self, params: Params, system: System, nbrs: NeighborList) -> jax.Array:
        """Total ZBL energy (eV); ``params`` is ignored (ZBL has no fitted parameters)."""
        import jax.numpy as jnp

        from rexfit.potentials.base import pair_distances

        n = len(self.atomic_numbers)
        r, within = pair_distances(system, nbrs, self.outer)
        si, sj = system.species[nbrs.i], system.species[nbrs.j]
        use = within & (si >= 0) & (si < n) & (sj >= 0) & (sj < n)
        si, sj = jnp.clip(si, 0, n - 1), jnp.clip(sj, 0, n - 1)
        r = jnp.where(use, r, 0.5 * self.outer)
        weight = 1.0 if nbrs.half else 0.5
        return weight * jnp.sum(jnp.where(use, self.pair_energy(r, si, sj), 0.0))


# ============================================================================ family record


@dataclass(frozen=True)
class ZBLSpec:
    """``<zbl inner= outer=>``: the switching start and cutoff (Å), the nuclear charges given
    by ``<atomic-number>`` ((species, Z), ...; other species take their chemical symbol's),
    and the potential's id and origin (for errors found when the species are known)."""

    inner: float
    outer: float
    atomic_numbers: tuple[tuple[str, float], ...]
    ident: str
    origin: Origin


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of a ``<zbl>`` node; None after errors (recorded by ``reader``)."""
    errors = 0

    def error(message, origin):
        nonlocal errors
        errors += 1
        reader.error(message, origin)

    inner, outer = reader.attribute(node, "inner"), reader.attribute(node, "outer")
    for name, value in (("inner", inner), ("outer", outer)):
        if value is None:
            error(f"<zbl id='{ident}'> needs the attribute {name} (Å)", node.origin)
        else:
            reader.positive(value, f"<zbl> {name}", node.origin)
    if inner is not None and outer is not None and inner > 0 and not inner < outer:
        error(f"<zbl id='{ident}'>: inner ({inner:g} Å) must be smaller than outer "
              f"({outer:g} Å)", node.origin)
    if species_a != "*" or species_b != "*":
        error(f"<zbl id='{ident}'> acts between all species: leave species-a and "
              "species-b out (or give *)", node.origin)
    charges = []
    for c in node.findall("atomic-number"):
        sp = c.get("species")
        reader.check_species(sp, c.origin, "<atomic-number> species")
        z = reader.value(c, "<atomic-number>")
        if z is not None:
            reader.positive(z, "<atomic-number>", c.origin)
            charges.append((sp, float(z)))
    if errors or inner is None or outer is None:
        return None
    return ZBLSpec(float(inner), float(outer), tuple(charges), ident, node.origin)


def parameter_specs(spec: ZBLSpec):
    """ZBL has nothing to fit."""
    return ()


def _charges(spec: ZBLSpec, species: tuple[str, ...]) -> tuple[float, ...]:
    """Z of every species of the job, from ``<atomic-number>`` or the chemical symbol (the
    last ``<atomic-number>`` of a species counts)."""
    from ase.data import atomic_numbers

    given = dict(spec.atomic_numbers)
    charges = []
    for sp in species:
        z = given.get(sp)
        if z is None:
            if sp not in atomic_numbers or atomic_numbers[sp] == 0:
                raise InputErrors([InputError(
                    f"<zbl id='{spec.ident}'>: species '{sp}' is not a chemical symbol; give "
                    f"its nuclear charge with <atomic-number species='{sp}'>Z</atomic-number>",
                    spec.origin)])
            z = atomic_numbers[sp]
        charges.append(float(z))
    return tuple(charges)


def build_potential(spec: ZBLSpec, species: tuple[str, ...]) -> ZBL:
    """ZBL over every species of the job, Z from ``<atomic-number>`` or the chemical symbol."""
    return ZBL(spec.inner, spec.outer, _charges(spec, species))


def lammps_overlay(spec: ZBLSpec, species: tuple[str, ...]):
    """ZBL as a term of a LAMMPS ``pair_style hybrid/overlay``: (``zbl inner outer``, the
    ``pair_coeff i j zbl Zi Zj`` arguments of every type pair)."""
    z = _charges(spec, species)
    coeffs = tuple(f"{i + 1} {j + 1} zbl {z[i]!r} {z[j]!r}"
                   for i in range(len(species)) for j in range(i, len(species)))
    return f"zbl {float(spec.inner)!r} {float(spec.outer)!r}", coeffs


def xml_parameters(element, children):
    """ZBL has no parameters in the XML."""
    return ()


FAMILY = Family(element="zbl", type_name="ZBL", parameters=(), neighbours="pairs",
                build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                lammps_overlay=lammps_overlay)
