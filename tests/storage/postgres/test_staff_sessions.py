"""tests/storage/test_staff_sessions.py on PostgreSQL."""

from tests.storage import test_staff_sessions as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
