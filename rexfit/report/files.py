"""The atomic-write helpers under their old import path; they live in :mod:`rexfit.files`
(below both report/ and export/).  New code imports them from there."""

from rexfit.files import atomic_write, current_umask, file_mode, replace, write_json, write_text

__all__ = ["atomic_write", "current_umask", "file_mode", "replace", "write_json", "write_text"]
