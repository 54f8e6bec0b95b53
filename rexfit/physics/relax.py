"""Relaxation of a structure's DOFs within their bounds, and its exact parameter derivative.

A :class:`RelaxProblem` maps a flat vector x = (lattice DOFs, cell strain, atomic displacements)
to a :class:`System`. :func:`relax` minimises E(x, θ) for fixed potential parameters θ:

* up to :data:`DENSE_LIMIT` DOFs, a jitted projected Newton iteration (dense Hessian,
  eigenvalues made positive, backtracking line search, rigid translations dropped as zero
  modes) inside one ``lax.while_loop``; it converges quadratically to far below the SPEC §4
  tolerances (forces 1e-6 eV/Å, lattice/strain gradients 1e-8);
* above it, SciPy's L-BFGS-B driven from the host with a jitted energy and gradient.

A DOF that ends on its ``min``/``max`` with the gradient pushing outward is *at its bound*: it
is held there. The neighbour list is rebuilt and the relaxation continued whenever the
geometry moved beyond the skin.

:func:`relaxed_coordinates` makes x*(θ) differentiable: ``jax.lax.custom_root`` applies the
implicit function theorem at the relaxed state, dx*/dθ = −H⁻¹ ∂²E/∂x∂θ, solving with the
Hessian–vector product and conjugate gradients. DOFs at a bound are fixed (zero derivative);
the three rigid translations are projected out. Nothing is differentiated through the
relaxation iterations. For reverse mode on small structures, :func:`relaxed_coordinates_vjp`
gives the same derivative from a dense Jacobian, in a program half the size (it compiles in
half the time).

Structures are data, not static arguments: jitted programs take a problem's
:class:`Geometry` (a pytree; lattices of every kind as a
:class:`~rexfit.structures.lattices.LatticeForm`) under a static :class:`Layout` compared by
value, so structures of equal layout and neighbour-list capacities (:func:`share_capacities`)
share one compiled program. Small structures' programs are compiled quickly (:class:`Program`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from rexfit import programs
from rexfit.errors import GeometryError
from rexfit.physics.strain import voigt_to_strain
from rexfit.potentials.lists import build_lists
from rexfit.structures.lattices import FORM_DOFS, fixed_form, place
from rexfit.structures.neighbors import complete_cell
from rexfit.structures.system import System

LATTICE_DOFS = ("lattice-parameter", "ca-ratio", "atom-distance")
SKIN = 0.5
#: Relaxed-DOF count above which the host L-BFGS-B path replaces dense Newton.
DENSE_LIMIT = 768
#: SPEC §4 convergence: lattice/strain gradient (eV per unit DOF) and force (eV/Å).
LATTICE_TOLERANCE = 1e-8
FORCE_TOLERANCE = 1e-6
#: Largest Newton step component (Å for lengths, dimensionless for strains/ratios).
MAX_STEP = 0.3
#: Structures of at most this many atom slots get their programs compiled quickly: XLA's
#: backend (LLVM) optimisation off, and on the CPU its older fusion emitters, which compile
#: a small structure's elastic-constant gradient in half the time of the newer ones (measured
#: on jobs/al-eam, fe-abop, si-tersoff); their run time stays in milliseconds.
QUICK_COMPILE_ATOMS = 16
QUICK_COMPILE_OPTIONS = {"xla_backend_optimization_level": 0,
                         "xla_cpu_use_fusion_emitters": False}


def quick_compile_options() -> tuple:
    """The entries of :data:`QUICK_COMPILE_OPTIONS` this JAX accepts (an XLA without one of
    them refuses to compile; such an entry is left out), as sorted (name, value) pairs."""
    return programs.accepted_options(tuple(QUICK_COMPILE_OPTIONS.items()))


class Program:
    """A function jitted twice: :meth:`build` gives the quick-to-compile build for structures
    of at most :data:`QUICK_COMPILE_ATOMS` atoms, the fully optimised one for larger ones."""

    def __init__(self, fun, static_argnums=()):
        self._fun, self._static = fun, static_argnums
        self._quick = None
        self.full = programs.jit(fun, static_argnums=static_argnums)

    @property
    def quick(self):
        if self._quick is None:  # built on first use: the options are probed by compiling
            self._quick = programs.jit(self._fun, static_argnums=self._static,
                                       compiler_options=dict(quick_compile_options()))
        return self._quick

    def build(self, natoms: int):
        return self.quick if natoms <= QUICK_COMPILE_ATOMS else self.full


@dataclass(frozen=True)
class Layout:
    """What a relaxation or property program depends on besides array shapes and data:
    compared by value, so structures with equal layouts (and potential, and neighbour-list
    capacities) share their compiled programs whatever their lattice kind and DOF values.

    size: entries of x (the relaxed DOFs, then padding); natoms: atom slots; pbc;
    strain / volume / move: whether x may carry a cell strain, a cell volume change, atomic
    displacements (which entries do is data: :attr:`Geometry.slot`); real: per atom slot,
    True unless padding — only for programs that return per-atom forces, None otherwise.
    :func:`rexfit.objective.terms.share_programs` gives small structures of one potential a
    common layout.
    """

    size: int
    natoms: int
    pbc: tuple[bool, bool, bool]
    strain: bool
    volume: bool
    move: bool
    real: tuple[bool, ...] | None = None


#: Entries of the canonical DOF vector z before the atomic displacements: the form's
#: (a, ca, d), the six Voigt strains and the volume strain.
_Z_HEAD = 10


@jax.tree_util.register_dataclass
@dataclass(frozen=True, eq=False)
class Geometry:
    """A structure's relaxation problem as data (a pytree; its :class:`Layout` is static):
    the x → System map of :class:`~rexfit.structures.lattices.LatticeForm` with the values of
    the lattice DOFs not relaxed, and the bounds, tolerances and translation modes of x.

    x enters the canonical vector z = (a, ca, d, ε1…ε6, e_vol, u₁…u_N, spare) at the
    positions ``slot`` (padding entries of x, ``fixed``, go to the spare entry), so
    structures relaxing different DOFs share one program."""

    values: jax.Array  # (3,) a, ca, d (the relaxed ones are taken from x)
    c0: jax.Array
    a0: jax.Array
    a1: jax.Array
    p0: jax.Array
    frac: jax.Array
    p1: jax.Array
    species: jax.Array
    mask: jax.Array
    lower: jax.Array
    upper: jax.Array
    tolerance: jax.Array
    translations: jax.Array
    slot: jax.Array  # (size,) int: where each entry of x goes in z
    fixed: jax.Array  # (size,) bool: padding entries of x (never move)
    relaxed_ions: jax.Array  # () bool: atomic coordinates are relaxed
    layout: Layout = field(metadata=dict(static=True))

    size = property(lambda self: self.layout.size)
    natoms = property(lambda self: self.layout.natoms)
    pbc = property(lambda self: self.layout.pbc)
    real = property(lambda self: None if self.layout.real is None
                    else np.asarray(self.layout.real, bool))

    @property
    def nreal(self):
        """Real atoms (a traced count: padding slots are data)."""
        return jnp.sum(self.mask).astype(jnp.float64)

    def system(self, x) -> System:
        """The structure at DOF vector ``x`` (differentiable)."""
        z = _canonical(jnp, self.values, self.slot, x, self.layout.natoms)
        cell, positions = _structure(jnp, self, self.layout, z)
        return System(positions=positions, cell=cell, species=self.species, mask=self.mask,
                      pbc=self.layout.pbc)

    def lattice_values(self, x) -> dict:
        """{lattice DOF name: value} at ``x`` of every DOF of the form (a, ca, d), including
        those the structure does not have (their neutral values; the caller drops them)."""
        z = _canonical(jnp, self.values, self.slot, x, self.layout.natoms)
        return {name: z[k] for k, name in enumerate(FORM_DOFS)}


def _canonical(xp, values, slot, x, natoms: int):
    """The canonical DOF vector z of :class:`Geometry` at ``x`` (``xp``: jax.numpy inside
    programs, numpy on the host)."""
    z = xp.concatenate([values, xp.zeros(_Z_HEAD - 3 + 3 * natoms + 1, values.dtype)])
    if not x.shape[0]:
        return z
    if xp is np:
        z[slot] = x
        return z
    return z.at[slot].set(x)


def _structure(xp, arrays, layout: Layout, z):
    """(cell, positions) at the canonical DOF vector ``z``: the lattice form at (a, ca, d),
    deformed by the cell strain and volume strain, atoms displaced (``arrays``: anything with
    the form's c0, a0, a1, p0, frac, p1)."""
    cell, positions = place(arrays.c0, arrays.a0, arrays.a1, arrays.p0, arrays.frac,
                            arrays.p1, z[0], z[1], z[2])
    for on, strain in ((layout.strain, lambda: voigt_to_strain(z[3:9], xp)),
                       (layout.volume, lambda: xp.eye(3) * z[9])):
        if on:  # as rexfit.physics.strain.deform: x -> x (I + strain)
            f = xp.eye(3) + strain()
            positions, cell = positions @ f, cell @ f
    if layout.move:
        n = layout.natoms
        positions = positions + z[_Z_HEAD:_Z_HEAD + 3 * n].reshape(n, 3)
    return cell, positions


def _needs_rebuild(nbrs, system: System) -> bool:
    """:func:`rexfit.structures.neighbors.needs_rebuild` in NumPy, on the host: the same test
    without compiling a program per array shape."""
    pbc = np.asarray(system.pbc)
    ref_cell = np.asarray(nbrs.ref_cell)
    cell = np.where(pbc[:, None], np.asarray(system.cell), ref_cell)
    deformation = np.linalg.solve(ref_cell, cell)
    u = np.asarray(system.positions) - np.asarray(nbrs.ref_positions) @ deformation
    umax = np.max(np.where(np.asarray(system.mask), np.linalg.norm(u, axis=1), 0.0))
    strain = np.linalg.norm(deformation - np.eye(3))
    return bool(2.0 * umax + (nbrs.cutoff + nbrs.skin) * strain > nbrs.skin)


class RelaxProblem:
    """The relaxed DOFs of one structure as a flat vector and the map x → System.

    Host-side bookkeeping (model, initial values, neighbour-list capacities) around its
    :attr:`geometry`, the part jitted programs take as data. x holds the relaxed DOFs
    (:attr:`ndof` of them: lattice DOFs, cell strain, atomic displacements) followed by
    padding entries when :func:`~rexfit.objective.terms.share_programs` gave the structure
    a common layout.
    """

    def __init__(self, model, potential):
        self.model = model
        #: The potential whose neighbour data (pairs, and triplets for three-body terms) the
        #: lists carry; only its structure is used, never its parameters.
        self.potential = potential
        self.cutoff = float(potential.cutoff)
        self.names = tuple(n for n in LATTICE_DOFS if n in model.relax and n in model.dofs)
        self.cell_mode = ("cell-shape" if "cell-shape" in model.relax
                          else "cell-volume" if "cell-volume" in model.relax else None)
        if model.form is not None:  # what a lattice's system would say, without building it
            form = model.form
            base = System(positions=None, cell=None, species=form.species,
                          mask=np.ones(form.natoms, bool), pbc=tuple(form.pbc))
            self._base_natoms = form.natoms
        else:
            base = model.make(model.dofs)
            self._base_natoms = base.natoms
        self.pbc = tuple(base.pbc)
        self.n_lat = len(self.names)
        self.n_strain = {"cell-shape": 6, "cell-volume": 1, None: 0}[self.cell_mode]
        self.n_move = self._base_natoms if "atom-coordinates" in model.relax else 0
        #: relaxed DOFs (the leading entries of x)
        self.ndof = self.n_lat + self.n_strain + 3 * self.n_move
        if model.form is None and model.dofs:
            raise ValueError(f"structure '{model.id}': no lattice form for its lattice DOFs")
        self._form = model.form if model.form is not None else fixed_form(base)
        self._base_mask = np.asarray(base.mask, bool)
        self._base_species = np.asarray(base.species, np.int32)
        #: Real (non-padding) atoms.
        self.nreal = int(self._base_mask.sum())
        self.set_layout(self.ndof, self._base_natoms, self.n_strain == 6, self.n_strain == 1,
                        self.n_move > 0, forces=True)
        #: [pair, triplet] capacities of the neighbour lists; one list shared by the problems
        #: of a :func:`share_capacities` group
        self._room = [0, 0]

    def set_layout(self, size: int, natoms: int, strain: bool, volume: bool, move: bool,
                   forces: bool, pbc: tuple | None = None) -> None:
        """Pad x to ``size`` entries and the structure to ``natoms`` atom slots, under a
        layout that may carry the DOF kinds flagged (a superset of the structure's own);
        ``forces``: the layout keeps the real-atom pattern (programs return forces).
        ``pbc``: the periodicity the programs assume (default: the structure's own); only
        which properties they compute depends on it (volume and stress of periodic cells), the
        energy does not: neighbour lists are built on the host with the structure's own."""
        model, form = self.model, self._form
        n0, ndof = self._base_natoms, self.ndof
        if size < ndof or natoms < n0:
            raise ValueError("a layout cannot shrink a structure")
        self.natoms = natoms
        self.size = size
        #: Real (non-padding) atom slots, host-side.
        self.real = np.concatenate([self._base_mask, np.zeros(natoms - n0, bool)])
        lo = [model.bounds.get(n, (None, None))[0] for n in self.names]
        hi = [model.bounds.get(n, (None, None))[1] for n in self.names]
        pad = [None] * (size - self.n_lat)
        self.lower = np.array([-np.inf if v is None else v for v in lo + pad], float)
        self.upper = np.array([np.inf if v is None else v for v in hi + pad], float)
        self.x0 = np.concatenate([np.array([model.dofs[n] for n in self.names], float),
                                  np.zeros(size - self.n_lat)])
        # Gradient tolerance per component: lattice and strain DOFs tighter than forces.
        self.tolerance = np.concatenate([np.full(self.n_lat + self.n_strain, LATTICE_TOLERANCE),
                                         np.full(3 * self.n_move, FORCE_TOLERANCE),
                                         np.ones(size - ndof)])
        #: padding entries of x
        self.fixed = np.arange(size) >= ndof
        modes = np.zeros((size, 3))
        first = self.n_lat + self.n_strain
        if self.n_move:
            for k in range(3):
                block = np.zeros((self.n_move, 3))
                block[self._base_mask, k] = 1.0
                modes[first:first + 3 * self.n_move, k] = block.reshape(-1)
            modes /= np.sqrt(max(self.nreal, 1))
        #: Orthonormal rigid-translation modes (size, 3); zero if atoms do not move.
        self.translations = modes
        spare = _Z_HEAD + 3 * natoms
        slot = [FORM_DOFS.index(n) for n in self.names]
        slot += list(range(3, 9)) if self.n_strain == 6 else [9] * (self.n_strain == 1)
        slot += list(range(_Z_HEAD, _Z_HEAD + 3 * self.n_move))
        slot += [spare] * (size - ndof)
        extra = natoms - n0

        def rows(a):
            a = np.asarray(a, np.float64)
            return np.concatenate([a, np.zeros((extra, 3))]) if extra else a

        layout = Layout(size=size, natoms=natoms, pbc=self.pbc if pbc is None else tuple(pbc),
                        strain=strain, volume=volume,
                        move=move, real=tuple(bool(r) for r in self.real) if forces else None)
        #: The problem as host data (NumPy; :meth:`host_system`) ...
        self._host = Geometry(
            values=np.asarray(form.values(model.dofs), np.float64),
            c0=np.asarray(form.c0, np.float64), a0=np.asarray(form.a0, np.float64),
            a1=np.asarray(form.a1, np.float64), p0=rows(form.p0), frac=rows(form.frac),
            p1=rows(form.p1),
            species=np.concatenate([self._base_species, np.zeros(extra, np.int32)]),
            mask=self.real.copy(), lower=self.lower, upper=self.upper,
            tolerance=self.tolerance, translations=self.translations,
            slot=np.asarray(slot, np.int32), fixed=self.fixed,
            relaxed_ions=np.asarray("atom-coordinates" in model.relax), layout=layout)
        #: ... and as device data for jitted programs (see :class:`Geometry`); device_put
        #: compiles nothing (jnp.asarray of a NumPy array compiles a program per shape)
        self.geometry = jax.tree.map(jax.device_put, self._host)

    @property
    def layout(self) -> Layout:
        return self.geometry.layout

    @property
    def relaxed_ions(self) -> bool:
        return "atom-coordinates" in self.model.relax

    def system(self, x) -> System:
        """The structure at DOF vector ``x`` (differentiable)."""
        return self.geometry.system(x)

    def host_system(self, x) -> System:
        """The structure at host DOF values ``x``: :meth:`Geometry.system` in NumPy (no
        JAX dispatch or compilation on the host side of a relaxation)."""
        h = self._host
        z = _canonical(np, h.values, h.slot, np.asarray(x, np.float64), h.layout.natoms)
        cell, positions = _structure(np, h, h.layout, z)
        return System(positions=positions, cell=cell, species=h.species, mask=h.mask,
                      pbc=self.pbc)

    def needs_rebuild(self, nbrs, x) -> bool:
        """True if ``nbrs`` may miss pairs of the structure at host DOF values ``x``."""
        return _needs_rebuild(nbrs, self.host_system(x))

    def lattice_values(self, x) -> dict:
        """{lattice DOF name: value} at ``x`` (relaxed ones from x, the others as given)."""
        out = {k: v for k, v in self.model.dofs.items()}
        for k, name in enumerate(self.names):
            out[name] = x[k]
        return out

    def neighbors(self, x):
        """A neighbour list at ``x`` (with triplets if the potential needs them). Its capacities
        never shrink below the largest ones this structure needed so far, so a fit does not
        recompile when a cell expands and shrinks."""
        system = self.host_system(x)

        def build(capacity, triplet_capacity):
            return build_lists(self.potential, system, SKIN, capacity=capacity or None,
                               triplet_capacity=triplet_capacity or None)

        room = self._room
        try:
            nbrs = build(room[0], room[1])
        except ValueError:  # needs more room than before: grow, never shrink
            fresh = build(None, None)
            fresh_triplets = getattr(fresh, "triplets", None)
            nbrs = build(max(room[0], fresh.capacity),
                         max(room[1], 0 if fresh_triplets is None else fresh_triplets.capacity))
        room[0] = max(room[0], nbrs.capacity)
        triplets = getattr(nbrs, "triplets", None)
        if triplets is not None:
            room[1] = max(room[1], triplets.capacity)
        return nbrs


#: Neighbour-list capacities are sized for the densest geometry the bounds allow when that
#: needs at most this many times the slots of the initial geometry. The room is paid on
#: every call: the quick-compiled programs of small structures run in time proportional to
#: their pair and triplet slots, and every structure sharing the capacities pays it
#: (jobs/fe-abop: 3,072 triplet slots for hcp's corner at 8, 384 at 4, its four
#: relaxations 0.7 → 0.09 CPU-s); a structure that does reach a denser corner grows its
#: lists and compiles again.
DENSE_ROOM_FACTOR = 4


def _room_for_bounds(problem) -> None:
    """Make room in ``problem``'s lists for its relaxed lattice DOFs at their lower bounds
    (the densest corner: smallest lattice parameter, c/a and atom distance), so a relaxation
    that runs there does not grow the lists and compile its programs again; unless that
    needs more than :data:`DENSE_ROOM_FACTOR` times the room."""
    n = problem.n_lat
    lower = problem.lower[:n]
    if not n or not np.any(np.isfinite(lower)):
        return
    dense = np.array(problem.x0, float)
    dense[:n] = np.where(np.isfinite(lower), lower, dense[:n])
    fresh = build_lists(problem.potential, problem.host_system(dense), SKIN)
    triplets = getattr(fresh, "triplets", None)
    need = (fresh.capacity, 0 if triplets is None else triplets.capacity)
    room = problem._room
    if all(k <= DENSE_ROOM_FACTOR * max(r, 1) for k, r in zip(need, room)):
        room[0], room[1] = max(room[0], need[0]), max(room[1], need[1])


def share_capacities(problems) -> dict:
    """Give problems of equal layout (and potential) one set of neighbour-list capacities,
    the largest any of them needs at its initial DOFs or lower bounds (and later, whenever
    one grows; see :func:`_room_for_bounds`), so
    their lists have equal shapes and they share compiled programs. Padding slots carry no
    energy.

    Returns {problem: GeometryError} for the problems whose given geometry no neighbour list
    can be built for (non-finite, or beyond the bounds of :mod:`rexfit.structures.neighbors`);
    the caller reports them."""
    groups: dict = {}
    failed: dict = {}
    for problem in problems:
        try:
            problem.neighbors(problem.x0)
        except GeometryError as exc:
            failed[problem] = exc
            continue
        except Exception:  # noqa: BLE001 — it fails again, reported, when it is evaluated
            continue
        try:
            _room_for_bounds(problem)
        except GeometryError:  # the bounds allow a geometry too dense to list: no room made
            pass
        except Exception:  # noqa: BLE001 — it fails again, reported, when it is evaluated
            continue
        groups.setdefault((id(problem.potential), problem.layout), []).append(problem)
    for group in groups.values():
        room = [max(p._room[0] for p in group), max(p._room[1] for p in group)]
        for problem in group:
            problem._room = room
    return failed


@dataclass
class Relaxed:
    """A relaxed structure: DOF vector, system, neighbour list and status."""

    problem: RelaxProblem
    x: np.ndarray
    system: System
    nbrs: object
    dofs: dict[str, float]
    free: np.ndarray  # bool per DOF: False where held at a bound
    converged: bool
    at_bound: list[str]
    message: str
    iterations: int
    saddle: bool = False


def device_array(a):
    """A host value as a device array, without compiling a program per shape (as
    ``jnp.asarray`` of a NumPy array does)."""
    return jax.device_put(np.asarray(a))


# ----------------------------------------------------------------------------- Newton


def _energy(problem, potential, params, nbrs, x):
    return potential.energy(params, problem.system(x), nbrs)


def _energy_derivatives(problem, potential, params, nbrs, x):
    """(E, ∂E/∂x, ∂²E/∂x²) at ``x`` in one forward-over-reverse pass: the same arithmetic as
    ``jax.value_and_grad`` and ``jax.hessian`` (jacfwd of jacrev), traced once."""
    vg = jax.value_and_grad(partial(_energy, problem, potential, params, nbrs))
    basis = jnp.eye(x.shape[0], dtype=x.dtype)
    (e, g), (_, h) = jax.vmap(lambda v: jax.jvp(vg, (x,), (v,)),
                              out_axes=((None, None), (0, -1)))(basis)
    return e, g, h


def _newton(potential, problem, params, x0, nbrs, scale, max_iter: int = 100):
    """Projected, eigenvalue-modified Newton with backtracking; returns
    (x, gradient, iterations, smallest relative curvature of the kept modes).

    One ``lax.while_loop`` whose body evaluates energy, gradient and Hessian once, at the
    candidate point: the start, a full Newton step, or a backtracked one. The energy enters
    the program once (compile time grows with program size); a rejected trial costs a
    Hessian it does not use, which for the small dense problems here is cheap.

    ``problem`` is a :class:`Geometry` (data): problems of equal layout share the program.
    """
    lower = jnp.asarray(problem.lower)
    upper = jnp.asarray(problem.upper)
    tol = jnp.asarray(problem.tolerance) * 1e-3
    derivatives = partial(_energy_derivatives, problem, potential, params, nbrs)

    fixed = problem.fixed

    def free_of(x, g):
        return ~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)) | fixed)

    def gmax(x, g):
        return jnp.max(jnp.abs(jnp.where(free_of(x, g), g, 0.0)) / tol)

    def direction(x, g, h):
        """Newton step p from x, the slope g·p, the scaled gradient norm and the smallest
        relative curvature of the kept modes."""
        fm = free_of(x, g).astype(x.dtype)
        h = h * jnp.outer(fm, fm) + jnp.diag(1.0 - fm)
        lam, q = jnp.linalg.eigh(h)
        big = jnp.max(jnp.abs(lam))
        keep = jnp.abs(lam) > 1e-10 * big
        denom = jnp.where(keep, jnp.maximum(jnp.abs(lam), 1e-8 * big), 1.0)
        gq = q.T @ (g * fm)
        p = -q @ jnp.where(keep, gq / denom, 0.0)
        p = p * jnp.minimum(1.0, MAX_STEP * scale / jnp.maximum(jnp.max(jnp.abs(p) / scale), 1e-300))
        curv = jnp.min(jnp.where(keep & (fm @ (q * q) > 0.5), lam / big, jnp.inf))
        return p, jnp.dot(g, p), gmax(x, g), curv

    # state: k, x, e, g, h (accepted point); p, slope, gm, curv_here (step from x);
    # alpha, xt (candidate); curv (of the last step taken); stalled; started
    def body(s):
        k, x, e, g, h, p, slope, gm, curv_here, alpha, xt, curv, stalled, started = s
        et, gt, ht = derivatives(xt)
        armijo = et <= e + 1e-4 * alpha * slope
        flat = (et <= e + 1e-12 * (1.0 + jnp.abs(e))) & (gmax(xt, gt) < gm)
        ok = ~started | armijo | flat
        stalled = started & ~ok & ~(alpha > 1e-10)
        curv = jnp.where(started, curv_here, curv)  # a step from x was taken
        k = k + (started & (ok | stalled)).astype(k.dtype)
        x, e, g, h = (jnp.where(ok, xt, x), jnp.where(ok, et, e), jnp.where(ok, gt, g),
                      jnp.where(ok, ht, h))
        p, slope, gm, curv_here = jax.lax.cond(
            ok, direction, lambda x, g, h: (p, slope, gm, curv_here), x, g, h)
        alpha = jnp.where(ok, 1.0, 0.5 * alpha)
        xt = jnp.clip(x + alpha * p, lower, upper)
        return (k, x, e, g, h, p, slope, gm, curv_here, alpha, xt, curv, stalled,
                jnp.asarray(True))

    def cond(s):
        k, x, _, g = s[:4]
        stalled, started = s[-2:]
        return ~started | ((k < max_iter) & (~stalled) & (gmax(x, g) > 1.0))

    n = x0.shape[0]
    zero = jnp.zeros((), x0.dtype)
    inf = jnp.asarray(jnp.inf, x0.dtype)
    state = (jnp.asarray(0), x0, zero, jnp.zeros(n, x0.dtype), jnp.zeros((n, n), x0.dtype),
             jnp.zeros(n, x0.dtype), zero, zero, inf, jnp.ones((), x0.dtype), x0, inf,
             jnp.asarray(False), jnp.asarray(False))
    s = jax.lax.while_loop(cond, body, state)
    k, x, g, curv = s[0], s[1], s[3], s[11]
    return x, g, k, curv


