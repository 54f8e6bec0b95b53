"""``<fit-dof>`` entries on the values of a LAMMPS three-body parameter file (Stillinger–Weber,
Tersoff, ABOP): how ``<param-file>`` and ``<fit-dof>`` are read, the job species the file
describes, each DOF's place in the params tree, and the pair values stored on two lines that
follow a fitted copy.  Imports no JAX."""

from __future__ import annotations

import re
from itertools import product
from typing import Callable

from rexfit.errors import InputError, InputErrors
from rexfit.potentials.manybody_files import triplet_tag

#: Room (Å) left in the neighbour lists when a cutoff parameter is fitted.
CUTOFF_MARGIN = 1.0

_TAG_SPLIT = re.compile(r"[A-Z][a-z]?")


def read_file_potential(reader, node, ident: str, parameters: tuple[str, ...]):
    """(the resolved ``<param-file>`` path or None, the ``<fit-dof>`` entries) of a
    parameter-file potential ``node`` (``<tersoff>``, ...), read through a family ``reader``
    (see :mod:`rexfit.potentials.family`): one file required, every entry named among
    ``parameters``, its tag the element triplet of a file line (optional with one species)."""
    element = node.tag
    pf_nodes = node.findall("param-file")
    if not pf_nodes:
        reader.error(f"<{element} id='{ident}'> needs a <param-file>", node.origin)
    files = [reader.file(p) for p in pf_nodes]
    dofs = reader.fit_dofs(node.find("fit-dof"), parameters, f"{element} '{ident}'")
    species = reader.declared_species
    for dof in dofs.values():
        if dof.tag is not None:
            parts = _TAG_SPLIT.findall(dof.tag)
            if "".join(parts) != dof.tag or len(parts) != 3:
                reader.error(f"<fit-dof> entry <{dof.name}>: tag '{dof.tag}' must name 3 "
                             f"species, e.g. SiSiSi", dof.origin)
            else:
                for sp in parts:
                    reader.check_species(sp, dof.origin, f"<fit-dof> entry <{dof.name}> tag")
        elif len(species) != 1:
            reader.error(f"<fit-dof> entry <{dof.name}> needs a tag (the species triplet, "
                         f"e.g. {''.join(list(species)[:1] * 3) or 'SiSiSi'})", dof.origin)
    return (files[0] if files else None), tuple(dofs.values())


def unlinked(potential, params):
    """(the potential, its params) with linked copies resolved: what a parameter file is
    written from (``potential`` may be a :class:`~rexfit.potentials.base.Linked`)."""
    from rexfit.potentials.base import Linked

    if isinstance(potential, Linked):
        return potential.term, potential.resolve(params)
    return potential, params


def file_elements(what: str, param_file: str, species: tuple[str, ...], in_file: set[str],
                  origin) -> tuple[str, ...]:
    """The job species a parameter file describes: all of them, or the leading ones (species
    after them do not interact with this potential).  ``what``: ``<tersoff id='..'>``."""
    n = len(species)
    while n and species[n - 1] not in in_file:
        n -= 1
    missing = [sp for sp in species[:n] if sp not in in_file]
    if missing or n == 0:
        raise InputErrors([InputError(
            f"{what}: {param_file} has no entries for species "
            f"{', '.join(missing or species)}; list the species this potential describes "
            f"first in <atom-types> (species after them do not interact through it)",
            origin)])
    return species[:n]


def register_dofs(param_file: str, fit_dofs, params: dict, elements: tuple[str, ...],
                  species: tuple[str, ...], pair_params: set[str], register: Callable,
                  canonical: Callable[[str], str] = lambda name: name,
                  check: Callable | None = None):
    """Register every ``<fit-dof>`` entry of ``fit_dofs`` on the file's ``params``
    ({tag: {name: value}}) and link the pair values stored twice.

    ``register(dof, (tag, name), value)`` records one DOF; ``canonical(name)`` maps a
    ``<fit-dof>`` name to the file's (aliases); ``check(dof, triplet)`` returns an error
    message for a DOF not allowed on that triplet, or None.  A pair parameter (in
    ``pair_params``) fitted on line ijj (i ≠ j) moves its copy on jii.  Returns (params with
    the copies set to their sources, links ((copy path, source path), ...) sorted); raises
    InputErrors naming every bad entry."""
    errors = []
    links: dict[tuple[str, str], tuple[str, str]] = {}
    fitted_at: dict[tuple[str, str], object] = {}
    for dof in fit_dofs:
        tag = dof.tag if dof.tag is not None else species[0] * 3
        name = canonical(dof.name)
        if tag not in params:
            errors.append(InputError(
                f"<fit-dof> entry <{dof.name}>: tag '{tag}' is not an element triplet of "
                f"{param_file} for this job (it describes {', '.join(elements)})",
                dof.origin))
            continue
        parts = next(key for key in product(elements, repeat=3) if triplet_tag(*key) == tag)
        message = check(dof, parts) if check is not None else None
        if message is not None:
            errors.append(InputError(message, dof.origin))
            continue
        if (tag, name) in fitted_at:
            errors.append(InputError(f"<fit-dof> names {name} of {tag} twice", dof.origin))
            continue
        fitted_at[(tag, name)] = dof
        if name in pair_params and parts[1] == parts[2] and parts[0] != parts[1]:
            links[(triplet_tag(parts[1], parts[0], parts[0]), name)] = (tag, name)
        register(dof, (tag, name), float(params[tag][name]))
    for dst, src in links.items():
        if dst in fitted_at:
            errors.append(InputError(
                f"<fit-dof> entry <{fitted_at[dst].name}>: {dst[1]} of {dst[0]} follows "
                f"{src[1]} of {src[0]} (the pair is one interaction, stored on both lines); "
                f"fit only one of them", fitted_at[dst].origin))
    if errors:
        raise InputErrors(errors)
    if links:
        # the file's two copies start out equal only if the file is symmetric: take the source
        params = {t: dict(v) for t, v in params.items()}
        for (dt, dn), (st, sn) in links.items():
            params[dt][dn] = params[st][sn]
    return params, tuple(sorted(links.items()))
