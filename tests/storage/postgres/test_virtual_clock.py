"""tests/storage/test_virtual_clock.py on PostgreSQL."""

from tests.storage import test_virtual_clock as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
