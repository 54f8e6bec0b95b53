"""The analytic ACE kernel on kept parameter-free terms (rexfit.datasets.kept_terms: per pair
g_k, g′_k, V′, Y_lm, ∂Y_lm/∂d and per atom the sums G_klm, computed once per chunk) against
the same kernel computing them per evaluation: the same predictions, residuals, loss,
gradient, VJP and Jacobian to round-off (1e-12 relative), and the budget that decides."""

from __future__ import annotations

import jax
import numpy as np
import pytest

pytest.importorskip("pyace")

from rexfit.datasets import kept_terms  # noqa: E402
from rexfit.datasets.engine import DatasetObjective  # noqa: E402
from tests.potentials.test_ace_dataset_kernel import case  # noqa: E402,F401
from tests.potentials.test_ace_linear import relative  # noqa: E402
from tests.support.ace_cases import assert_engines_agree  # noqa: E402


def engines(case, monkeypatch, **options):
    """(engine keeping the terms, engine computing them per evaluation), the budget forced
    both ways."""
    ace, _, _, items = case
    monkeypatch.setattr(kept_terms, "FIXED_TERMS_BYTES", 2**40)
    kept = DatasetObjective(ace, items, n_species=3, **options)
    monkeypatch.setattr(kept_terms, "FIXED_TERMS_BYTES", 0)
    fresh = DatasetObjective(ace, items, n_species=3, **options)
    return kept, fresh


@pytest.mark.parametrize("chunk_atoms", [None, 16])
def test_kept_terms_equal_per_evaluation_terms(case, monkeypatch, chunk_atoms):
    options = {} if chunk_atoms is None else {"max_bucket_atoms": chunk_atoms}
    kept, fresh = engines(case, monkeypatch, **options)
    assert kept.kernel == fresh.kernel == "analytic"
    assert kept.fixed_bytes > 0 and kept._fixed is not None
    assert fresh.fixed_bytes == 0 and fresh._fixed is None
    params = case[1]
    assert_engines_agree(kept, fresh, params, 1e-12, relative)


def test_budget(case, monkeypatch):
    """The terms are kept exactly while the dataset's fit the budget: their bytes as
    estimated from shapes, one byte less keeps none; other kernels keep none."""
    ace, _, _, items = case
    kept = DatasetObjective(ace, items, n_species=3)
    need = kept.fixed_bytes
    assert 0 < need <= kept_terms.FIXED_TERMS_BYTES
    assert need == sum(x.nbytes for x in jax.tree_util.tree_leaves(kept._fixed))
    monkeypatch.setattr(kept_terms, "FIXED_TERMS_BYTES", need)
    assert DatasetObjective(ace, items, n_species=3).fixed_bytes == need
    monkeypatch.setattr(kept_terms, "FIXED_TERMS_BYTES", need - 1)
    assert DatasetObjective(ace, items, n_species=3)._fixed is None
    monkeypatch.setattr(kept_terms, "FIXED_TERMS_BYTES", 2**40)
    assert DatasetObjective(ace, items[:2], n_species=3, kernel="autodiff").fixed_bytes == 0
