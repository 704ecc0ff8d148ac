"""tests/storage/test_audit.py on PostgreSQL."""

from tests.storage import test_audit as source
from tests.storage.postgres.reuse import shared_from

globals().update(
    shared_from(
        source,
        skip={
            "test_even_a_raw_connection_cannot_alter_rows": "opens the SQLite file with sqlite3; tests/storage/postgres/test_postgres.py does it with psycopg",
        },
    )
)
