"""tests/storage/test_orgs_areas.py on PostgreSQL."""

from tests.storage import test_orgs_areas as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
