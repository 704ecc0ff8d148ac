"""tests/storage/test_consult.py on PostgreSQL."""

from tests.storage import test_consult as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
