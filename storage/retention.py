"""What Waitroom forgets, and when: the SQL of the retention policy (issue 15).

A clinic must not keep patients' details longer than it needs them. Each rule here removes one
kind of personal data once it is older than the policy's days for that kind, counted from when the
data stopped being needed (a caller's finish, a message's last attempt, a session's end):

* ended callers' form details (name, date of birth, reason ...) become ``{}`` and the names of
  callers and guests in call records become "", so reports keep counts and durations;
* finished on-demand requests lose their details and case information (the intake answers), and
  staff notices (the bell, which names patients) older than the same days are deleted;
* sent or failed outbox messages lose their recipient, subject and body (the link inside);
* expired or revoked staff sessions are deleted;
* used, revoked or expired room tokens are deleted (only hashes, but nothing needs them), except
  a group participant's, which their participant row (kept for the report) refers to;
* the names and contacts of an ended group session's participants and registrations become ""
  (issue 12), so the report keeps its counts and minutes;
* audit entries lose the client's network address (counted from the entry's time).

The audit entries themselves are not touched: they record who did what and when, never clinical
detail (``storage.audit`` refuses credentials and the actions carry ids, not names), and an audit
trail that forgets would not be one. The address is the one personal datum in them (a caller's
arrival ties a patient's address to a visit); it is kept apart from the entry and out of its hash
(``storage.audit_chain``), so forgetting it leaves the chain intact. Each rule is one UPDATE or
DELETE, so a sweep is a handful of statements however much is due, and running it twice changes
nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from storage import audit
from storage.db import Store, execute
from storage.times import to_db

#: Defaults for health data: caller details kept for 30 days after the visit (long enough to
#: answer a complaint or a safeguarding question about a call; the clinical record lives in the
#: clinic's own system, never here), outbox contents for 30, ended sessions and tokens for 7.
DEFAULT_CALLER_DAYS = 30
DEFAULT_OUTBOX_DAYS = 30
DEFAULT_SESSION_DAYS = 7
#: Audit entries' client addresses: 180 days, the six months the CNIL recommends at least for
#: access logs. A breach or an abused link is often noticed weeks or months later, and the address
#: is what ties the entries to one attacker; after that it mostly says where patients called from.
DEFAULT_AUDIT_ADDRESS_DAYS = 180

#: Caller statuses after which the details are no longer needed.
FINISHED = ("left", "ended", "transferred")


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind of data is kept after it stopped being needed; 0 keeps it for ever."""

    caller_days: int = DEFAULT_CALLER_DAYS
    outbox_days: int = DEFAULT_OUTBOX_DAYS
    session_days: int = DEFAULT_SESSION_DAYS
    audit_address_days: int = DEFAULT_AUDIT_ADDRESS_DAYS

    def __post_init__(self) -> None:
        for name in ("caller_days", "outbox_days", "session_days", "audit_address_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (keep) or more days")


@dataclass(frozen=True)
class SweepResult:
    """Rows changed by one sweep, per rule (what the audit entry of the sweep records)."""

    callers_anonymised: int = 0
    participants_anonymised: int = 0
    outbox_emptied: int = 0
    sessions_deleted: int = 0
    tokens_deleted: int = 0
    ondemand_anonymised: int = 0
    notices_deleted: int = 0
    group_anonymised: int = 0
    audit_addresses_forgotten: int = 0

    @property
    def total(self) -> int:
        return (
            self.callers_anonymised
            + self.participants_anonymised
            + self.outbox_emptied
            + self.sessions_deleted
            + self.tokens_deleted
            + self.ondemand_anonymised
            + self.notices_deleted
            + self.group_anonymised
            + self.audit_addresses_forgotten
        )


def _cutoff(now: datetime, days: int) -> str:
    return to_db(now - timedelta(days=days))


def _sweep(db: Database, policy: RetentionPolicy, now: datetime) -> SweepResult:
    callers = participants = outbox = sessions = tokens = ondemand = notices = group = 0
    addresses = 0
    if policy.caller_days:
        cutoff = _cutoff(now, policy.caller_days)
        marks = ",".join("?" for _ in FINISHED)
        callers = execute(
            db,
            f"""UPDATE callers SET details = '{{}}'
                WHERE details != '{{}}' AND status IN ({marks})
                  AND COALESCE(finished_at, status_changed_at) < ?""",
            (*FINISHED, cutoff),
        ).rowcount
        participants = execute(
            db,
            """UPDATE call_participants SET display_name = ''
               WHERE display_name != '' AND kind != 'staff'
                 AND call_id IN (SELECT id FROM calls WHERE ended_at IS NOT NULL
                                                      AND ended_at < ?)""",
            (cutoff,),
        ).rowcount
        ondemand = execute(
            db,
            """UPDATE ondemand_requests SET details = '{}', case_info = '{}'
               WHERE (details != '{}' OR case_info != '{}')
                 AND state IN ('ended', 'declined', 'cancelled')
                 AND COALESCE(ended_at, claimed_at, created_at) < ?""",
            (cutoff,),
        ).rowcount
        notices = execute(db, "DELETE FROM staff_notices WHERE created_at < ?", (cutoff,)).rowcount
        ended = "SELECT id FROM group_sessions WHERE state = 'ended' AND ended_at < ?"
        group = (
            execute(
                db,
                f"""UPDATE group_participants SET name = '', contact = ''
                    WHERE (name != '' OR contact != '') AND session_id IN ({ended})""",
                (cutoff,),
            ).rowcount
            + execute(
                db,
                f"""UPDATE group_registrations SET name = '', contact = ''
                    WHERE (name != '' OR contact != '') AND session_id IN ({ended})""",
                (cutoff,),
            ).rowcount
        )
    if policy.outbox_days:
        outbox = execute(
            db,
            """UPDATE outbox SET recipient = '', subject = '', body = '', last_error = NULL
               WHERE status IN ('sent', 'failed') AND body != '' AND updated_at < ?""",
            (_cutoff(now, policy.outbox_days),),
        ).rowcount
    if policy.session_days:
        cutoff = _cutoff(now, policy.session_days)
        sessions = execute(
            db,
            """DELETE FROM web_sessions
               WHERE COALESCE(revoked_at, expires_at) < ?""",
            (cutoff,),
        ).rowcount
        # Single-use tokens once used; any token once revoked or expired. A reusable token
        # still in use (a caller's, a guest's) keeps its row until its room revokes it.
        tokens = execute(
            db,
            """DELETE FROM room_tokens
               WHERE (revoked_at < ? OR expires_at < ? OR (single_use = 1 AND used_at < ?))
                 AND id NOT IN (SELECT token_id FROM group_participants)""",
            (cutoff, cutoff, cutoff),
        ).rowcount
    if policy.audit_address_days:
        addresses = audit.forget_addresses(db, now - timedelta(days=policy.audit_address_days))
    return SweepResult(
        callers, participants, outbox, sessions, tokens, ondemand, notices, group, addresses
    )


async def sweep(store: Store, policy: RetentionPolicy, now: datetime) -> SweepResult:
    """Apply every rule of ``policy`` as of ``now``, in one transaction."""
    return await store.run(_sweep, policy, now)
