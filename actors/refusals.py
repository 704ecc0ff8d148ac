"""Every refusal code a client or a page can receive, as named constants.

A refusal is an expected "no": the actor keeps running and the asker gets the code unchanged
(``error.code`` on the websocket, a page's message on the web). Codes are stable strings that clients
may branch on; each one is explained in ``docs/protocol.md`` (section "Refusal codes"). Use these
names, never the literal strings, so a new code is added here and documented in one go.
"""

from __future__ import annotations

# -- the gateway: the frame itself is wrong ----------------------------------------------------------
MALFORMED = "malformed"  #: not a msgpack map of the envelope's shape
BINARY_REQUIRED = "binary_required"  #: a text frame; the protocol is binary msgpack
FRAME_TOO_LARGE = "frame_too_large"  #: over the frame size limit
HELLO_REQUIRED = "hello_required"  #: anything but hello before hello
UNKNOWN_TYPE = "unknown_type"  #: no such message type (or the target does not handle it)
MISSING_FIELD = "missing_field"  #: a required body field is absent
BAD_FIELD = "bad_field"  #: a body field has the wrong type or an unusable value
BAD_ADDRESS = "bad_address"  #: ``to`` is not an address of the kind the type needs
RATE_LIMITED = "rate_limited"  #: over the connection's message rate: slow down
UNSUPPORTED_VERSION = "unsupported_version"  #: hello lists no protocol version the server speaks
ALREADY_AUTHENTICATED = "already_authenticated"  #: a second hello on the same connection
BUSY = "busy"  #: the addressed actor's mailbox is full: try again shortly
TIMEOUT = "timeout"  #: the addressed actor did not answer in time
INTERNAL = "internal"  #: the request crashed its actor (logged; the actor restarts)
UNAVAILABLE = "unavailable"  #: a service the request needs (sign-in, a sender) is not there

# -- who is asking ---------------------------------------------------------------------------------
UNAUTHENTICATED = "unauthenticated"  #: no valid session or token
FORBIDDEN = "forbidden"  #: authenticated, but this principal may not do this
BAD_CSRF = "bad_csrf"  #: a form without its CSRF token
BAD_CREDENTIALS = "bad_credentials"  #: wrong username or password (never says which)
TOO_MANY_ATTEMPTS = "too_many_attempts"  #: too many failed sign-ins from this address
INVALID_TOKEN = "invalid_token"  #: a room, guest or invite link that is unknown, used or revoked

# -- waiting areas and callers ---------------------------------------------------------------------
CLOSED = "closed"  #: the area is outside its opening hours (or the room has ended)
INACTIVE = "inactive"  #: the area has been switched off by an administrator
NOT_FOUND = "not_found"  #: no such area, caller, user or message in this organisation
IN_CALL = "in_call"  #: the caller is already in a call
ALREADY_JOINED = "already_joined"  #: another provider joined this caller first
BAD_TARGET = "bad_target"  #: a transfer to an area that cannot take the caller
OTHER_UNIT = "other_unit"  #: a transfer to an area of another organisational unit
FULL = "full"  #: the area's queue is at its limit
TOO_MANY_ARRIVALS = "too_many_arrivals"  #: arrivals from this address (or to this area) flood it

# -- calls -----------------------------------------------------------------------------------------
NOT_IN_ROOM = "not_in_room"  #: a call message before ``room.enter``
NOT_IN_CALL = "not_in_call"  #: the caller is not in a call
NOT_JOINED = "not_joined"  #: staff must join the caller from the list first
CALL_FULL = "call_full"  #: the call holds its most people (invitations included)
JOIN_CONFIRM_NEEDED = "join_confirm_needed"  #: staff other than the joined provider: confirm
NO_CALLER = "no_caller"  #: the call has no caller to act on
NO_MEDIA = "no_media"  #: the server runs without a media plane
BAD_SDP = "bad_sdp"  #: the offer could not be answered
ENDED = "ended"  #: the call has ended
NO_HOLD = "no_hold"  #: this kind of call has no hold (meeting rooms, user rooms)

# -- on-demand (issue 14) --------------------------------------------------------------------------
ALREADY_CLAIMED = "already_claimed"  #: someone else has this request (the detail names who)
NOT_ON_CALL = "not_on_call"  #: a provider not on call (watching, claiming, or assigned to)

# -- Consult Now links (issue 13) -------------------------------------------------------------------
LINK_EXPIRED = "link_expired"  #: the Consult Now link's time ran out before it was opened
LINK_USED = "link_used"  #: the Consult Now link has been opened already (it works once)
LINK_CANCELLED = "link_cancelled"  #: the provider cancelled the Consult Now link
EXTENSION_LIMIT = "extension_limit"  #: the link has been extended as often as allowed

# -- group consultations (issue 12) ------------------------------------------------------------------
GROUP_FULL = "group_full"  #: admitting them would put more participants in than the session holds
GROUP_LOCKED = "group_locked"  #: the moderator locked the session: nobody new gets in
NOT_MODERATOR = "not_moderator"  #: only the session's moderators (or the unit's admins) do this
PRIVATE_CHAT_OFF = "private_chat_off"  #: this session has private chat between participants off
NOT_ADMITTED = "not_admitted"  #: a participant still in the group waiting area
BREAKOUT_RUNNING = "breakout_running"  #: breakout rooms are open: not while they run
BREAKOUT_NOT_OPEN = "breakout_not_open"  #: no breakout rooms are open (or they are closing)

# -- set-up and forms ------------------------------------------------------------------------------
INVALID = "invalid"  #: a form value failed validation (the detail says which)

__all__ = [name for name in dir() if name.isupper()]
