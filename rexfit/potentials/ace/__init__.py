"""Atomic cluster expansion (pacemaker's model, as pyace evaluates it): the B-basis YAML
files (:mod:`.files`), the coupling (:mod:`.coupling`), radial functions (:mod:`.radial`),
spherical harmonics (:mod:`.harmonics`), embeddings (:mod:`.embedding`) and the JAX potential
(:mod:`.model`).  Importing this package does not import JAX; import the submodules."""
