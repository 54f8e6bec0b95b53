"""An ASE calculator running any rexfit potential: energy, forces and stress of an ``Atoms``.

:class:`RexfitCalculator` takes a built potential (``potential, params, species``) or a job file
(:meth:`RexfitCalculator.from_job`).  The structure is padded to bucket sizes (atoms and
neighbour-list slots) and the evaluation is compiled once per padded shape, so an MD run or a
relaxation compiles once; neighbour lists are rebuilt only when atoms may have moved by more
than the skin (:func:`~rexfit.structures.neighbors.needs_rebuild`).

Units are ASE's: eV, Å, eV/Å, and eV/Å³ for the stress, Voigt order xx yy zz yz xz xy,
σ = (1/V) ∂E/∂ε (positive = tensile), the convention of both ASE and rexfit.

Importing this module is quick: JAX and rexfit's computing modules are imported when a
calculator is made.  It computes in float64 (``import rexfit`` turns on JAX's 64-bit mode
whenever JAX is imported, and the calculator makes sure of it).
"""

from __future__ import annotations

import math
import os
import tempfile
from functools import partial
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from rexfit.errors import InputError, InputErrors

if TYPE_CHECKING:
    from rexfit.potentials.base import Params

#: Fraction of free slots a neighbour list gets when it is (re)sized, so that the pair count
#: drifting during MD rarely changes the padded shape (and forces a new compilation).
LIST_HEADROOM = 0.25
#: Smallest number of atom slots of a padded system.
MIN_ATOM_SLOTS = 8


class UnknownSpecies(InputError, ValueError):
    """An atom's chemical symbol is not a species of the potential."""