_newton_program = Program(_newton, static_argnums=(0, 6))


@partial(jax.jit, static_argnums=0)
def _value_and_grad(potential, problem, params, x, nbrs):
    return jax.value_and_grad(partial(_energy, problem, potential, params, nbrs))(x)


def _lbfgs(problem, potential, params, x, nbrs):
    """Host L-BFGS-B for problems too large for a dense Hessian."""
    from scipy.optimize import minimize  # imported when used (a large structure)

    bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
              for lo, hi in zip(problem.lower, problem.upper)]

    def fun(y):
        v, g = _value_and_grad(potential, problem.geometry, params, jnp.asarray(y), nbrs)
        return float(v), np.asarray(g, dtype=float)

    res = minimize(fun, x, jac=True, method="L-BFGS-B", bounds=bounds,
                   options=dict(maxiter=5000, ftol=1e-16, gtol=1e-10, maxcor=30))
    _, g = _value_and_grad(potential, problem.geometry, params, jnp.asarray(res.x), nbrs)
    return res.x, np.asarray(g), int(res.nit), np.inf


def _length_scale(problem) -> np.ndarray:
    """Typical size of a unit change per DOF: Å for lengths, 0.1 for strains, ratios."""
    scale = np.ones(problem.size)  # padding entries of x included
    for k, name in enumerate(problem.names):
        if name == "ca-ratio":
            scale[k] = 0.1
    scale[problem.n_lat:problem.n_lat + problem.n_strain] = 0.1
    return scale


