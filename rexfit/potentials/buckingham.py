"""The Buckingham family (``<buckingham>``), as LAMMPS ``pair_style buck``: everything rexfit
knows about it — the typed spec and how it is read from the job, its parameters, the JAX
potential, its analytic dataset kernel and its LAMMPS writer — declared in :data:`FAMILY`.

V_ab(r) = A_ab·exp(−r/ρ_ab) − C_ab/r⁶ for r < cutoff, 0 beyond (no shift, as ``buck`` without
``pair_modify shift yes``), each pair of atoms counted once; A, ρ, C per listed species pair,
species pairs not listed do not interact.  Units: A eV, ρ Å, C eV·Å⁶, r and cutoff Å.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rexfit.potentials.family import Family

#: The parameters of each ``<pair>``, in DOF order; a ``<fit-dof>`` inside a pair lists them.
PARAMETERS = ("A", "rho", "C")


# ============================================================================ spec


@dataclass(frozen=True)
class BuckinghamPair:
    """One ``<pair species-a species-b>``: A (eV), rho (Å), C (eV·Å⁶) as parameter specs."""

    species_a: str
    species_b: str
    A: object
    rho: object
    C: object
    origin: object

    @property
    def tag(self) -> str:
        """The pair's tag in parameter names: ``MgO`` for species-a Mg, species-b O."""
        return self.species_a + self.species_b


@dataclass(frozen=True)
class BuckinghamSpec:
    """``<buckingham>``: the global cutoff (Å) and the species pairs, in file order."""

    cutoff: float
    pairs: tuple[BuckinghamPair, ...]


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of a ``<buckingham>`` node; None after errors (recorded by ``reader``)."""
    what = f"<buckingham id='{ident}'>"
    cutoff = reader.number(node, "cutoff", required=True)
    if cutoff is not None:
        reader.positive(cutoff, f"{what} <cutoff>", node.find("cutoff").origin)
    pairs, seen, ok = [], {}, cutoff is not None
    for pnode in node.findall("pair"):
        a, b = pnode.get("species-a"), pnode.get("species-b")
        here = f"{what} <pair species-a='{a}' species-b='{b}'>"
        if not (reader.species(a, pnode.origin, f"{here} species-a")
                and reader.species(b, pnode.origin, f"{here} species-b")):
            ok = False
            continue
        key = frozenset((a, b))
        if key in seen:
            reader.error(f"{here}: the pair {a}-{b} is listed twice (first at {seen[key]}); "
                         "merge the two <pair> elements", pnode.origin)
            ok = False
            continue
        seen[key] = pnode.origin
        dofs = reader.fit_dofs(pnode.find("fit-dof"), list(PARAMETERS), f"{here}")
        for dof in dofs.values():
            if dof.tag is not None:
                reader.error(f"<fit-dof> entry <{dof.name}> of {here}: no tag here (the pair "
                             "is the one the <fit-dof> is in)", dof.origin)
                ok = False
        values = {}
        for name in PARAMETERS:
            value = reader.number(pnode, name, required=True)
            if value is None:
                continue
            origin = pnode.find(name).origin
            if name == "rho":
                reader.positive(value, f"{here} <rho>", origin)
            else:
                reader.finite(value, f"{here} <{name}>", origin)
            values[name] = reader.param(name, value, origin, dofs.get(name), tag=a + b)
        if len(values) < len(PARAMETERS):
            ok = False
            continue
        pairs.append(BuckinghamPair(a, b, values["A"], values["rho"], values["C"],
                                    pnode.origin))
    if not seen and ok:
        reader.error(f"{what} lists no species pair: add <pair species-a='..' species-b='..'>"
                     "<A>..</A><rho>..</rho><C>..</C></pair>", node.origin)
        ok = False
    return BuckinghamSpec(cutoff, tuple(pairs)) if ok else None


def parameter_specs(spec: BuckinghamSpec):
    """((path, parameter spec), ...): params[tag][A|rho|C] for every pair."""
    return tuple(((pair.tag, name), getattr(pair, name))
                 for pair in spec.pairs for name in PARAMETERS)


def xml_parameters(element, children):
    """(element, name, tag) of every A, rho and C in a ``<buckingham>`` element."""
    out = []
    for pair in children(element, "pair"):
        tag = (pair.get("species-a") or "").strip() + (pair.get("species-b") or "").strip()
        out += [(el, name, tag) for name in PARAMETERS for el in children(pair, name)]
    return out


# ============================================================================ potential


@dataclass(frozen=True)
class Buckingham:
    """The potential: cutoff (Å), the number of species, and per listed pair its species
    indices and tag (the key of its params: ``params[tag] = {"A", "rho", "C"}``, scalars)."""

    cutoff: float
    n_species: int
    pairs: tuple[tuple[int, int, str], ...]

    def tables(self, params):
        """(A, rho, C, use): (S+1, S+1) arrays over species pairs (S = n_species; the last
        row and column, for padding atoms, and pairs not listed: A = C = 0, rho = 1, unused)."""
        import jax.numpy as jnp
        import numpy as np

        size = self.n_species + 1
        use = np.zeros((size, size), dtype=bool)
        tables = {"A": jnp.zeros((size, size)), "rho": jnp.ones((size, size)),
                  "C": jnp.zeros((size, size))}
        for a, b, tag in self.pairs:
            use[a, b] = use[b, a] = True
            for name in PARAMETERS:
                value = params[tag][name]
                tables[name] = tables[name].at[a, b].set(value).at[b, a].set(value)
        return tables["A"], tables["rho"], tables["C"], jnp.asarray(use)

    def pair_energy(self, tables, si, sj, r):
        """V(r) in eV of pairs of species si, sj (arrays like r, Å), without cutoff."""
        import jax.numpy as jnp

        a, rho, c, _ = tables
        r2 = r * r
        return a[si, sj] * jnp.exp(-r / rho[si, sj]) - c[si, sj] / (r2 * r2 * r2)

    def _species(self, species):
        import jax.numpy as jnp

        return jnp.clip(species, 0, self.n_species)

    def energy(self, params, system, nbrs):
        """Total energy (eV): Σ over listed pairs closer than the cutoff."""
        import jax.numpy as jnp

        from rexfit.potentials.base import pair_distances

        tables = self.tables(params)
        r, within = pair_distances(system, nbrs, self.cutoff)
        si = self._species(system.species[nbrs.i])
        sj = self._species(system.species[nbrs.j])
        use = within & tables[3][si, sj]
        weight = 1.0 if nbrs.half else 0.5
        return weight * jnp.sum(jnp.where(use, self.pair_energy(tables, si, sj, r), 0.0))


def build_potential(spec: BuckinghamSpec, species: tuple[str, ...]) -> Buckingham:
    """The :class:`Buckingham` term of ``spec`` for the job's species (in order)."""
    pairs = tuple((species.index(p.species_a), species.index(p.species_b), p.tag)
                  for p in spec.pairs)
    return Buckingham(float(spec.cutoff), len(species), pairs)


