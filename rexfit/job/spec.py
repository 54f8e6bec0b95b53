"""JobSpec: the validated job as frozen plain-Python dataclasses.

Every object keeps the :class:`Origin` of the element it was read from, so later layers can
still point at the job file when something fails. No lxml beyond the loader, no JAX here.
Units are those of the job file (eV, Å, GPa); conversion happens in later layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from rexfit.errors import Origin

# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamSpec:
    """One scalar parameter (a potential DOF) and whether/how it is fitted."""

    name: str
    value: float
    origin: Origin
    fit: bool = False
    min: float | None = None
    max: float | None = None
    reset: bool = False
    tag: str | None = None


@dataclass(frozen=True)
class FitDofSpec:
    """One entry of ``<fit-dof>`` (used where parameters live in a file, e.g. Tersoff)."""

    name: str
    origin: Origin
    enabled: bool = True
    min: float | None = None
    max: float | None = None
    reset: bool = False
    tag: str | None = None


# ----------------------------------------------------------------------------- functions


@dataclass(frozen=True)
class UserFunctionSpec:
    """``<user-function>``: an expression of one input variable with named parameters."""

    id: str
    input_var: str
    expression: object  # rexfit.expr AST
    expression_text: str
    derivative: object | None
    derivative_text: str | None
    params: tuple[ParamSpec, ...]
    cutoff: float | None
    screening: "FunctionSpec | None"
    origin: Origin
    kind: str = "user-function"


@dataclass(frozen=True)
class SplineNodeSpec:
    x: float
    y: ParamSpec


@dataclass(frozen=True)
class SplineSpec:
    """``<spline>``: cubic spline through nodes with clamped end derivatives."""

    id: str
    cutoff: float | None
    derivative_left: ParamSpec
    derivative_right: ParamSpec
    nodes: tuple[SplineNodeSpec, ...]
    screening: "FunctionSpec | None"
    origin: Origin
    kind: str = "spline"


@dataclass(frozen=True)
class AnalyticFunctionSpec:
    """A predefined function (``<morse-A>``, ``<exp-A>``, ``<constant>``, ``<poly>`` ...)."""

    kind: str
    id: str
    params: tuple[ParamSpec, ...]
    cutoff: float | None
    screening: "FunctionSpec | None"
    origin: Origin


@dataclass(frozen=True)
class CompositeFunctionSpec:
    """``<sum>`` or ``<product>`` of other functions."""

    kind: str
    id: str
    functions: tuple["FunctionSpec", ...]
    cutoff: float | None
    screening: "FunctionSpec | None"
    origin: Origin


FunctionSpec = Union[UserFunctionSpec, SplineSpec, AnalyticFunctionSpec, CompositeFunctionSpec]


# ----------------------------------------------------------------------------- potentials


@dataclass(frozen=True)
class MappingSpec:
    """One ``<mapping>`` entry: which function plays which role for which species."""

    role: str  # pair-interaction | electron-density | embedding-energy | f-function | ...
    species_a: str
    species_b: str | None
    function: str
    origin: Origin


@dataclass(frozen=True)
class ExportSpec:
    """A LAMMPS file to write after fitting (``<export-eam-file>``, ``<export-potential>``)."""

    path: str
    origin: Origin
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PotentialSpec:
    """One potential. ``kind`` is the element name (lennard-jones, eam, tersoff, ...).

    ``params``: scalar parameters written inline; ``functions`` and ``mapping`` for
    function-based potentials; ``param_file`` and ``fit_dofs`` for file-based ones.
    ``family_spec``: for a family of :mod:`rexfit.potentials.registry`, its own typed, frozen
    spec (e.g. :class:`rexfit.potentials.buckingham.BuckinghamSpec`); ``params`` then lists
    that spec's parameters.
    """

    kind: str
    id: str
    species_a: str
    species_b: str
    origin: Origin
    params: tuple[ParamSpec, ...] = ()
    functions: tuple[FunctionSpec, ...] = ()
    mapping: tuple[MappingSpec, ...] = ()
    param_file: str | None = None
    param_files: tuple[str, ...] = ()
    fit_dofs: tuple[FitDofSpec, ...] = ()
    exports: tuple[ExportSpec, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    family_spec: object = None


# ----------------------------------------------------------------------------- structures


@dataclass(frozen=True)
class PropertySpec:
    """A property of a structure: computed always, fitted when ``fit``."""

    name: str
    origin: Origin
    fit: bool = False
    target: float | None = None
    relative_weight: float = 1.0
    tolerance: float | None = None
    residual_style: str = "squared"
    min: float | None = None
    max: float | None = None
    output: bool = True
    output_all: bool = False


@dataclass(frozen=True)
class OutputSpec:
    path: str
    format: str
    origin: Origin


@dataclass(frozen=True)
class AtomSpec:
    species: str
    position: tuple[float, float, float]
    reduced: bool
    origin: Origin


@dataclass(frozen=True)
class StructureSpec:
    """One structure: a lattice (``kind`` = element name) or a user structure."""

    kind: str
    id: str
    origin: Origin
    species: tuple[str, ...] = ()  # atom-type (or atom-type-A, atom-type-B, ...)
    lattice_parameter: float | None = None
    ca_ratio: float | None = None
    atom_distance: float | None = None
    relative_weight: float = 1.0
    fit: bool = True
    relax: frozenset[str] = frozenset()
    properties: tuple[PropertySpec, ...] = ()
    output: OutputSpec | None = None
    # user-structure sources (exactly one is set)
    poscar_file: str | None = None
    atoms_file: str | None = None
    atoms_format: str | None = None
    cell: tuple[tuple[float, float, float], ...] | None = None
    atoms: tuple[AtomSpec, ...] = ()
    pbc: tuple[bool, bool, bool] = (True, True, True)
    group: str = ""

    def property(self, name: str) -> PropertySpec | None:
        for p in self.properties:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True)
class DatasetFileSpec:
    """One ``<file>`` or ``<validation-file>`` of a ``<dataset>``."""

    path: str
    origin: Origin
    format: str | None = None
    group_from: str | None = None
    energy_shift_per_atom: float = 0.0
    validation: bool = False
    #: {quantity: key} for data under other names (``energy-key``, ``forces-key``, ``stress-key``)
    keys: tuple[tuple[str, str], ...] = ()
    #: the selection: ``index`` (ASE index syntax), ``groups`` (group names), ``select``
    #: (``KEY=PATTERN ...``); see :func:`rexfit.datasets.readers.read_dataset`
    index: str | None = None
    groups: tuple[str, ...] = ()
    select: str | None = None


@dataclass(frozen=True)
class GroupWeightSpec:
    """A ``<group-weight>`` of a ``<dataset>``: factors for the entries of one group, all
    quantities (``weight``) and each (``energy``, ``forces``, ``stress``)."""

    group: str
    origin: Origin
    weight: float = 1.0
    energy: float = 1.0
    forces: float = 1.0
    stress: float = 1.0


@dataclass(frozen=True)
class DatasetSpec:
    """A ``<dataset>``: entries read from files, fitted without relaxation.

    ``properties``: the fitted quantities (atomic-energy, atomic-forces, stress) with their
    relative weights and tolerances.  ``energy_weighting``: (scale, form, max_above_min) or None.
    ``group_weights``: the ``<group-weight>`` children.  ``weight_keys``: {quantity or "all":
    per-frame key} of per-entry weights (``weight-key``, ``energy-weight-key``, ...).
    ``component_residuals``: "mean" or "sum" over the force/stress components of an entry;
    ``energy_residual``: "per-atom" or "total".
    """

    id: str
    origin: Origin
    files: tuple[DatasetFileSpec, ...]
    properties: tuple[PropertySpec, ...]
    relative_weight: float = 1.0
    fit: bool = True
    validation_fraction: float = 0.0
    seed: int = 0
    reference_energies: tuple[tuple[str, float], ...] = ()
    energy_weighting: tuple[float, str, float | None] | None = None
    group: str = ""
    keep_extreme_volumes: bool = False
    group_weights: tuple[GroupWeightSpec, ...] = ()
    weight_keys: tuple[tuple[str, str], ...] = ()
    component_residuals: str = "mean"
    energy_residual: str = "per-atom"
    #: ``kappa="auto"``: the energy and force weights are set from the training data
    #: (pacemaker's κ = σ_E² / (σ_E² + σ_F²)) when the dataset is loaded
    kappa_auto: bool = False

    @property
    def has_validation(self) -> bool:
        """True if some entries go to the validation set."""
        return (not self.fit or self.validation_fraction > 0
                or any(f.validation for f in self.files))

    @property
    def has_training(self) -> bool:
        return self.fit and any(not f.validation for f in self.files)


@dataclass(frozen=True)
class GroupSpec:
    """A ``<group>``: structures and subgroups sharing a relative weight."""

    id: str
    origin: Origin
    relative_weight: float = 1.0
    fit: bool = True
    members: tuple["StructureSpec | GroupSpec | DatasetSpec", ...] = ()

    def structures(self) -> list[StructureSpec]:
        """All structures in this group and its subgroups, in file order (not datasets)."""
        out: list[StructureSpec] = []
        for m in self.members:
            if isinstance(m, GroupSpec):
                out.extend(m.structures())
            elif isinstance(m, StructureSpec):
                out.append(m)
        return out

    def datasets(self) -> list[DatasetSpec]:
        """All datasets in this group and its subgroups, in file order."""
        out: list[DatasetSpec] = []
        for m in self.members:
            if isinstance(m, GroupSpec):
                out.extend(m.datasets())
            elif isinstance(m, DatasetSpec):
                out.append(m)
        return out


# ----------------------------------------------------------------------------- job


@dataclass(frozen=True)
class MinimizerSpec:
    """The minimizer element inside ``<fitting>`` and its attributes (as typed values)."""

    kind: str
    options: tuple[tuple[str, object], ...]
    origin: Origin
    inner: "MinimizerSpec | None" = None  # for <multistart>


@dataclass(frozen=True)
class FittingSpec:
    enabled: bool
    output_interval: int
    minimizer: MinimizerSpec
    origin: Origin
    checkpoint_interval: int | None = None


@dataclass(frozen=True)
class ConstraintSpec:
    """``<constraint dependent-dof=...>``: one DOF computed from others by an expression."""

    id: str
    dependent_dof: str
    expression: object
    expression_text: str
    origin: Origin


@dataclass(frozen=True)
class SpeciesSpec:
    symbol: str
    mass: float
    atomic_number: int
    origin: Origin


@dataclass(frozen=True)
class JobSpec:
    """The whole job, validated."""

    path: str
    name: str
    species: tuple[SpeciesSpec, ...]
    potentials: tuple[PotentialSpec, ...]
    structures: GroupSpec
    fitting: FittingSpec | None
    constraints: tuple[ConstraintSpec, ...] = ()
    verbosity: str = "medium"
    real_precision: int | None = None
    validate_potentials: bool = False
    output_file: str | None = None
    tolerance_preset: str | None = None
    origin: Origin | None = None
    files: tuple[str, ...] = field(default=())
    #: the include-expanded job tree as loaded (rexfit.job.load.LoadedTree), for parameters.xml
    tree: object = field(default=None, compare=False, repr=False)

    def all_structures(self) -> list[StructureSpec]:
        return self.structures.structures()

    def all_datasets(self) -> list[DatasetSpec]:
        return self.structures.datasets()

    def user_functions(self) -> list[tuple[str, UserFunctionSpec]]:
        """(atomicrex label, spec) of every ``<user-function>`` of every potential, parts and
        screening functions included: :func:`rexfit.job.names.user_functions`."""
        from rexfit.job import names  # names builds on the classes of this module

        return names.user_functions(self)

    @property
    def training(self) -> list[StructureSpec]:
        return [s for s in self.all_structures() if s.fit]

    @property
    def validation(self) -> list[StructureSpec]:
        return [s for s in self.all_structures() if not s.fit]
