"""The record that declares one potential family, read by the job builder, the model builder, the
dataset engine and the exports through :mod:`rexfit.potentials.registry`.

A family module (``rexfit/potentials/buckingham.py`` is the worked example) creates one
:class:`Family` and knows nothing of the layers that use it: the XML comes in as a node read
through a *reader* (duck typed: the job layer's ``FamilyReader``), the model layer registers the
parameters under their atomicrex names, the export layer writes the text the family returns.
Importing a family module must not import JAX (``rexfit validate`` reads jobs without it): JAX
is imported inside the functions that build or evaluate the potential.

The reader a ``build_spec`` receives offers (all errors are recorded with their origin, none
raised; a method returns None where the input was unusable):

- ``number(node, tag, required=False)`` → the float of a child element ``<tag>``;
- ``attribute(node, name, default=None)`` → the float of the attribute ``name`` (``default``
  if absent);
- ``integer(node, name, default=None)`` → the int of the attribute ``name``;
- ``boolean(node, name, default)`` → the bool of the attribute ``name`` (true/false/1/0);
- ``numbers(node, name, default=None)`` → the floats of a space-separated attribute (``default``:
  the text used when it is absent; [] if both are absent);
- ``value(node, what)`` → the float of ``node``'s own text;
- ``flag(node, name, default)`` → the bool of the attribute ``name`` (``default`` if absent);
- ``positive(value, what, origin)``, ``finite(value, what, origin)``;
- ``fit_dofs(node, allowed, owner)`` → {name: fit-dof entry} of the ``<fit-dof>`` child;
- ``param(name, value, origin, dof, tag=None)`` → the parameter spec (name built by
  :mod:`rexfit.job.names`, fit settings from ``dof``);
- ``species(name, origin, what)`` → True if ``name`` is a declared species (else an error);
- ``check_species(name, origin, what)``: an error unless ``name`` is None, ``*`` or declared;
- ``declared_species`` → the job's species symbols, in order;
- ``file(node)`` → the path of the file named by ``node``'s text, resolved against the job
  (None, with an error, if it does not exist);
- ``error(message, origin)``, ``warn(message, origin)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class Family:
    """One potential family.

    element: the XML element (``buckingham``).  type_name: its type in parameter paths
    (``MgO[Buckingham].A[MgO]``).  parameters: the names a ``<fit-dof>`` may list.
    neighbours: what the energy needs: ``"pairs"`` (any neighbour list, each pair once on a
    half list), ``"full"`` (a full list), ``"triplets"``.
    build_spec(reader, node, ident, species_a, species_b) → the family's typed, frozen spec, or
    None after errors (``ident`` and the species attributes already read and checked).
    parameter_specs(spec) → ((path in the potential's params tree, parameter spec), ...), in
    DOF order; the model layer names and registers them.
    build_potential(spec, species) → the potential object (``energy(params, system, nbrs)``,
    ``cutoff``); ``species``: the job's species symbols in order (LAMMPS types 1, 2, ...).
    xml_parameters(element, children) → ((element, name, tag), ...): where each parameter's
    value is written in the XML (for parameters.xml); ``children(el, tag=None)`` lists the
    child elements of ``el`` (with local name ``tag``).
    exports: the export elements it accepts (``export-potential``).
    write_lammps(spec, params, species, header) → the text of a LAMMPS input file (commands
    that ``include`` reads) for the potential at ``params``, or None if it has no writer.
    dataset_kernel() → (potential class, prepare, terms) of the analytic dataset kernel, or
    None (the dataset engine then uses autodiff); or (class, prepare, terms, options) with
    options {"full_list": the kernel reads the full neighbour list, each pair (i, j) adding to
    E_i only (default False: the half list, each pair once), "atom_major": it reads flat
    chunks with atom-major pair slots (``Chunk.slots``; its energy is then per structure
    slot of the flat chunk), "supports": potential → bool, whether the kernel covers that
    potential of the class (default: all)}.

    For families whose parameter tree is more than their DOFs (values read from a LAMMPS
    parameter file, of which ``<fit-dof>`` selects some; copies linked to a fitted value;
    coefficients and weights sized by the model):
    build_model(spec, species, register) → (potential, params tree), used by the model layer
    instead of parameter_specs and build_potential (which may then be None);
    ``register(dof, path, value)`` records the DOF of the ``<fit-dof>`` entry ``dof`` (named
    ``name[tag]`` from it by the model layer), starting at ``value``, at
    ``params[potential id][path...]``, and returns its leaf;
    ``register(dof, path, value, name=, tag=, scale=, l2=)`` names it ``name[tag]`` instead
    (the coefficients of a group: ``beta3[Mo]``), with the fit vector's unit ``scale`` and the
    L2 regularisation λ ``l2`` of that DOF.
    dof_groups: the ``<fit-dof>`` entries name groups of coefficients (``<beta/>``,
    ``<weights/>``) whose sizes only the built model knows; the spec then has ``fit_dofs``,
    which the job layer copies onto the potential's spec (``rexfit validate`` lists them as
    groups).
    parameter_file: the extension (``sw``) of the LAMMPS parameter file the family's values are
    read from (``<param-file>``) and its fitted values written to (``<id>.fitted.<ext>`` next
    to parameters.xml, which points to it, or the ``<export-potential>`` file); its spec then
    has ``param_file`` (the path read) and ``fit_dofs`` (the ``<fit-dof>`` entries), which the
    job layer copies onto the potential's spec.  pair_style: the LAMMPS ``pair_style`` that
    reads that file (named in the header of the files written).
    parameter_text(potential, params, header) → the text of that file for the model's
    ``potential`` (as :func:`build_model` made it) at ``params`` (its params tree), with the
    comment lines ``header``; raises ``ValueError`` for values LAMMPS would refuse.  The export
    layer writes it.  A spec with ``param_file`` and ``fit_dofs`` attributes has them copied
    onto the potential's spec in any case (the job's checks of its fitted parameters see them).

    For families built from the job's functions (EAM, ADP, MEAM): mapping_roles: the roles
    their ``<mapping>`` may assign (``pair-interaction``, ``electron-density``, ...); when
    not empty, the job layer reads ``<functions>`` and ``<mapping>`` (the potential spec's
    ``functions`` and ``mapping``, names from :mod:`rexfit.job.names`; a ``<mapping>`` is
    required unless a ``<param-file>`` is given) and the model layer builds the functions and
    their parameters.  build_mapped(spec, species, roles, cutoff) → the potential of such a
    potential with a ``<mapping>``: ``roles`` is {role: {species key: (params key, function)}}
    (key: the species index for ``embedding-energy``; (min, max) of the two species for the
    symmetric roles ``pair-interaction``, ``g-function``, ``u-function``, ``w-function``;
    (centre, neighbour) otherwise), ``cutoff`` the largest reach of its radial functions (Å).
    Without a ``<mapping>`` (a LAMMPS file instead) the model layer uses build_model.
    sampled_exports: ((export element, file kind), ...): exports sampled over the final
    structures after the output phase, written by the export layer's writer of that kind
    (``export/registry.py``, ``SAMPLED_WRITERS``: ``eam-table``, ``adp-table``,
    ``meam/spline``).
    species_text(spec) → what the job summary (``rexfit validate``) says the potential acts
    between, when the element's ``species-a``/``species-b`` do not say it (Buckingham:
    ``pairs Mg-O, O-O``); None: ``species A-B``.
    ladder(spec, term, params) → the potential's basis ladder or None (ACE's ``<ladder>``,
    :class:`rexfit.potentials.ace.ladder.Ladder`: ``steps``, each with the parameter paths
    in the basis after it (``active``), ``managed``: the paths it switches, and
    ``text(term, params, k, header)``, the potential file of step k); the training phase then
    fits step by step, the managed coefficients outside a step's basis held at zero.

    For families whose fitted values are written to a file of their own that parameters.xml
    names (coefficient and model files):
    coefficient_file: that file's extension (``snapcoeff``, ``json``); the fitted file is
    ``<id>.fitted.<ext>`` next to parameters.xml, or the ``<export-potential>`` file.
    coefficient_element: the element of parameters.xml that names it (``coeff-file``).
    coefficient_replaces: elements of the potential that the fitted file replaces in
    parameters.xml (ACE's inline ``<basis>``: the fitted B-basis file holds the basis).
    coefficient_text(term, params, header) → the file's text (``term`` the built potential,
    ``params`` its params tree, ``header`` one line naming the job).
    export_files(term, params, name, header, overlays, species) → ((file name, text), ...):
    the files of ``<export-potential>NAME``, the one parameters.xml names first, or None
    for just the coefficient file NAME; ``overlays``: (potential id, overlay or None) of the
    job's other potentials (see ``lammps_overlay``).
    penalties(spec, potential) → ((name, fn), ...): regularisation terms of the built
    potential that are not one per DOF (ACE's radial smoothness); the training objective adds
    ``fn(params)`` of the potential's params tree (not a sum of squares).
    lammps_overlay(spec, species) → (pair_style words, (pair_coeff words, ...)): how this
    parameter-free potential enters a LAMMPS ``pair_style hybrid/overlay`` written by another
    family's export (ZBL under a SNAP); pair_coeff words without the style name.
    """

    element: str
    type_name: str
    parameters: tuple[str, ...]
    neighbours: str
    build_spec: Callable
    parameter_specs: Callable[[object], Iterable[tuple[tuple, object]]]
    build_potential: Callable | None
    xml_parameters: Callable
    exports: tuple[str, ...] = ()
    write_lammps: Callable | None = None
    dataset_kernel: Callable | None = None
    build_model: Callable | None = None
    parameter_file: str | None = None
    pair_style: str | None = None
    parameter_text: Callable | None = None
    mapping_roles: tuple[str, ...] = ()
    build_mapped: Callable | None = None
    sampled_exports: tuple[tuple[str, str], ...] = ()
    species_text: Callable | None = None
    dof_groups: bool = False
    coefficient_file: str | None = None
    coefficient_element: str = "coeff-file"
    coefficient_replaces: tuple[str, ...] = ()
    coefficient_text: Callable | None = None
    export_files: Callable | None = None
    lammps_overlay: Callable | None = None
    penalties: Callable | None = None
    ladder: Callable | None = None