def relax(problem: RelaxProblem, potential, params, x0=None, nbrs=None,
          max_rounds: int = 8) -> Relaxed:
    """Relax ``problem`` under ``potential`` with ``params``, starting from ``x0`` (default:
    the structure's own DOF values). ``nbrs`` may be a neighbour list to reuse if still valid."""
    x = np.array(problem.x0 if x0 is None else x0, dtype=float)
    if nbrs is None or problem.needs_rebuild(nbrs, x):
        nbrs = problem.neighbors(x)
    if problem.ndof == 0:
        dofs = {k: float(v) for k, v in problem.model.dofs.items()}
        return Relaxed(problem, x, problem.host_system(x), nbrs, dofs,
                       np.zeros(problem.size, bool), True, [], "nothing to relax", 0)
    scale = device_array(_length_scale(problem))
    iterations, curv = 0, np.inf
    for _ in range(max_rounds):
        if problem.size <= DENSE_LIMIT:
            newton = _newton_program.build(problem.natoms)
            xn, g, k, curv = newton(potential, problem.geometry, params, device_array(x),
                                    nbrs, scale)
            xn, g, k, curv = np.asarray(xn), np.asarray(g), int(k), float(curv)
        else:
            xn, g, k, curv = _lbfgs(problem, potential, params, x, nbrs)
        iterations += k
        x = xn
        if not problem.needs_rebuild(nbrs, x):
            break
        why = _collapse(problem, x, nbrs)
        if why is None:
            try:
                nbrs = problem.neighbors(x)
            except GeometryError as exc:  # far too dense (or large) to list
                why = str(exc)
        if why is not None:
            return _collapsed(problem, potential, params, x, nbrs, iterations, why)
    else:
        _, g = _value_and_grad(potential, problem.geometry, params, jnp.asarray(x), nbrs)
        g = np.asarray(g)
    return _finish(problem, x, g, nbrs, iterations, curv)


