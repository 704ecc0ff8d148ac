"""Each receive line of the answer is a stream of its own (issue 11).

Slot n's audio line and video line may carry two different people in a large call (last-N video,
loudest-k audio). Chrome lip-syncs the audio and video tracks of one msid stream, so a shared
stream id would tie one person's sound to another's picture. The answer gives every slot line its
own stream id, track id and CNAME; the page attributes tracks by transceiver, not by stream.
"""

from __future__ import annotations

import re
from itertools import count

from media.sdp import LocalParameters, build_answer, parse_offer, plan_offer
from waitroom.loadtest.peersdp import offer_sdp

FINGERPRINT = ":".join(["AB"] * 32)


def answer_for(video_slots: int, audio_slots: int) -> str:
    offer = parse_offer(
        offer_sdp(
            "ufrag",
            "pwd-pwd-pwd-pwd-pwd-pwd",
            FINGERPRINT,
            1111,
            2222,
            video_slots,
            audio_slots=audio_slots,
            extensions=True,
        )
    )
    ssrcs = count(5000)
    plan = plan_offer(offer, lambda: next(ssrcs))
    local = LocalParameters("u", "p" * 22, FINGERPRINT, "127.0.0.1", 40000, cname="waitroom-u")
    return build_answer(offer, plan, local)


def test_every_slot_line_has_a_stream_track_and_cname_of_its_own() -> None:
    answer = answer_for(9, 5)
    sections = answer.split("\r\nm=")[1:] if "\r\n" in answer else answer.split("\nm=")[1:]
    msids, cnames = [], []
    for section in sections:
        if "a=sendonly" not in section:
            continue  # the publish lines (recvonly here) carry no msid of ours
        found = re.findall(r"^a=msid:(\S+) (\S+)", section, re.M)
        assert len(found) == 1, section
        msids.append(found[0])
        cnames += re.findall(r"^a=ssrc:\d+ cname:(\S+)", section, re.M)
    assert len(msids) == 9 + 5 == len(cnames)
    streams = [stream for stream, _ in msids]
    assert len(set(streams)) == len(streams), streams  # no two lines share a stream
    assert len({track for _, track in msids}) == len(msids)
    assert len(set(cnames)) == len(cnames)
    assert "slot0-audio" in streams and "slot0-video" in streams
