"""tests/web/test_pages.py on PostgreSQL (the whole server on it)."""

from tests.storage.postgres.reuse import shared_from
from tests.web import test_pages as source

globals().update(
    shared_from(
        source,
        skip={
            "test_wrong_password_is_refused_with_a_message_and_audited": "reads the audit log with sqlite3",
            "test_repeated_failures_from_one_address_get_a_clear_429": "reads the audit log with sqlite3",
            "test_sign_in_without_a_csrf_token_is_refused": "reads the audit log with sqlite3",
        },
    )
)