#: A relaxation that brings two atoms (or an atom and its periodic image) closer than this
#: (Å) has collapsed the structure (no real structure relaxes there): it is stopped and
#: reported, rather than followed to zero volume and infinite energy.
COLLAPSE_DISTANCE = 0.1


def _collapse(problem, x, nbrs) -> str | None:
    """What collapsed at host DOF values ``x`` (two atoms of the current list, or lattice
    planes of the periodic cell, closer than :data:`COLLAPSE_DISTANCE`), or None."""
    system = problem.host_system(x)
    pos = np.asarray(system.positions)
    cell = np.asarray(system.cell)
    with np.errstate(all="ignore"):
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(cell))):
            return None  # diverged: _finish says so
        mask = np.asarray(nbrs.mask)
        i, j = np.asarray(nbrs.i)[mask], np.asarray(nbrs.j)[mask]
        d = np.linalg.norm(pos[j] - pos[i] + np.asarray(nbrs.shifts)[mask] @ cell, axis=1)
        if d.size and d.min() < COLLAPSE_DISTANCE:
            k = int(np.argmin(d))
            who = (f"atom {i[k] + 1} and its periodic image" if i[k] == j[k]
                   else f"atoms {i[k] + 1} and {j[k] + 1}")
            return f"{who} came within {d[k]:.3g} Å (less than {COLLAPSE_DISTANCE:g} Å)"
        pbc = np.asarray(system.pbc, bool)
        if pbc.any():
            try:
                full = complete_cell(cell, system.pbc)  # non-periodic rows made regular
            except GeometryError:
                return "the periodic cell vectors became linearly dependent (zero volume)"
            spacing = np.abs(np.linalg.det(full)) / np.linalg.norm(
                np.cross(full[[1, 2, 0]], full[[2, 0, 1]]), axis=1)
            if np.any(pbc & ~(spacing >= COLLAPSE_DISTANCE)):
                return (f"the periodic cell flattened (lattice planes {spacing[pbc].min():.3g} Å "
                        f"apart, less than {COLLAPSE_DISTANCE:g} Å)")
    return None


