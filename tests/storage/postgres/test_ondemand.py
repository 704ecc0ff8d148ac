"""tests/storage/test_ondemand.py on PostgreSQL."""

from tests.storage import test_ondemand as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
