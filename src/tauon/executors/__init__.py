"""Running guests: one executor per handler ABI, built for a trigger by `build` (executors/builder.py)."""

from tauon.executors.builder import BuildContext, build

__all__ = ["BuildContext", "build"]
