"""The job language's tables: the names a job file may use and what they mean.

Property names and their units, the default tolerances and tolerance presets, which properties
are structural DOFs, the relaxation DOFs, the function elements and the parameters of each
analytic function, and the short type names that appear in parameter paths (``Al[EAM]``,
``V[functionSum]``). The builder (:mod:`rexfit.job.build`) checks job files against them; the
objective, the run, the reports and the exports read them from here. Plain data only, except
the type names of the families on :mod:`rexfit.potentials.registry`, which their records
declare (the registry imports no JAX).
"""

from __future__ import annotations

from rexfit.potentials import registry

# ============================================================================ properties

#: Property name -> unit (as printed; also selects the default tolerance).
PROPERTIES: dict[str, str] = {
    "total-energy": "eV", "atomic-energy": "eV/atom", "total-volume": "A^3",
    "atomic-volume": "A^3/atom", "lattice-parameter": "A", "ca-ratio": "",
    "atom-distance": "A", "bulk-modulus": "GPa", "shear-modulus": "GPa", "pressure": "GPa",
    "stress": "GPa", "atomic-forces": "eV/A",
    **{f"C{i}{j}": "GPa" for i in range(1, 7) for j in range(i, 7)},
}
#: Properties that are also structural DOFs: fitting them makes the DOF relax.
DOF_PROPERTIES = {"lattice-parameter", "ca-ratio", "atom-distance"}

#: Structural DOFs a ``<relax>`` element may name, in the order they are reported.
RELAX_DOFS = ("atom-coordinates", "lattice-parameter", "ca-ratio", "atom-distance",
              "cell-shape", "cell-volume")

#: Properties a ``<dataset>`` may fit.
DATASET_PROPERTIES = ("atomic-energy", "atomic-forces", "stress")

# ============================================================================ tolerances

#: Default tolerance per unit (eV is multiplied by the number of atoms).
DEFAULT_TOLERANCE = {"eV/atom": 0.01, "eV": 0.01, "A": 0.005, "GPa": 2.0, "eV/A": 0.01}
#: ``<fitting tolerance-preset=...>``: tolerance per unit (1 for a unit not listed).
TOLERANCE_PRESETS = {
    "uniform": {},
    "balanced": {"eV": 0.2, "eV/atom": 0.01, "GPa": 2.0, "A": 0.005, "eV/A": 0.01},
    "accurate-energies": {"eV": 0.1, "eV/atom": 0.005, "GPa": 2.0, "A": 0.005, "eV/A": 0.01},
}

# ============================================================================ functions

#: Parameters of each predefined analytic function kind (all required).
ANALYTIC_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "constant": ("const",),
    "morse-A": ("D0", "r0", "alpha"),
    "morse-B": ("D0", "r0", "beta", "S", "delta"),
    "morse-C": ("A", "B", "mu", "lambda", "delta"),
    "gaussian": ("prefactor", "eta", "mu"),
    "exp-A": (),
    "exp-B": ("rc", "alpha", "exponent"),
    "exp-gaussian": ("stddev", "alpha", "exponent"),
    "XpowN-cutoff": ("h", "N"),
    "RsMinusRPowN": ("S", "rs", "N"),
}
#: Analytic kinds that are cutoff (screening) functions and so need <cutoff>.
NEEDS_CUTOFF = {"exp-A", "exp-B", "exp-gaussian", "XpowN-cutoff"}
#: Every function element (the keys of the builder's registry ``rexfit.job.build.FUNCTIONS``).
FUNCTION_ELEMENTS = frozenset({"user-function", "spline", "poly", "sum", "product",
                               *ANALYTIC_FUNCTIONS})

# ============================================================================ display names

#: Potential kind (XML element) -> its type in a parameter path: ``Al[EAM].…``.  The families
#: of the registry declare theirs in their record.
POTENTIAL_TYPE = {
    **{family.element: family.type_name for family in registry.FAMILIES},
}

#: Function kinds whose type in a parameter path differs from the XML element.
FUNCTION_TYPE = {"sum": "functionSum", "product": "functionProduct"}
