"""Fault injection for ecgscale: fuzz targets, kill -9 harnesses, concurrency and disk faults.

Each scenario is a function ``scenario(workdir, *, iterations, seed) -> FaultResult``; the tests run them with a few
iterations, ``python -m reliability.run`` runs them all with many and writes the table in docs/reliability.md.
"""
