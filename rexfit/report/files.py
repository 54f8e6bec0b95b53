"""Writing output files atomically (temporary file + rename): an interrupted run never leaves
a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile


def write_text(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
