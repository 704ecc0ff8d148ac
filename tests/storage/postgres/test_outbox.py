"""tests/storage/test_outbox.py on PostgreSQL."""

from tests.storage import test_outbox as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
