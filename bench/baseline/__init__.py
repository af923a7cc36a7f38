"""A bench-only Django app: one table and a bare DRF create, the baseline of the API benchmarks.

Installed only by `bench.settings`; production settings never see it.
"""
