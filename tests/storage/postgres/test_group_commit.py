"""tests/storage/test_group_commit.py on PostgreSQL."""

from tests.storage import test_group_commit as source
from tests.storage.postgres.reuse import shared_from

globals().update(
    shared_from(
        source,
        skip={
            "test_work_lost_with_the_transaction_is_redone": "rolls SQLite's connection back under the batch; PostgreSQL's repeat of a refused batch is tested in test_postgres.py",
            "test_an_acknowledged_batch_is_on_disk": "reads the SQLite file with sqlite3",
            "test_reads_take_no_savepoint_of_their_own": "traces SQLite's statements; PostgreSQL's batch gives every call a savepoint",
        },
    )
)
