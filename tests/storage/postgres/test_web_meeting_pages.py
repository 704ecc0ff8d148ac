"""tests/web/test_meeting_pages.py on PostgreSQL (the whole server on it)."""

from tests.storage.postgres.reuse import shared_from
from tests.web import test_meeting_pages as source

globals().update(shared_from(source))
