"""The errors an operator sees.

Every error says where (file, field), what was wrong and what to do, so a log line is enough to fix it.
"""

from __future__ import annotations


class TauonError(Exception):
    """Base class: a problem with one app that tauon reports and survives."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.file and self.field:
            where = f"{self.file}: field '{self.field}': "
        elif self.file:
            where = f"{self.file}: "
        elif self.field:
            where = f"field '{self.field}': "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def with_file(self, file: str) -> TauonError:
        if self.file is None:
            self.file = file
        return self


class SpecError(TauonError):
    """An app file (JSON in the watched directory) is invalid."""


class PullError(TauonError):
    """The app's image could not be fetched from its registry or layout directory."""


class DigestMismatch(PullError):
    """A blob or manifest did not hash to the digest that named it."""


class LoadError(TauonError):
    """The pulled app is not a runnable Spin HTTP app (bad lock, bad wasm, bad routes)."""


class BindError(TauonError):
    """The app's address cannot be listened on."""

    in_use: bool = False
