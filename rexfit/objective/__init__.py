"""The atomicrex objective: weights, tolerances and residuals of fitted properties."""
