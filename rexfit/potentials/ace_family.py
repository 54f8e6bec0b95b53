"""The ACE family (``<ace>``, pacemaker's atomic cluster expansion, as LAMMPS ``pair_style
pace``): its typed spec and how it is read from the job (a ``<param-file>`` naming a B-basis
YAML, ``output_potential.yaml``, and the ``<fit-dof>`` groups ``<coefficients/>`` and
``<crad/>``), the model built from the file with its DOFs, the fitted B-basis file written next
to parameters.xml and the ``<export-potential>`` files (B-basis YAML, ``.yace``, LAMMPS
commands), all declared in :data:`FAMILY`.  The potential is
:class:`rexfit.potentials.ace.model.ACE`.

DOFs: ``<coefficients/>``, the function coefficients of every species block, one DOF per
function and density, named ``c<k>[<block>]`` (k from 1 over the block's rows in file order,
densities fastest; block: its elements joined, ``Cu``, ``CuAl``); ``<crad/>``, the radial
coefficients of every bond, ``crad<k>[<bond>]`` (k from 1 over (n, l, k) in file order, bond:
its two elements alphabetical, ``CuCu``, ``AlCu``).  ``tag`` restricts a group to one block or
bond.  Functions marked ``skip`` in the file are not fitted.

``<regularization l1 l2 w0-rad w1-rad w2-rad/>``: pacemaker's regularisation (its loss keys
``L1_coeffs``, ``L2_coeffs``, ``w0_rad``, ``w1_rad``, ``w2_rad``): l1 Σ|c| and l2 Σc² over the
fitted function coefficients (the model layer's per-DOF L1 and L2), and the radial
smoothness of :mod:`rexfit.potentials.ace.regularization` (a penalty of the potential).

Upfit and ladder (:mod:`rexfit.potentials.ace.ladder`): ``<initial-potential>`` names a
B-basis YAML whose coefficients start the functions (and radial rows) it shares with the
file, the others starting at zero; ``<ladder step fraction order>`` makes the training phase
grow the basis from empty (or from the initial potential's functions) in pacemaker's steps
(:func:`ladder` gives the steps; ``rexfit.run.ladder`` runs them), every function coefficient
then starting at zero.

JAX is imported inside the functions that need it, so that reading a job does not load it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from rexfit.errors import Origin
from rexfit.potentials.family import Family

#: The ``<fit-dof>`` groups.
DOF_GROUPS = ("coefficients", "crad")
#: ``<regularization>`` attributes, in the order of :attr:`AceSpec.regularization`.
REGULARIZATION = ("l1", "l2", "w0-rad", "w1-rad", "w2-rad")
#: The LAMMPS pair style that reads the ``.yace`` file.
PAIR_STYLE = "pace"


@dataclass(frozen=True)
class ActiveSetSpec:
    """``<active-set>``: the extrapolation grade's projections (full: dE/dc, else B), MaxVol's
    tolerance and largest number of swaps (:mod:`rexfit.potentials.ace.active_set`)."""

    full: bool
    tolerance: float
    max_iterations: int
    origin: Origin


@dataclass(frozen=True)
class LadderSpec:
    """``<ladder>``: functions added per step (``step``, an integer ≥ 1; ``fraction``, of the
    current size, 0 < f < 1; the larger wins; neither: all at once) in ``order``
    (``body-order`` or ``power-order``), as pacemaker's ``ladder_step`` / ``ladder_type``."""

    step: int | None
    fraction: float | None
    order: str
    origin: Origin


@dataclass(frozen=True)
class AceSpec:
    """``<ace>``: the B-basis YAML read (resolved path), the ``<fit-dof>`` groups, the
    potential's id and origin, its ``<active-set>`` (None: no extrapolation grade),
    ``regularization``: the ``<regularization>`` weights (l1, l2, w0-rad, w1-rad, w2-rad),
    zeros without one; the ``<initial-potential>`` (resolved path) an upfit starts from and
    the ``<ladder>`` the basis grows by (None: none)."""

    param_file: str | None
    fit_dofs: tuple
    ident: str
    origin: Origin
    active_set: ActiveSetSpec | None = None
    regularization: tuple = (0.0,) * len(REGULARIZATION)
    initial_potential: str | None = None
    ladder: LadderSpec | None = None


