"""Readers of dataset formats that ``ase.io`` does not read, one module per format.

Each module has ``read(path, ...) -> list[Frame]`` (:class:`~.record.Frame`: positions in Å,
cell rows in Å, energy in eV, forces in eV/Å, stress in eV/Å³ Voigt xx yy zz yz xz xy with
ASE's sign, tensile positive) and converts its units and signs itself;
:func:`rexfit.datasets.readers.read_dataset` checks, selects and finishes the frames.

``pacemaker``  pacemaker's gzip-compressed pickled pandas DataFrame (``*.pckl.gzip``).
``fitsnap``    FitSNAP JSON (``{"Dataset": {"Data": [...], "StressStyle": ...}}``).
``mlearn``     pymatgen Structure dicts with outputs, as the mlearn benchmark data.
"""
