"""The export layer: every file a run writes for its potentials.

It comes last in the flow, beside :mod:`rexfit.report`, and nothing below it imports it.

- :mod:`~rexfit.export.job_files`: which files a job's potentials produce, and writing them
  (parameters.xml with the fitted files it names; the ``<export-...>`` files)
- :mod:`~rexfit.export.registry`: potential kind / export element -> writer
- :mod:`~rexfit.export.parameters_xml`: parameters.xml (the job's ``<potentials>``, fitted)
- :mod:`~rexfit.export.eam_table`: LAMMPS eam/fs and eam/alloy tables
- :mod:`~rexfit.export.adp`: LAMMPS adp files
- :mod:`~rexfit.export.meam`: LAMMPS meam/spline files
- :mod:`~rexfit.export.parameter_files`: LAMMPS .tersoff / .sw parameter files
- :mod:`~rexfit.export.descriptor_models`: coefficient and model files of the families that
  declare one (SNAP, linear models, networks, PINN), SNAP exports
- :mod:`~rexfit.export.nn`: JSON model files of networks and PINNs (the Python API)

Files are written atomically through :mod:`rexfit.files`.
"""