def _extent(problem, x) -> float:
    """Size of the structure at host DOF values ``x`` (Å): its periodic cell vectors and the
    spread of its atoms (to tell a collapse from a structure that expands without bound)."""
    system = problem.host_system(x)
    pos = np.asarray(system.positions)[problem.real]
    cell = np.asarray(system.cell)[np.asarray(system.pbc, bool)]
    with np.errstate(all="ignore"):
        sizes = [np.linalg.norm(cell, axis=1).max(initial=0.0),
                 np.ptp(pos, axis=0).max(initial=0.0) if len(pos) else 0.0]
    return float(np.nan_to_num(max(sizes), nan=np.inf))


def _collapsed(problem, potential, params, x, nbrs, iterations, why) -> Relaxed:
    """A relaxation stopped because it collapsed the structure (or made it expand without
    bound): non-finite DOFs (so nothing downstream uses the geometry) and a message saying
    what happened, with the cell volume and energy per atom where it stopped (failure path
    only)."""
    n = max(problem.nreal, 1)
    facts = []
    with np.errstate(all="ignore"):
        if all(problem.pbc):
            volume = abs(np.linalg.det(np.asarray(problem.host_system(x).cell))) / n
            given = abs(np.linalg.det(np.asarray(problem.host_system(problem.x0).cell))) / n
            facts.append(f"cell volume {volume:.3g} Å³/atom (given: {given:.3g})")
        try:
            energy, _ = _value_and_grad(potential, problem.geometry, params, jnp.asarray(x),
                                        nbrs)
            facts.append(f"energy {float(energy) / n:.4g} eV/atom")
        except Exception:  # noqa: BLE001 — only decoration of the message
            pass
    lattice = ", ".join(f"{name} {x[k]:.4g}" for k, name in enumerate(problem.names))
    where = "; ".join(([lattice] if lattice else []) + facts)
    what = "ran away" if _extent(problem, x) > _extent(problem, problem.x0) else "collapsed"
    message = (f"{what} after {iterations} iterations: {why}" + (f" ({where})" if where
                                                                   else "")
               + "; the potential has no minimum near the given structure at these "
               "parameters (check signs and values of the parameters, or bound the relaxed "
               "DOFs with min/max)")
    nan = np.full_like(np.asarray(x, float), np.nan)
    dofs = {k: float("nan") for k in problem.lattice_values(x)}
    return Relaxed(problem, nan, problem.host_system(nan), nbrs, dofs,
                   np.ones(problem.size, bool), False, [], message, iterations)


