"""tests/web/test_admin_pages.py on PostgreSQL (the whole server on it)."""

from tests.storage.postgres.reuse import shared_from
from tests.web import test_admin_pages as source

globals().update(
    shared_from(
        source,
        skip={
            "test_administrators_check_the_audit_chain": "tampers with the audit log through SQLite's own connection",
        },
    )
)
