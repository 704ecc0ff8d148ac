"""Password hashing for staff sign-in: argon2id through argon2-cffi, off the event loop.

A hash costs tens of milliseconds of CPU and tens of MiB of memory on purpose, so every hash and
verify runs in a worker thread (``trio.to_thread``), never on the Trio loop. Verifying against a
hash made with older parameters says so (``needs_rehash``), so the caller can store a fresh hash
while it still holds the plain password: raising the cost later upgrades every account at its next
sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: At most this many hashes run at once: each takes ``memory_cost`` KiB, and a burst of sign-ins
#: must not exhaust memory or starve the two cores the whole server shares.
MAX_CONCURRENT_HASHES = 2

#: Production parameters: argon2id at OWASP's recommended configuration (Password Storage Cheat
#: Sheet: 19 MiB, two passes, one lane), about 22 ms of one core per check on the machines of
#: bench/README.md. argon2-cffi's own default (RFC 9106's low-memory profile: 64 MiB, three passes,
#: four lanes) took about 170 ms of CPU over both cores per check, so 100 staff signing in at once
#: queued for over 13 s (issue 17). One lane per check lets two checks use the two cores side by
#: side. Hashes made with other parameters are replaced at their owner's next sign-in.
TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1

#: Parameters for tests only: the same algorithm at a thousandth of the cost (8 KiB, one pass).
TEST_TIME_COST = 1
TEST_MEMORY_COST_KIB = 8


@dataclass(frozen=True)
class Verification:
    """Outcome of a verify: whether it matched and, if so, whether the stored hash is outdated."""

    ok: bool
    needs_rehash: bool = False


class Passwords:
    """Hash and verify passwords with one set of argon2id parameters.

    Construct with no hasher in production (:data:`TIME_COST`, :data:`MEMORY_COST_KIB`,
    :data:`PARALLELISM`); tests pass :meth:`fast_for_tests`.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = (
            hasher
            if hasher is not None
            else PasswordHasher(
                time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM
            )
        )
        self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_HASHES)
        # A real hash to verify against when the username is unknown, so an unknown user costs as
        # much time as a wrong password and response times do not reveal which usernames exist.
        self._decoy = self._hasher.hash("decoy password that is never anyone's")

    @classmethod
    def fast_for_tests(cls) -> Passwords:
        """Cheap parameters so a test suite can sign in hundreds of times; never for real use."""
        return cls(
            PasswordHasher(
                time_cost=TEST_TIME_COST, memory_cost=TEST_MEMORY_COST_KIB, parallelism=1
            )
        )

    def hash_sync(self, password: str) -> str:
        """Hash synchronously: for seeding and scripts that are not on the event loop."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        """Hash ``password`` in a worker thread; cancellation waits for the thread to finish."""
        return await trio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check ``password`` against ``stored_hash``; ``None`` (unknown user) costs the same time."""
        return await trio.to_thread.run_sync(
            self._verify_sync, stored_hash, password, limiter=self._limiter
        )

    def _verify_sync(self, stored_hash: str | None, password: str) -> Verification:
        target = self._decoy if stored_hash is None else stored_hash
        try:
            self._hasher.verify(target, password)
        except (VerificationError, InvalidHashError):
            return Verification(ok=False)
        if stored_hash is None:
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored_hash))
