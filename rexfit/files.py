"""Writing output files atomically (temporary file + rename), for report/ and export/ alike: an
interrupted run never leaves a half-written file behind.  A written file gets the mode a plain
``open()`` would give it (0o666 less the umask), not the 0o600 of a temporary file."""

from __future__ import annotations

import json
import os
import tempfile
import threading

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux
    ``/proc/self/status``); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new output file: 0o666 less the umask (what ``open()`` gives)."""
    return 0o666 & ~current_umask()


def replace(tmp: str, path: str) -> None:
    """Give the finished temporary file ``tmp`` the mode of a new file and rename it to
    ``path`` (atomic on one file system)."""
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp)`` on a temporary name next to ``path``, then rename it to ``path``
    with the mode of a new file (no half-written file on failure)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path),
                               dir=directory)
    os.close(fd)
    try:
        write(tmp)
        replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)


def json_text(data, indent: int = 2) -> str:
    """``data`` as JSON, objects and lists of objects indented by ``indent`` per level and
    every list of numbers (or of lists of numbers) on one line.

    The same document as ``json.dumps(data, indent=2)``, shorter and written by the C
    encoder: a dataset's per-atom arrays made the pure-Python indenting encoder the larger
    part of writing results.json."""
    encode = json.JSONEncoder(allow_nan=False, separators=(", ", ": ")).encode
    out: list[str] = []

    def emit(value, level: int) -> None:
        if isinstance(value, list) and not any(isinstance(v, dict) for v in value):
            text = encode(value)
            if "{" not in text:  # no object deeper down (or a brace in a string: indented)
                out.append(text)
                return
        elif not isinstance(value, (dict, list)):
            out.append(encode(value))
            return
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        if isinstance(value, dict):
            if not value:
                out.append("{}")
                return
            out.append("{\n")
            for k, (key, item) in enumerate(value.items()):
                out.append(f"{inner}{encode(str(key))}: ")
                emit(item, level + 1)
                out.append(",\n" if k < len(value) - 1 else "\n")
            out.append(pad + "}")
        else:
            out.append("[\n")
            for k, item in enumerate(value):
                out.append(inner)
                emit(item, level + 1)
                out.append(",\n" if k < len(value) - 1 else "\n")
            out.append(pad + "]")

    emit(data, 0)
    return "".join(out)


def write_json(path: str, data: dict) -> None:
    write_text(path, json_text(data) + "\n")
