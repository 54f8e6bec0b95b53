"""Writing a network's JSON model file (``<export-potential>`` and ``<model-file>`` of a
``<neural-network>`` or ``<pinn>``): the layout of :mod:`rexfit.potentials.nn_files`, which
reads it back exactly (17 significant digits)."""

from __future__ import annotations

import json

import numpy as np

from rexfit.files import write_text
from rexfit.potentials.nn_files import FORMAT, descriptor_to_dict
from rexfit.potentials.pinn import PINN


def write_model(path, model, params, header: str = "") -> None:
    """Write a :class:`~rexfit.potentials.neural_network.NeuralNetwork` or a
    :class:`~rexfit.potentials.pinn.PINN` (with its BOP cutoff ``rc`` and range ``d``) and its
    params, atomically."""
    data = {"format": FORMAT, "comment": header, "model": type(model).__name__,
            "elements": list(model.elements), "hidden": list(model.hidden),
            "activation": model.activation, "descriptor": descriptor_to_dict(model.descriptor),
            "params": {e: {k: np.asarray(v, dtype=np.float64).tolist()
                           for k, v in params[e].items()} for e in model.elements}}
    if isinstance(model, PINN):
        data.update(rc=model.rc, d=model.d)
    write_text(str(path), json.dumps(data, indent=1) + "\n")
