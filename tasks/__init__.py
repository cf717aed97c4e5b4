"""Prefect tasks: thin wrappers over `virnucpro` library calls, plus where they run."""
