"""tests/storage/test_migrations.py on PostgreSQL."""

from tests.storage import test_migrations as source
from tests.storage.postgres.reuse import shared_from

globals().update(
    shared_from(
        source,
        skip={
            "test_pragmas": "SQLite's pragmas",
            "test_failed_migration_leaves_previous_version": "expects SQLite's error class; test_postgres.py has it with PostgreSQL's",
        },
    )
)
