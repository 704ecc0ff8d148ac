"""Counters the worker increments on the hot path and exposes for /metrics.

Plain attributes on a slotted object: an increment is one attribute store, no dict lookup.
Every datagram the worker receives and neither forwards nor answers is counted once under a
`dropped_<reason>` name; /metrics exports them by reason (`waitroom_media_datagrams_dropped_total`).
`stun_bad_request` and `stun_unauthorized` count failed checks, answered or not
(`stun_errors_sent` the answered ones, `dropped_stun_rate_limited` the others).
"""

from __future__ import annotations

COUNTER_NAMES = (
    "datagrams_in",
    "bytes_in",
    "rtp_in",
    "rtcp_in",
    "stun_in",
    "dtls_in",
    "forwarded",
    "forwarded_bytes",
    "rtcp_out",
    "nack_retransmits",
    "nack_misses",
    "nack_upstream",
    "nack_upstream_retries",
    "keyframe_requests",
    "keyframe_coalesced",
    "remb_sent",
    "rr_sent",
    "sr_forwarded",
    "twcc_sent",
    "simulcast_layers_bound",
    "simulcast_switches",
    "stun_responses",
    "stun_bad_request",
    "stun_unauthorized",
    "stun_errors_sent",
    "dtls_handshakes",
    "dtls_failures",
    "dtls_fingerprint_mismatch",
    "dtls_timeouts",
    "consent_expired",
    "dropped_unbound",
    "dropped_unknown_type",
    "dropped_malformed",
    "dropped_stun_no_credentials",
    "dropped_stun_rate_limited",
    "dropped_stun_unsolicited",
    "dropped_stun_indication",
    "dropped_stun_method",
    "dropped_srtp_auth",
    "dropped_srtcp_auth",
    "dropped_unknown_ssrc",
    "dropped_not_ready",
    "dropped_send_buffer_full",
    "dropped_send_error",
    "internal_errors",
    "peers_opened",
    "peers_closed",
)


class Counters:
    """Monotonic counters; names are the Prometheus metric suffixes (waitroom_media_<name>)."""

    __slots__ = COUNTER_NAMES

    datagrams_in: int
    bytes_in: int
    rtp_in: int
    rtcp_in: int
    stun_in: int
    dtls_in: int
    forwarded: int
    forwarded_bytes: int
    rtcp_out: int
    nack_retransmits: int
    nack_misses: int
    nack_upstream: int
    nack_upstream_retries: int
    keyframe_requests: int
    keyframe_coalesced: int
    remb_sent: int
    rr_sent: int
    sr_forwarded: int
    twcc_sent: int
    simulcast_layers_bound: int
    simulcast_switches: int
    stun_responses: int
    stun_bad_request: int
    stun_unauthorized: int
    stun_errors_sent: int
    dtls_handshakes: int
    dtls_failures: int
    dtls_fingerprint_mismatch: int
    dtls_timeouts: int
    consent_expired: int
    dropped_unbound: int
    dropped_unknown_type: int
    dropped_malformed: int
    dropped_stun_no_credentials: int
    dropped_stun_rate_limited: int
    dropped_stun_unsolicited: int
    dropped_stun_indication: int
    dropped_stun_method: int
    dropped_srtp_auth: int
    dropped_srtcp_auth: int
    dropped_unknown_ssrc: int
    dropped_not_ready: int
    dropped_send_buffer_full: int
    dropped_send_error: int
    internal_errors: int
    peers_opened: int
    peers_closed: int

    def __init__(self) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}
