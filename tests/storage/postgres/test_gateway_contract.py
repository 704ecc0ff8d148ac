"""tests/gateway/test_contract.py on PostgreSQL (the whole server on it)."""

from tests.gateway import test_contract as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
