"""tests/storage/test_meeting_rooms.py on PostgreSQL."""

from tests.storage import test_meeting_rooms as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