def build_spec(reader, node, ident: str, species_a: str, species_b: str):
    """The spec of an ``<ace>`` node (errors recorded by ``reader``)."""
    what = f"<ace id='{ident}'>"
    if species_a != "*" or species_b != "*":
        reader.error(f"{what} describes every atom of the elements of its file: leave "
                     "species-a and species-b out (or give *)", node.origin)
    files = node.findall("param-file")
    if len(files) != 1:
        reader.error(f"{what} needs one <param-file>: a pacemaker B-basis potential YAML "
                     "(output_potential.yaml)", node.origin)
    param_file = reader.file(files[0]) if files else None
    dofs = reader.fit_dofs(node.find("fit-dof"), DOF_GROUPS, f"ace '{ident}'")
    initial = node.findall("initial-potential")
    if len(initial) > 1:
        reader.error(f"{what} takes one <initial-potential> (a B-basis YAML to start from)",
                     initial[1].origin)
    initial_potential = reader.file(initial[0]) if initial else None
    ladders = node.findall("ladder")
    if len(ladders) > 1:
        reader.error(f"{what} takes one <ladder>", ladders[1].origin)
    ladder = _ladder_spec(reader, ladders[0], what) if ladders else None
    return AceSpec(param_file, tuple(dofs.values()), ident, node.origin,
                   _active_set_spec(reader, node.findall("active-set"), what),
                   _regularization(reader, node, what), initial_potential, ladder)


#: The orders of ``<ladder order>`` (as rexfit.potentials.ace.ladder.ORDERS; pacemaker's
#: ladder_type body_order and power_order)
LADDER_ORDERS = ("body-order", "power-order")


def _ladder_spec(reader, node, what: str) -> LadderSpec:
    """``<ladder step fraction order>`` (errors recorded by ``reader``)."""
    step = reader.integer(node, "step")
    fraction = reader.attribute(node, "fraction")
    order = (node.get("order") or "body-order").strip()
    if step is not None and step < 1:
        reader.error(f"{what} <ladder step='{step}'>: give the number of functions added per "
                     "step, an integer of at least 1", node.origin)
    if fraction is not None and not 0.0 < fraction < 1.0:
        reader.error(f"{what} <ladder fraction='{fraction:g}'>: give the growth per step as a "
                     "fraction of the current basis, between 0 and 1 (e.g. 0.2)", node.origin)
    if order not in LADDER_ORDERS:
        reader.error(f"{what} <ladder order='{order}'>: the order is body-order or "
                     "power-order", node.origin)
    return LadderSpec(step, fraction, order, node.origin)


def _active_set_spec(reader, nodes, what: str) -> ActiveSetSpec | None:
    """The ``<active-set>`` of an ``<ace>`` (at most one)."""
    if not nodes:
        return None
    if len(nodes) > 1:
        reader.error(f"{what} has {len(nodes)} <active-set> elements: give one",
                     nodes[1].origin)
    node = nodes[0]
    tol = reader.attribute(node, "gamma-tolerance", 1.01)
    if tol is not None and not tol >= 1.0:
        reader.error(f"{what}: <active-set gamma-tolerance> must be at least 1, not {tol}",
                     node.origin)
    iterations = reader.integer(node, "max-iterations", 300)
    return ActiveSetSpec(node.get("grade", "linear") == "full", tol or 1.01,
                         iterations if iterations is not None else 300, node.origin)


def _regularization(reader, node, what: str) -> tuple:
    """The weights of the ``<regularization>`` child of ``node`` (zeros without one)."""
    found = node.findall("regularization")
    if len(found) > 1:
        reader.error(f"{what} has {len(found)} <regularization> elements: give one",
                     found[1].origin)
    if not found:
        return (0.0,) * len(REGULARIZATION)
    out = []
    for name in REGULARIZATION:
        value = reader.attribute(found[0], name, 0.0)
        if value is not None and not (value >= 0.0 and value < float("inf")):
            reader.error(f"{what} <regularization> {name} must be a finite number ≥ 0, got "
                         f"{value:g}", found[0].origin)
        out.append(0.0 if value is None or not value >= 0.0 else float(value))
    return tuple(out)


def parameter_specs(spec: AceSpec):
    """None inline: the values are in the file (:func:`build_model` registers the DOFs)."""
    return ()