# ============================================================================ dataset kernel


def _dataset_prepare(potential: Buckingham, params):
    """The species-pair tables, once per evaluation."""
    return potential.tables(params)


def _dataset_terms(potential: Buckingham, tables, c):
    """(energy (B,), dE/dd (3 × (B, E))) on the half list of a dataset chunk ``c``."""
    import jax
    import jax.numpy as jnp

    from rexfit.potentials.analytic_dataset import distances, radial_terms

    r2, r = distances(c)
    si, sj = potential._species(c.si), potential._species(c.sj)
    use = c.pair_mask & (r2 < potential.cutoff * potential.cutoff) & tables[3][si, sj]
    r = jnp.where(c.pair_mask, r, 0.5 * potential.cutoff)
    v, dv = jax.jvp(lambda x: potential.pair_energy(tables, si, sj, x), (r,),
                    (jnp.ones_like(r),))
    return radial_terms(jnp.where(use, v, 0.0), None, jnp.where(use, dv, 0.0), c)


def dataset_kernel():
    """(Buckingham, prepare, terms): the analytic kernel of the dataset engine."""
    return Buckingham, _dataset_prepare, _dataset_terms


# ============================================================================ LAMMPS


def write_lammps(spec: BuckinghamSpec, params, species: tuple[str, ...],
                 header: tuple[str, ...] = ()) -> str:
    """LAMMPS commands for the potential at ``params`` ({tag: {A, rho, C}}): ``pair_style
    buck`` and one ``pair_coeff`` per pair of atom types (types numbered as ``species``, from
    1; pairs not listed get A = C = 0).  Read with ``include`` after the box is created."""
    index = {(min(a, b), max(a, b)): tag
             for a, b, tag in build_potential(spec, species).pairs}
    lines = [f"# {line}" for line in header]
    lines.append(f"pair_style buck {float(spec.cutoff)!r}")
    for i in range(len(species)):
        for j in range(i, len(species)):
            tag = index.get((i, j))
            if tag is None:
                lines.append(f"pair_coeff {i + 1} {j + 1} 0.0 1.0 0.0  "
                             f"# {species[i]}-{species[j]}: no Buckingham term")
            else:
                p = params[tag]
                lines.append(f"pair_coeff {i + 1} {j + 1} {float(p['A'])!r} "
                             f"{float(p['rho'])!r} {float(p['C'])!r}  "
                             f"# {species[i]}-{species[j]}")
    return "\n".join(lines) + "\n"


def species_text(spec: BuckinghamSpec) -> str:
    """The pairs it acts between, for the job summary: ``pairs Mg-O, O-O``."""
    return "pairs " + ", ".join(f"{p.species_a}-{p.species_b}" for p in spec.pairs)


FAMILY = Family(element="buckingham", type_name="Buckingham", parameters=PARAMETERS,
                neighbours="pairs", build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                exports=("export-potential",), write_lammps=write_lammps,
                dataset_kernel=dataset_kernel, species_text=species_text)
