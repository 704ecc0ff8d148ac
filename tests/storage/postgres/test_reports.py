"""tests/storage/test_reports.py on PostgreSQL."""

from tests.storage import test_reports as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
