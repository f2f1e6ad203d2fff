"""Test support: a real OCI registry (registry.py) and a `spin registry push` look-alike (spinpush.py).

tests/conftest.py puts tests/ on sys.path (pytest's rootdir conftest), so import as `support.registry`.
"""
