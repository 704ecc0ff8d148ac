"""tests/gateway/test_entry_rules.py on PostgreSQL (the whole server on it)."""

from tests.gateway import test_entry_rules as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
