"""The one error type of runtime config parsing."""

from __future__ import annotations


class RuntimeConfigError(Exception):
    """A problem in a runtime config file: `where` is the table and key ('key_value_store.cache.type')."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
