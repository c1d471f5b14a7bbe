"""Errors that are the user's to fix: shown as one line, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can correct (bad input, wrong URL, missing store)."""


class InputError(UserError):
    """A source file that cannot be read at all."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


class StoreNotFound(UserError):
    """A store URL that names nothing: reading must not create an empty store."""


class StoreUnavailable(UserError):
    """A store that exists but cannot be reached now (database down, failing over): retry later."""


class ReadOnlyStore(UserError):
    """A write to a snapshot or a read replica."""
