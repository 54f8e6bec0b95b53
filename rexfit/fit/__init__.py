"""The training phase: minimizers over the scaled fit vector, progress, history."""

from rexfit.fit.driver import FitResult, run_fit

__all__ = ["FitResult", "run_fit"]
