"""tests/storage/test_invites_atomic.py on PostgreSQL."""

from tests.storage import test_invites_atomic as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
