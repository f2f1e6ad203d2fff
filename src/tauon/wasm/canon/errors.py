"""The canonical ABI's errors.

`CanonTrap` is the only exception lifting guest data may raise: the guest broke a rule of the ABI (a
pointer outside memory, a misaligned list, invalid UTF-8, a bad handle index, ...) or the host handed
a value that does not fit the declared type. The caller turns it into a trap of the guest's call.
`CanonUnsupported` is raised when compiling converters for a type this layer does not handle yet.
"""

from __future__ import annotations


class CanonTrap(Exception):
    """A canonical ABI rule was broken; the message says which, where and what was found."""

    def within(self, where: str) -> CanonTrap:
        """This trap with `where` (a field, an element, a parameter) prefixed to its message; composite
        converters add their step on the way out so the message names the path to the bad value."""
        return type(self)(f"{where}: {self}")


class CanonUnsupported(Exception):
    """A type the canonical ABI layer cannot convert yet (streams, futures, error-context)."""


def trap(message: str) -> CanonTrap:
    """A CanonTrap to raise (`raise trap(...)`), so call sites read as what they check."""
    return CanonTrap(message)