def _finish(problem, x, g, nbrs, iterations, curv) -> Relaxed:
    lo_hit = (x <= problem.lower) & (g > 0)
    hi_hit = (x >= problem.upper) & (g < 0)
    free = ~(lo_hit | hi_hit | problem.fixed)
    at_bound = [n for k, n in enumerate(problem.names) if not free[k]]
    worst = np.max(np.where(free, np.abs(g) / problem.tolerance, 0.0), initial=0.0)
    converged = bool(np.isfinite(worst) and worst <= 1.0)
    saddle = bool(np.isfinite(curv) and curv < -1e-8)
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(g)):
        message = "diverged (non-finite energy gradient)"
        converged = False
    elif not converged:
        k = int(np.argmax(np.where(free, np.abs(g) / problem.tolerance, 0.0)))
        message = (f"not converged: largest remaining gradient {abs(g[k]):.2e} "
                   f"(tolerance {problem.tolerance[k]:.0e})")
    elif saddle:
        message = "converged to a saddle point (negative curvature)"
    else:
        message = "converged"
    if at_bound:
        message += "; at bound: " + ", ".join(at_bound)
    dofs = {k: float(v) for k, v in problem.lattice_values(x).items()}
    return Relaxed(problem, x, problem.host_system(x), nbrs, dofs, free, converged,
                   at_bound, message, iterations, saddle)


