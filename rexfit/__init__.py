"""rexfit: fit interatomic potentials from one XML job file, with exact JAX gradients."""

__version__ = "0.1.0"