def _jax():
    """JAX in 64-bit mode (imported on first use: importing this module stays quick)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _energy_forces_virial(potential, params, system, nbrs):
    """(energy eV, forces (N, 3) eV/Å, virial (3, 3) eV) of a padded system."""
    from rexfit.physics.properties import evaluate

    ev = evaluate(potential, params, system, nbrs)
    return ev.energy, ev.forces, ev.virial


def _with_gamma(potential, term, full, params, inverse, system, nbrs):
    """:func:`_energy_forces_virial` and the (N,) ACE extrapolation grade of every atom, of
    the ACE potential ``term`` (name in a sum, or None: ``potential`` itself) with the
    inverted active sets ``inverse`` {element: (n, n)}."""
    from rexfit.potentials.ace.active_set import ActiveSet, gamma, projections

    ace = potential if term is None else dict(potential.terms)[term]
    own = params if term is None else params[term]
    active = ActiveSet(tuple(ace.elements), inverse, full)
    grade = gamma(ace, active, projections(ace, own, system, nbrs, full), system)
    return (*_energy_forces_virial(potential, params, system, nbrs), grade)


def _ace_term(potential):
    """(name in the sum or None, the ACE potential) of ``potential``; ValueError without
    exactly one ACE."""
    from rexfit.potentials.ace.model import ACE

    if isinstance(potential, ACE):
        return None, potential
    found = [(name, term) for name, term in getattr(potential, "terms", ())
             if isinstance(term, ACE)]
    if len(found) != 1:
        raise ValueError(f"an active set (extrapolation grade) needs exactly one <ace> "
                         f"potential, the calculator has {len(found)}")
    return found[0]


class RexfitCalculator(Calculator):
    """ASE calculator for a rexfit potential.

    potential: a rexfit potential (e.g. ``build_potentials(job).potential``), static.
    params: its parameter pytree.  species: chemical symbols; species index = position.
    skin: neighbour-list skin (Å); lists are rebuilt when an atom may have moved skin/2.

    ``compilations`` counts the compiled evaluations (one per padded shape), ``list_builds``
    the neighbour-list builds; ``job_problems`` holds the job's warnings (from_job).
    ``stress`` is given when the ASE cell has three independent vectors (the volume is
    defined); for a cluster or a slab whose non-periodic cell vectors are zero, ASE reports
    stress as not available.

    active_set: for an ACE potential, pyace's inverted active set (a ``.asi`` file path, or
    an :class:`~rexfit.potentials.ace.active_set.ActiveSet`): ``results["gamma"]`` (and
    ``get_property("gamma")``) then holds the extrapolation grade γ of every atom.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, potential, params: Params, species, skin: float = 1.0,
                 active_set=None, **kwargs):
        super().__init__(**kwargs)
        species = tuple(str(s) for s in species)
        if len(set(species)) != len(species):
            raise ValueError(f"species must be distinct chemical symbols, got {species}")
        if not skin >= 0.0:
            raise ValueError(f"skin must be a non-negative distance in Å, got {skin}")
        self.potential = potential
        self.params = _jax().device_put(params)
        self.species = species
        self.skin = float(skin)
        self.compilations = 0
        self.list_builds = 0
        self.job_problems: list[InputError] = []  # warnings of the job (from_job)
        self._index = {sym: k for k, sym in enumerate(species)}
        self._compiled: dict = {}
        self._nbrs = None
        self._list_key = None  # (species array bytes, pbc, atom slots) the list was built for
        self._capacities: tuple[int | None, int | None] = (None, None)
        self.active_set = None
        self._gamma_term = None
        if active_set is not None:
            self._set_active_set(active_set)

    def _set_active_set(self, active_set) -> None:
        """Check and keep the active set (module :mod:`rexfit.potentials.ace.active_set`)."""
        from rexfit.potentials.ace.active_set import ActiveSet, read_asi

        term, ace = _ace_term(self.potential)
        if not isinstance(active_set, ActiveSet):
            active_set = read_asi(os.fspath(active_set), ace)
        active_set.check(ace)
        self._gamma_term = term
        self.active_set = active_set
        self._inverse = _jax().device_put(dict(active_set.inverse))
        self.implemented_properties = [*type(self).implemented_properties, "gamma"]

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_job(cls, path, species=None, skin: float = 1.0, **kwargs) -> RexfitCalculator:
        """The potentials of a job file (rexfit or atomicrex job XML).

        Only ``<atom-types>`` and ``<potentials>`` are used (a job that includes the
        ``parameters.xml`` of a finished fit gives the fitted potential).  ``path`` may also
        be a bare ``<potentials>`` file such as ``parameters.xml`` itself: then ``species``
        (chemical symbols, in the order of the job's ``<atom-types>``) is required.
        Raises :class:`~rexfit.errors.InputErrors` for an invalid job or one without potentials.
        """
        from rexfit.job import load_job
        from rexfit.job.load import load_tree
        from rexfit.model.potentials import build_potentials

        path = os.fspath(path)
        try:
            root = load_tree(path).root
        except InputError as err:
            raise InputErrors([err]) from None
        tag = root.tag.rsplit("}", 1)[-1] if isinstance(root.tag, str) else ""
        if tag == "potentials":
            if not species:
                raise ValueError(f"{path} holds only <potentials>: give species=[...] (the "
                                 "chemical symbols of the job's <atom-types>, in order)")
            with tempfile.TemporaryDirectory(prefix="rexfit-ase-") as tmp:
                job_path = os.path.join(tmp, "job.xml")
                with open(job_path, "w", encoding="utf-8") as fh:
                    fh.write(_wrapper_job(os.path.abspath(path), species))
                job, problems = load_job(job_path)
                model = build_potentials(job)
        else:
            job, problems = load_job(path)
            if species is not None and tuple(species) != tuple(s.symbol for s in job.species):
                raise ValueError(f"species={list(species)} differs from the <atom-types> of "
                                 f"{path} ({', '.join(s.symbol for s in job.species)}); "
                                 "leave it out for a job file")
            model = build_potentials(job)
        calc = cls(model.potential, model.params, model.species, skin=skin, **kwargs)
        calc.job_problems = list(problems)
        return calc

    # ------------------------------------------------------------------ ASE interface

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from rexfit.structures.neighbors import bucket_size
        from rexfit.structures.system import make_system, pad_system

        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n = len(atoms)
        if n == 0:
            raise ValueError("RexfitCalculator: the Atoms object has no atoms")
        species = self.species_indices(atoms)
        pbc = tuple(bool(p) for p in atoms.pbc)
        slots = bucket_size(n, MIN_ATOM_SLOTS)
        system = pad_system(make_system(atoms.positions, atoms.cell.array, species, pbc), slots)
        nbrs = self._neighbours(system, species, pbc, slots)
        if self.active_set is None:
            energy, forces, virial = self._evaluator(system, nbrs)(self.params, system, nbrs)
        else:
            energy, forces, virial, grade = self._evaluator(system, nbrs, gamma=True)(
                self.params, self._inverse, system, nbrs)
        energy = float(energy)
        forces = np.array(forces)[:n]
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if self.active_set is not None:
            self.results["gamma"] = np.array(grade)[:n]
        if atoms.cell.rank == 3:
            w = np.asarray(virial)
            voigt = np.array([w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]])
            self.results["stress"] = voigt / abs(atoms.cell.volume)

    def species_indices(self, atoms) -> np.ndarray:
        """(N,) int32 rexfit species of ``atoms`` from their chemical symbols."""
        symbols = atoms.get_chemical_symbols()
        try:
            return np.array([self._index[s] for s in symbols], dtype=np.int32)
        except KeyError:
            unknown = sorted({s for s in symbols if s not in self._index})
            raise UnknownSpecies(
                f"the potential has no species {', '.join(unknown)} (it knows "
                f"{', '.join(self.species)}): give the atoms symbols of the job's "
                "<atom-types>") from None

    # ------------------------------------------------------------------ internals

    def _neighbours(self, system, species, pbc, slots):
        """The current list, or a new one if the atoms, species, pbc or skin require it."""
        from rexfit.structures.neighbors import needs_rebuild

        key = (species.tobytes(), pbc, slots)
        if (self._nbrs is None or key != self._list_key
                or bool(needs_rebuild(self._nbrs, system))):
            self._nbrs = self._build(system)
            self._list_key = key
        return self._nbrs

    def _build(self, system):
        """Neighbour list with the current capacities, enlarged (with headroom) if too small."""
        from rexfit.potentials.lists import build_lists
        from rexfit.structures.neighbors import bucket_size

        build = partial(build_lists, self.potential, system, self.skin,
                        n_species=len(self.species))
        self.list_builds += 1
        pairs, triplets = self._capacities
        if pairs is not None:
            try:
                return build(capacity=pairs, triplet_capacity=triplets)
            except ValueError:
                pass
        exact = build()
        need_pairs = int(np.count_nonzero(np.asarray(exact.mask)))
        caps = [max(pairs or 0, bucket_size(math.ceil(need_pairs * (1 + LIST_HEADROOM))))]
        tri = getattr(exact, "triplets", None)
        if tri is None:
            caps.append(None)
        else:
            need = int(np.count_nonzero(np.asarray(tri.mask)))
            caps.append(max(triplets or 0, bucket_size(math.ceil(need * (1 + LIST_HEADROOM)))))
        self._capacities = tuple(caps)
        return build(capacity=caps[0], triplet_capacity=caps[1])

    def _evaluator(self, system, nbrs, gamma: bool = False):
        """The compiled evaluation for the shapes of (params, system, nbrs), cached; with
        ``gamma``, of (params, inverted active sets, system, nbrs), also giving γ."""
        jax = _jax()
        jnp = jax.numpy
        args = ((self.params, self._inverse, system, nbrs) if gamma
                else (self.params, system, nbrs))
        leaves, treedef = jax.tree_util.tree_flatten(args)
        key = (gamma, treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
        run = self._compiled.get(key)
        if run is None:
            fn = (jax.jit(partial(_with_gamma, self.potential, self._gamma_term,
                                  self.active_set.full)) if gamma
                  else jax.jit(partial(_energy_forces_virial, self.potential)))
            run = fn.lower(*args).compile()
            self._compiled[key] = run
            self.compilations += 1
        return run


def _wrapper_job(potentials_path: str, species) -> str:
    """A job declaring ``species`` whose potentials are included from ``potentials_path``."""
    types = "".join(f"<species>{escape(str(s))}</species>" for s in species)
    href = quoteattr(potentials_path)
    return ("<job>\n"
            f"  <atom-types>{types}</atom-types>\n"
            f'  <xi:include href={href} xmlns:xi="http://www.w3.org/2003/XInclude"/>\n'
            "</job>\n")


__all__ = ["RexfitCalculator", "UnknownSpecies"]
