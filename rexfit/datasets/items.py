"""What the dataset engine takes and gives per structure: the input :class:`Item` (geometry,
targets, weights, tolerances), the model's :class:`Prediction` and the :class:`Rows` labels of
the residual vector, with the row kinds :data:`ENERGY`, :data:`FORCE` and :data:`STRESS`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Row kinds of the residual vector (:attr:`Rows.kind`).
ENERGY, FORCE, STRESS = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Item:
    """One fixed-geometry structure with its targets, weights and tolerances.

    positions: (N, 3) Å.  cell: (3, 3) Å, rows are lattice vectors.  species: (N,) int,
    0-based indices into the job's atom types (default all 0).  pbc: periodicity along
    a1, a2, a3.  energy: total-energy target (eV) or None.  forces: (N, 3) eV/Å or None.
    stress: (6,) eV/Å³ Voigt (xx yy zz yz xz xy, positive tensile) or None; needs a cell of
    non-zero volume.  weight_*: w_E, w_F, w_S ≥ 0 (weight_forces may also be (N,), one
    weight per atom).  tol_energy: δ_E (eV/atom; eV when not energy_per_atom),
    tol_forces: δ_F (eV/Å), tol_stress: δ_S (eV/Å³), all > 0.  name: for messages.
    energy_per_atom: the energy residual is (E − E*)/(N δ_E) (default) or (E − E*)/δ_E.
    mean_components: the squared force and stress residuals of the structure are averaged over
    its 3N and 6 components (default, the objective above) or summed over them (FitSNAP,
    pacemaker).
    """

    positions: Any
    cell: Any
    species: Any = None
    pbc: tuple[bool, bool, bool] = (True, True, True)
    energy: float | None = None
    forces: Any = None
    stress: Any = None
    weight_energy: float = 1.0
    weight_forces: float = 1.0
    weight_stress: float = 1.0
    tol_energy: float = 1.0
    tol_forces: float = 1.0
    tol_stress: float = 1.0
    name: str = ""
    energy_per_atom: bool = True
    mean_components: bool = True


@dataclass(frozen=True, eq=False)
class Prediction:
    """Model values of one structure (host NumPy): energy eV, forces (N, 3) eV/Å,
    stress (6,) eV/Å³ Voigt (NaN for a cell of zero volume), virial (3, 3) eV, W = ∂E/∂ε."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray
    virial: np.ndarray


@dataclass(frozen=True, eq=False)
class Rows:
    """Labels of the residual rows, (M,) int arrays: structure index, kind (:data:`ENERGY`,
    :data:`FORCE`, :data:`STRESS`), atom (−1 for energy and stress rows) and component
    (x y z = 0 1 2 for forces, Voigt 0..5 for stress, 0 for energy)."""

    structure: np.ndarray
    kind: np.ndarray
    atom: np.ndarray
    component: np.ndarray

    def __len__(self) -> int:
        return len(self.structure)

