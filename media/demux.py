"""Which protocol a datagram on the shared port carries, by its first bytes (RFC 7983, RFC 5761).

One UDP port carries STUN, DTLS, RTP and RTCP. The ranges live here once, for the worker's
receive path and for the load tester's peers; `classify` is the readable form, and the worker's
per-packet dispatch compares against the same constants inline (a call per packet costs more).
Sans-IO, standard library only.
"""

from __future__ import annotations

import enum

# RFC 7983 section 7: the first byte of a datagram.
STUN_FIRST_BYTE_MIN = 0
STUN_FIRST_BYTE_MAX = 3
DTLS_FIRST_BYTE_MIN = 20
DTLS_FIRST_BYTE_MAX = 63
RTP_FIRST_BYTE_MIN = 128
RTP_FIRST_BYTE_MAX = 191
# RFC 5761 section 4: RTCP packet types 192..223 in the second byte share the RTP range; RTP
# payload types avoid them even with the marker bit set.
RTCP_PT_MIN = 192
RTCP_PT_MAX = 223

STUN_FIRST_BYTES = range(STUN_FIRST_BYTE_MIN, STUN_FIRST_BYTE_MAX + 1)
DTLS_FIRST_BYTES = range(DTLS_FIRST_BYTE_MIN, DTLS_FIRST_BYTE_MAX + 1)
RTP_FIRST_BYTES = range(RTP_FIRST_BYTE_MIN, RTP_FIRST_BYTE_MAX + 1)
RTCP_PACKET_TYPES = range(RTCP_PT_MIN, RTCP_PT_MAX + 1)


class Kind(enum.Enum):
    STUN = "stun"
    DTLS = "dtls"
    RTP = "rtp"
    RTCP = "rtcp"
    UNKNOWN = "unknown"


def is_rtcp(data: bytes | bytearray) -> bool:
    """True if a datagram with an RTP/RTCP first byte carries RTCP."""
    return len(data) > 1 and RTCP_PT_MIN <= data[1] <= RTCP_PT_MAX


def classify(data: bytes | bytearray) -> Kind:
    """The protocol of one datagram; empty or out-of-range datagrams are UNKNOWN."""
    if not data:
        return Kind.UNKNOWN
    b0 = data[0]
    if RTP_FIRST_BYTE_MIN <= b0 <= RTP_FIRST_BYTE_MAX:
        return Kind.RTCP if is_rtcp(data) else Kind.RTP
    if b0 <= STUN_FIRST_BYTE_MAX:
        return Kind.STUN
    if DTLS_FIRST_BYTE_MIN <= b0 <= DTLS_FIRST_BYTE_MAX:
        return Kind.DTLS
    return Kind.UNKNOWN
