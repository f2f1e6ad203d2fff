"""Plain shared types that several layers speak (addresses, Spin's per-request values, mounts).

The bottom layer of the package: it imports only the standard library and the leaf utilities, never
anything above it (the import-linter contracts in pyproject.toml check this).
"""