def block_tag(name: str) -> str:
    """The tag of a species block (``"Cu Al"`` → ``CuAl``) or bond (``"Al-Cu"`` → ``AlCu``)."""
    return name.replace(" ", "").replace("-", "")


def _load(spec: AceSpec, species: tuple[str, ...]):
    """(ACE for the job's species, params with flat arrays); located errors."""
    import jax.numpy as jnp

    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.ace.files import read_bbasis
    from rexfit.potentials.ace.model import ACE

    what = f"<ace id='{spec.ident}'>"
    try:
        potential, params = ACE.from_bbasis(read_bbasis(spec.param_file))
    except Exception as exc:  # noqa: BLE001 - any reading error (YAML syntax too) of the file
        raise InputErrors([InputError(f"{what}: {spec.param_file}: {exc}", spec.origin)]) \
            from None
    if not set(species) & set(potential.elements):
        raise InputErrors([InputError(
            f"{what}: {spec.param_file} describes {', '.join(potential.elements)}, none of the "
            f"job's species ({', '.join(species)})", spec.origin)])
    flat = {group: {k: jnp.ravel(jnp.asarray(v, dtype=jnp.float64)) for k, v in tree.items()}
            for group, tree in params.items()}
    return potential.for_species(species), flat


def build_model(spec: AceSpec, species: tuple[str, ...], register):
    """(potential, params {"crad": {bond: flat}, "c": {block: flat}}) from the B-basis file for
    the job's species (atoms of species not in the file carry no energy), with every
    ``<fit-dof>`` group registered, one DOF per coefficient (see the module docstring)."""
    from rexfit.errors import InputError, InputErrors

    potential, params = _load(spec, species)
    params = _start(spec, potential, params)
    skipped = {name: [f[4] for f in funcs] for name, funcs in potential.functions}
    groups = {"coefficients": ("c", "c"), "crad": ("crad", "crad")}
    chosen: dict = {}
    errors = []
    for dof in spec.fit_dofs:
        key, label = groups[dof.name]
        tags = {block_tag(k): k for k in params[key]}
        if dof.tag is not None and dof.tag not in tags:
            errors.append(InputError(
                f"<fit-dof> entry <{dof.name}>: tag '{dof.tag}' is not a "
                f"{'species block' if key == 'c' else 'bond'} of {spec.param_file} (tags: "
                f"{', '.join(tags) or 'none'})", dof.origin))
            continue
        for tag, k in tags.items():
            if dof.tag in (None, tag):
                if (key, k) in chosen:
                    errors.append(InputError(f"<fit-dof> names <{dof.name}> of {tag} twice",
                                             dof.origin))
                chosen[(key, k)] = (dof, label, tag)
    if errors:
        raise InputErrors(errors)
    for (key, k), (dof, label, tag) in chosen.items():
        values = np.asarray(params[key][k], dtype=float)
        per_row = values.size // max(1, len(skipped[k])) if key == "c" else None
        for n, value in enumerate(values):
            if key == "c" and skipped[k][n // per_row]:
                continue
            weights = dict(zip(("l1", "l2"), spec.regularization[:2])) if key == "c" else {}
            register(dof, (key, k, n), float(value), name=f"{label}{n + 1}", tag=tag,
                     **{k_: w for k_, w in weights.items() if w})
    return potential, params


def penalties(spec: AceSpec, potential):
    """(("radial smoothness", fn(params)),) when ``<regularization>`` has a w-rad weight,
    else ()."""
    w0, w1, w2 = spec.regularization[2:]
    if not (w0 or w1 or w2):
        return ()
    from rexfit.potentials.ace.regularization import smoothness_penalty

    return (("radial smoothness", smoothness_penalty(potential, w0, w1, w2)),)


def _initial(spec: AceSpec, potential, params):
    """The upfit start (:class:`rexfit.potentials.ace.ladder.Start`) from the
    ``<initial-potential>`` for the target ``potential`` with its ``params``; located errors."""
    from rexfit.errors import InputError, InputErrors
    from rexfit.potentials.ace.files import read_bbasis
    from rexfit.potentials.ace.ladder import start_values

    what = f"<ace id='{spec.ident}'> <initial-potential>"
    shaped = potential.shaped(params)
    try:
        initial = read_bbasis(spec.initial_potential)
        return start_values(potential.basis,
                            {k: np.asarray(v) for k, v in shaped["crad"].items()},
                            {k: np.asarray(v) for k, v in shaped["c"].items()}, initial)
    except Exception as exc:  # noqa: BLE001 - any reading error (YAML syntax too) of the file
        raise InputErrors([InputError(f"{what}: {spec.initial_potential}: {exc}",
                                      spec.origin)]) from None


def _start(spec: AceSpec, potential, params):
    """The start values (flat): the file's; with an ``<initial-potential>`` its coefficients
    where it has them, zero for the target's other functions (upfit); with a ``<ladder>`` and
    no initial potential every function coefficient zero (the basis grows from empty)."""
    import jax.numpy as jnp

    if spec.initial_potential is not None:
        start = _initial(spec, potential, params)
        crad, c = start.crad, start.c
    elif spec.ladder is not None:
        crad, c = params["crad"], {k: np.zeros(np.shape(v)) for k, v in params["c"].items()}
    else:
        return params
    return {"crad": {k: jnp.ravel(jnp.asarray(v, dtype=jnp.float64)) for k, v in crad.items()},
            "c": {k: jnp.ravel(jnp.asarray(v, dtype=jnp.float64)) for k, v in c.items()}}


def ladder(spec: AceSpec, term, params):
    """The ``<ladder>`` of the potential (:class:`rexfit.potentials.ace.ladder.Ladder`), or
    None: the steps from the empty basis (or the initial potential's functions) to the whole
    file, with the coefficient paths each step fits."""
    if spec.ladder is None:
        return None
    from rexfit.potentials.ace.ladder import build_ladder

    blocks = [(b.name, b.functions) for b in term.basis.blocks if b.name in params["c"]]
    ndensity = {name: term.c_shape(name)[1] for name, _ in blocks}
    start = {}
    if spec.initial_potential is not None:
        start = _initial(spec, term, params).present
    lad = spec.ladder
    return build_ladder(blocks, ndensity, start, lad.step, lad.fraction, lad.order)


def build_potential(spec: AceSpec, species: tuple[str, ...]):
    """The potential alone (:func:`build_model` without the DOFs)."""
    return _load(spec, species)[0]


def xml_parameters(element, children):
    """None in the XML: the values are in the B-basis file parameters.xml names."""
    return ()


def coefficient_text(term, params, header: str) -> str:
    """The B-basis YAML of ``term`` at ``params`` (pyace and pacemaker read it), with
    ``header`` as a comment line."""
    from rexfit.potentials.ace.files import bbasis_text

    return f"# {header}\n" + bbasis_text(term.to_bbasis(None, params))


def export_files(term, params, name: str, header: str, overlays, species):
    """``<export-potential>NAME.yace`` (or NAME, NAME.yaml): NAME.yaml (the fitted B-basis
    file, which parameters.xml names), NAME.yace (for ``pair_style pace``) and NAME.pace, the
    LAMMPS commands that use it (``hybrid/overlay`` with the first overlay of the job's other
    potentials, e.g. its ZBL)."""
    from rexfit.potentials.ace.yace import yace_text
    from rexfit.potentials.lammps_include import include_text

    stem = name[:-5] if name.endswith((".yace", ".yaml")) else name
    yace = os.path.basename(stem) + ".yace"
    mapping = " ".join(sp if sp in term.elements else "NULL" for sp in species)
    return ((stem + ".yaml", coefficient_text(term, params, header)),
            (stem + ".yace", yace_text(term, params)),
            (stem + ".pace", include_text(header, PAIR_STYLE, f"{yace} {mapping}", overlays)))


def species_text(spec: AceSpec) -> str:
    """What ``rexfit validate`` says the potential acts between."""
    return f"the elements of {os.path.basename(spec.param_file or '?')}"


FAMILY = Family(element="ace", type_name="ACE", parameters=DOF_GROUPS, neighbours="full",
                build_spec=build_spec, parameter_specs=parameter_specs,
                build_potential=build_potential, xml_parameters=xml_parameters,
                exports=("export-potential",), build_model=build_model, dof_groups=True,
                coefficient_file="yaml", coefficient_element="param-file",
                coefficient_text=coefficient_text, export_files=export_files,
                species_text=species_text, penalties=penalties, ladder=ladder)
