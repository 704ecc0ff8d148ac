"""tests/gateway/test_ondemand_notices.py on PostgreSQL (the whole server on it)."""

from tests.gateway import test_ondemand_notices as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
