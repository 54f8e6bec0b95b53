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


def write_json(path: str, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
