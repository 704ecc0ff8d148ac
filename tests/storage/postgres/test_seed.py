"""tests/storage/test_seed.py on PostgreSQL."""

from tests.storage import test_seed as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
