"""The Python API (SPEC §2a) and what starts quickly (issue 20, parts 1, 5 and 6)."""
