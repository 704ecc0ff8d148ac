"""Bring a storage test module's tests (and its own fixtures and helpers) into a module here, so
they run with this package's ``store`` fixture: the same test functions, on PostgreSQL."""

from __future__ import annotations

from types import ModuleType
from typing import Any


def shared_from(source: ModuleType, *, skip: dict[str, str] | None = None) -> dict[str, Any]:
    """Every public name of ``source`` (its tests, fixtures and helpers) except the tests named in
    ``skip`` (test name -> why it is about SQLite itself and has no PostgreSQL meaning)."""
    left_out = skip or {}
    unknown = set(left_out) - set(vars(source))
    if unknown:
        raise AssertionError(f"no such tests in {source.__name__}: {sorted(unknown)}")
    return {
        name: value
        for name, value in vars(source).items()
        if not name.startswith("__") and name not in left_out
    }
