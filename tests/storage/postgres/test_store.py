"""tests/storage/test_store.py on PostgreSQL."""

from tests.storage import test_store as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
