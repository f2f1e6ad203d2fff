"""Plain shared types at the bottom of tauon's layers (no imports from the packages above)."""
