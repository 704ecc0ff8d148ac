"""storage package: the only place with SQL (see docs/storage.md)."""
