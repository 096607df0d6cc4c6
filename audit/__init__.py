"""Auditing an episode's record: replay as of a moment, verify, check determinism, export.

Pure logic (selecting events as of a moment, comparing states, building exports and the
FHIR bundle) lives apart from the I/O that fetches streams and workflow histories, so
the CLI, the API and the tests share one implementation.
"""
