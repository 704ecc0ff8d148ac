"""tests/storage/test_audit_addresses.py on PostgreSQL: migration 10 on a log of the previous
code, forgetting addresses, and tampering, with psycopg."""

from tests.storage import test_audit_addresses as source
from tests.storage.postgres.reuse import shared_from

globals().update(shared_from(source))