# ----------------------------------------------------------------------------- implicit


def relaxed_coordinates(problem: RelaxProblem, potential, params, x_star, free, nbrs):
    """x*(θ) = ``x_star`` with the exact derivative dx*/dθ by implicit differentiation.

    ``x_star`` must be a relaxed state of ``params`` (from :func:`relax`); ``free`` marks the
    DOFs not held at a bound. The optimality condition handed to ``custom_root`` is
    f(x) = ∂E/∂x (free DOFs, fixed ones frozen at x*) + T Tᵀ (x − x*) (translations T) on the
    free DOFs and x − x* on the fixed ones: its Jacobian is symmetric and, at a minimum,
    positive definite, so conjugate gradients solve the tangent systems.

    ``problem``: a :class:`RelaxProblem` or its :class:`Geometry` (inside a jitted program).
    """
    problem = getattr(problem, "geometry", problem)
    if problem.size == 0:
        return x_star
    x_star = jax.lax.stop_gradient(x_star)
    fm = jnp.asarray(free, x_star.dtype)
    t = jnp.asarray(problem.translations)

    def optimality(x):
        xf = jnp.where(free, x, x_star)
        g = jax.grad(partial(_energy, problem, potential, params, nbrs))(xf)
        d = x - x_star
        return jnp.where(free, g + t @ (t.T @ d), d)

    def solve(f, x0):
        return x_star

    def tangent_solve(g, y):
        # Translation components of y are zero for translation-invariant objectives; drop
        # any round-off there so CG stays in the range of the Hessian.
        y = y - t @ (t.T @ (y * fm))
        cg = partial(conjugate_gradient, maxiter=10 * problem.size + 50)
        return jax.lax.custom_linear_solve(g, y, solve=cg, symmetric=True)

    return jax.lax.custom_root(optimality, x_star, solve, tangent_solve)


