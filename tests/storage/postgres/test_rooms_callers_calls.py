"""tests/storage/test_rooms_callers_calls.py on PostgreSQL."""

from tests.storage import test_rooms_callers_calls as source
from tests.storage.postgres.reuse import shared_from

globals().update(
    shared_from(
        source,
        skip={
            "test_raw_tokens_never_reach_the_database": "scans the SQLite file's bytes",
        },
    )
)
