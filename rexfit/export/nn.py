"""Writing a network's JSON model file (``<export-potential>`` and ``<model-file>`` of a
``<neural-network>`` or ``<pinn>``): the text of :func:`rexfit.potentials.nn_files.model_text`,
which :func:`~rexfit.potentials.nn_files.read_model` reads back exactly."""

from __future__ import annotations

from rexfit.files import write_text
from rexfit.potentials.nn_files import model_text


def write_model(path, model, params, header: str = "") -> None:
    """Write a :class:`~rexfit.potentials.neural_network.NeuralNetwork` or a
    :class:`~rexfit.potentials.pinn.PINN` and its params to ``path``, atomically."""
    write_text(str(path), model_text(model, params, header))