#: Reverse-mode implicit derivatives are taken in dense form (:func:`relaxed_coordinates_vjp`)
#: up to this many relaxed DOFs plus potential parameters.
DENSE_IMPLICIT_LIMIT = 96


def dense_implicit(problem, params) -> bool:
    """True if :func:`relaxed_coordinates_vjp` applies (its dense Jacobian is small): at most
    :data:`DENSE_IMPLICIT_LIMIT` relaxed DOFs and parameters together."""
    problem = getattr(problem, "geometry", problem)
    count = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))
    return problem.size + count <= DENSE_IMPLICIT_LIMIT


def relaxed_coordinates_vjp(problem, potential, params, x_star, free, nbrs):
    """:func:`relaxed_coordinates` for reverse mode only (``jax.grad``; not ``jax.jvp``), in
    a program about half the size, for structures with few DOFs and parameters
    (:func:`dense_implicit`).

    The optimality condition f(x, θ) is that of :func:`relaxed_coordinates`. Its Jacobian in
    x (H) and in θ (J) come from one forward-over-reverse pass with one tangent per DOF and
    per parameter (vmapped, traced once), and the pull-back of a cotangent v of x* is
    −Jᵀ H⁻ᵀ v (dense LU solve), v's rigid-translation components dropped first as the
    tangent solve of :func:`relaxed_coordinates` drops them. The same derivative, where
    ``custom_root`` traces a Hessian–vector product for conjugate gradients, its transpose
    and a reverse-over-reverse pass in θ.
    """
    from jax.flatten_util import ravel_pytree

    problem = getattr(problem, "geometry", problem)
    if problem.size == 0:
        return x_star
    flat, unravel = ravel_pytree(params)
    n = problem.size

    def optimality(x, theta, x_star, free, nbrs, problem):
        xf = jnp.where(free, x, x_star)
        g = jax.grad(partial(_energy, problem, potential, unravel(theta), nbrs))(xf)
        t = jnp.asarray(problem.translations)
        return jnp.where(free, g + t @ (t.T @ (x - x_star)), x - x_star)

    def zero_cotangent(tree):
        def zero(a):
            a = jnp.asarray(a)
            if jnp.issubdtype(a.dtype, jnp.inexact):
                return jnp.zeros_like(a)
            return np.zeros(a.shape, dtype=jax.dtypes.float0)
        return jax.tree.map(zero, tree)

    @jax.custom_vjp
    def solution(theta, rest):
        return rest[0]

    def forward(theta, rest):
        return rest[0], (theta, rest)

    def backward(saved, v):
        theta, rest = saved
        x_star, free, nbrs, geometry = rest
        fm = jnp.asarray(free, x_star.dtype)
        t = jnp.asarray(geometry.translations)
        v = v - t @ (t.T @ (v * fm))
        basis = jnp.eye(n + theta.shape[0], dtype=x_star.dtype)
        _, cols = jax.vmap(lambda e: jax.jvp(
            lambda x, th: optimality(x, th, x_star, free, nbrs, geometry),
            (x_star, theta), (e[:n], e[n:])), out_axes=(None, -1))(basis)
        lam = jnp.linalg.solve(cols[:, :n].T, v)
        return -(cols[:, n:].T @ lam), zero_cotangent(rest)

    solution.defvjp(forward, backward)
    rest = (jax.lax.stop_gradient(x_star), free, nbrs, problem)
    return solution(flat, rest)


def conjugate_gradient(apply, b, *, rtol: float = 1e-13, maxiter: int = 1000):
    """Solve A x = b for symmetric positive-definite A given as ``apply`` (plain CG in a
    ``lax.while_loop``; no custom linear solve inside, so it nests in ``custom_root``)."""
    bnorm = jnp.sqrt(jnp.vdot(b, b))
    stop = (rtol * bnorm) ** 2

    def cond(c):
        k, _, _, _, rr = c
        return (k < maxiter) & (rr > stop)

    def body(c):
        k, x, r, p, rr = c
        ap = apply(p)
        alpha = rr / jnp.vdot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = jnp.vdot(r, r)
        p = r + (rr_new / rr) * p
        return k + 1, x, r, p, rr_new

    x0 = jnp.zeros_like(b)
    _, x, _, _, _ = jax.lax.while_loop(cond, body, (0, x0, b, b, jnp.vdot(b, b)))
    return x
