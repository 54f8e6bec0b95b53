"""Neural-network model files (read here; their text made by :func:`model_text`, written by
:mod:`rexfit.export`): a fitted
:class:`~rexfit.potentials.neural_network.NeuralNetwork` or
:class:`~rexfit.potentials.pinn.PINN` (descriptor with its settings, layers, activation,
normalisation, weights; for a PINN also the BOP cutoff and base parameters) as JSON, read back
exactly (17 significant digits; every setting of the descriptor dataclass is stored).

Layout::

    {"format": "rexfit-neural-network-1", "elements": ["Si"], "hidden": [30, 30],
     "activation": "tanh", "descriptor": {"kind": "ACSF", "settings": {...}},
     "params": {"Si": {"w1": [...], "b1": [...], ..., "out": [...], "bias": x,
                       "mean": [...], "std": [...]}}}
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import jax.numpy as jnp
import numpy as np

from rexfit.descriptors import registry as descriptors
from rexfit.potentials.neural_network import NeuralNetwork
from rexfit.potentials.pinn import PINN
from rexfit.potentials.tokens import PotentialFileError, read_text

FORMAT = "rexfit-neural-network-1"


def _tuples(value):
    """JSON lists back to (nested) tuples, as the descriptor dataclasses hold them."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def descriptor_to_dict(descriptor) -> dict:
    """The model-file form of a descriptor of :mod:`rexfit.descriptors.registry`: its class
    name and every field of its dataclass."""
    kind = type(descriptor).__name__
    record = descriptors.BY_CLASS.get(kind)
    if record is None or type(descriptor) is not record.load_class():
        raise ValueError(f"no model-file form for the descriptor {kind}")
    return {"kind": kind, "settings": {f.name: getattr(descriptor, f.name)
                                       for f in dataclasses.fields(descriptor)}}


def descriptor_from_dict(data: dict):
    """The descriptor of a model file's ``descriptor`` entry."""
    kind = data.get("kind")
    if kind not in descriptors.BY_CLASS:
        raise ValueError(f"unknown descriptor kind {kind!r} (known: "
                         f"{', '.join(descriptors.BY_CLASS)})")
    cls = descriptors.BY_CLASS[kind].load_class()
    return cls(**{k: _tuples(v) for k, v in data["settings"].items()})


def model_text(model, params, header: str = "") -> str:
    """The JSON text of a model file: a :class:`NeuralNetwork` or a :class:`PINN` (with its
    BOP cutoff ``rc`` and range ``d``) and its params (17 significant digits: read back
    exactly)."""
    data = {"format": FORMAT, "comment": header, "model": type(model).__name__,
            "elements": list(model.elements), "hidden": list(model.hidden),
            "activation": model.activation, "descriptor": descriptor_to_dict(model.descriptor),
            "params": {e: {k: np.asarray(v, dtype=np.float64).tolist()
                           for k, v in params[e].items()} for e in model.elements}}
    if isinstance(model, PINN):
        data.update(rc=model.rc, d=model.d)
    return json.dumps(data, indent=1) + "\n"


_JSON_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|-?Infinity|NaN|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?')


def _first_non_finite(text: str) -> tuple[int, str]:
    """(line, token) of the first number in JSON ``text`` that is not finite (NaN, Infinity
    or too large for a float64); strings are skipped."""
    for m in _JSON_TOKEN.finditer(text):
        word = m.group()
        if word.startswith('"'):
            continue
        if word.lstrip("-") in ("NaN", "Infinity") or not math.isfinite(float(word)):
            return text.count("\n", 0, m.start()) + 1, word
    return 1, "?"


def _load_json(path) -> dict:
    """The JSON of a model file; a syntax error or a non-finite number is located."""
    text = read_text(path, "model")
    bad = []

    def number(word: str) -> float:
        value = float(word)
        if not math.isfinite(value):
            bad.append(word)
        return value

    def constant(word: str) -> float:
        bad.append(word)
        return float(word.replace("Infinity", "inf"))

    try:
        data = json.loads(text, parse_float=number, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise PotentialFileError(f"malformed model file: {exc.msg}", path, exc.lineno) from None
    if bad:
        line, word = _first_non_finite(text)
        raise PotentialFileError(f"{word!r} is not a finite number (every number in a model "
                                 "file must be finite)", path, line)
    return data


def read_model(path):
    """(model, params) of a model file; raises ValueError naming the file on bad content
    (:class:`~rexfit.potentials.tokens.PotentialFileError`, at its line, for a malformed file
    or a number that is not finite)."""
    try:
        data = _load_json(path)
        if data.get("format") != FORMAT:
            raise ValueError(f"not a rexfit neural-network file (format {data.get('format')!r})")
        common = (descriptor_from_dict(data["descriptor"]), tuple(data["elements"]),
                  tuple(data["hidden"]), data["activation"])
        if data.get("model", "NeuralNetwork") == "PINN":
            model = PINN(*common, rc=float(data["rc"]), d=float(data["d"]))
        elif data.get("model", "NeuralNetwork") == "NeuralNetwork":
            model = NeuralNetwork(*common)
        else:
            raise ValueError(f"unknown model {data.get('model')!r}")
        shapes = model.parameter_shapes()
        params = {}
        for e in model.elements:
            p = {}
            for name, shape in shapes.items():
                value = np.asarray(data["params"][e][name], dtype=np.float64)
                if value.shape != shape:
                    raise ValueError(f"{e} {name} has shape {value.shape}, the model needs "
                                     f"{shape}")
                p[name] = jnp.float64(value) if shape == () else jnp.asarray(value)
            params[e] = p
    except PotentialFileError:
        raise
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed model file ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return model, params
