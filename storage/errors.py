"""Typed storage errors, so callers can react to a refusal without parsing SQLite messages."""

from __future__ import annotations


class StorageError(Exception):
    """Base class for every error the storage package raises on purpose."""


class NotFoundError(StorageError):
    """The row a caller named does not exist."""


class ConflictError(StorageError):
    """The write would break a uniqueness rule (a taken username, a duplicate grant)."""


class InvalidTransitionError(StorageError):
    """A state change that the stored state does not allow (a finished caller cannot wait again)."""


class SchemaTooNewError(StorageError):
    """The database was migrated by a newer Waitroom; running older code on it could corrupt it."""


class StoreClosedError(StorageError):
    """The store was used after `aclose()`."""


class DatabaseNotEmptyError(StorageError):
    """Demo data is only ever seeded into an empty database."""


class TokenRejectedError(StorageError):
    """A room token that cannot be used; ``reason`` says why, for a clear page to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
