"""Cohort simulation: synthetic clients through the real workflow, decider and event store.

`carepath simulate` (see `simulation.cli`) runs a cohort (`simulation.cohort`) on the
time-skipping test server with an embedded PostgreSQL (`simulation.stack`), drives each
client's episodes as staff would through the workflow client facade
(`simulation.runner`), and reports staff load, Temporal figures and the quality measures
(`simulation.report`); `--compare` runs the same clients under two programs
(`simulation.compare`). docs/simulation.md describes the model.
"""
