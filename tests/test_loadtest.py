"""``waitroom loadtest`` against a real server in-process: its figures agree with ``/metrics``."""

from __future__ import annotations

import argparse

import pytest
import trio

from media.dtls import Certificate
from media.worker import Worker, WorkerConfig
from tests.conftest import DEMO_PASSWORD, RunningServer
from tests.httpclient import HttpClient
from waitroom.loadtest import main as loadtest
from waitroom.loadtest import report, scenario
from waitroom.loadtest.http import parse_prometheus
from waitroom.loadtest.mediapeer import MediaPeer
from waitroom.loadtest.peersdp import VIDEO_CLOCK, MediaPeerError
from waitroom.loadtest.tally import ReceiveStream

CALLERS = 4
FORWARDED = "waitroom_rtp_packets_forwarded_total"
SETTLE_TRIES = 6
DRAIN_SECONDS = 20.0
SETTLE_INTERVAL = 1.1


async def test_small_scenario_matches_the_servers_metrics(waitroom_server: RunningServer) -> None:
    spec = scenario.Scenario(
        base_url=waitroom_server.base_url,
        username=waitroom_server.demo.provider_username,
        password=DEMO_PASSWORD,
        callers=CALLERS,
        rate=4.0,
        duration=2.0,
        providers=1,
        call_seconds=0.2,
        # The run ends as soon as every call is over; this only bounds a slow, loaded machine.
        drain=DRAIN_SECONDS,
    )
    recorder = await scenario.run(spec)
    runs = [recorder.to_json()]
    summary = report.summarise(runs, {"callers": CALLERS})
    assert summary["errors"] == {}
    assert summary["arrivals"] == CALLERS
    assert summary["dashboard"]["count"] == CALLERS
    assert summary["calls_started"] == summary["calls_ended"] == CALLERS
    # Each caller, the dashboard and one provider connection per call: all seen by the server.
    assert summary["client_ws_connections"] == 2 * CALLERS + 1
    assert summary["server"]["ws_connections_accepted"] == summary["client_ws_connections"]
    # The report's last sample is the server's own count: nobody else connected to this server.
    final = parse_prometheus((await HttpClient(waitroom_server.base_url).get("/metrics")).text)
    assert final["waitroom_ws_connections_total"] == summary["client_ws_connections"]
    assert summary["server"]["messages_handled"]["area"] >= CALLERS
    assert summary["server"]["cpu_seconds"] is not None and summary["server"]["cpu_seconds"] > 0
    assert "Load 0-0" not in report.table(summary)  # the table is figures, not caller data


def test_a_remote_target_is_refused_without_allow_remote() -> None:
    parser = argparse.ArgumentParser()
    loadtest.add_arguments(parser)
    args = parser.parse_args(["http://192.0.2.1:8080", "--quick"])
    assert loadtest.run(args) == 2
    assert loadtest.is_loopback("http://127.0.0.1:8080")
    assert not loadtest.is_loopback("http://192.0.2.1:8080")


async def test_media_scenario_forwards_with_low_loss_and_matches_metrics(
    waitroom_server: RunningServer,
) -> None:
    """``--media``: two callers, one provider; both sides of each call publish Opus and VP8
    through the SFU for a couple of seconds. Nearly everything forwarded arrives, in order, and
    the report's packet counts agree with the server's own RTP counters."""
    before = parse_prometheus((await HttpClient(waitroom_server.base_url).get("/metrics")).text)
    spec = scenario.Scenario(
        base_url=waitroom_server.base_url,
        username=waitroom_server.demo.provider_username,
        password=DEMO_PASSWORD,
        callers=2,
        rate=4.0,
        duration=0.6,
        providers=1,
        call_seconds=2.0,
        drain=8.0,
        media=True,
    )
    recorder = await scenario.run(spec)
    summary = report.summarise([recorder.to_json()], {"callers": 2, "media": True})
    table = report.table(summary)
    assert summary["errors"] == {}, table
    assert summary["calls_started"] == summary["calls_ended"] == 2, table
    media = summary["media"]
    assert media is not None
    assert media["peers_connected"] == 4, table  # the caller and the provider of each call
    flows = media["flows"]
    for direction in ("caller->provider", "provider->caller"):
        audio, video = flows[f"{direction}/audio"], flows[f"{direction}/video"]
        # Two calls of ~2 s at 50 Opus packets/s and ~2 VP8 packets x 30 frames/s per side.
        assert audio["received"] > 100 and video["received"] > 100
        assert audio["loss_percent"] < 1.0 and video["loss_percent"] < 1.0
        assert audio["jitter_p95_ms"] is not None
    assert media["srtp_errors"] == 0
    # What the server says it forwarded is what the peers received (nothing else ran here).
    # Media worker processes report their counters once a second: read until they settle.
    after = await _settled_metrics(waitroom_server.base_url)
    forwarded = after["waitroom_rtp_packets_forwarded_total"] - before.get(
        "waitroom_rtp_packets_forwarded_total", 0.0
    )
    assert abs(media["server"]["forwarded"] - forwarded) <= 0.01 * forwarded
    assert 0.99 * forwarded <= media["received"] <= forwarded
    assert forwarded <= after["waitroom_media_rtp_in_total"] <= media["sent"]
    assert "media packets" in report.table(summary)


def test_the_report_shows_the_load_testers_own_cpu_beside_the_servers() -> None:
    summary = report.summarise([scenario.Recorder().to_json()], {"callers": 0})
    summary["client"] = report.client_cpu(3.0, 10.0, 2)
    assert summary["client"] == {
        "processes": 2,
        "cpu_seconds": 3.0,
        "cpu_percent": 30.0,
        "busiest_process_percent": None,  # no per-process figures given
        "near_limit": False,
    }
    assert "load tester CPU" in report.table(summary)
    assert "30.0% of one core, 2 processes" in report.table(summary)
    # A run that measured no time reports no rate rather than dividing by zero.
    assert report.client_cpu(0.0, 0.0, 1)["cpu_percent"] is None


async def _settled_metrics(base_url: str) -> dict[str, float]:
    """/metrics once the RTP forwarded counter stops moving (bounded: a few seconds)."""
    client = HttpClient(base_url)
    last = parse_prometheus((await client.get("/metrics")).text)
    for _ in range(SETTLE_TRIES):
        await trio.sleep(SETTLE_INTERVAL)
        now = parse_prometheus((await client.get("/metrics")).text)
        if now.get(FORWARDED) == last.get(FORWARDED):
            return now
        last = now
    return last


def test_receive_stream_counts_loss_across_the_sequence_wrap_and_jitter() -> None:
    """Loss is expected minus received over extended sequence numbers (RFC 3550 A.1); jitter
    is zero at a constant transit time and grows when one packet comes late (A.8)."""
    stream = ReceiveStream("caller->provider/video", VIDEO_CLOCK)
    frame = VIDEO_CLOCK // 30
    for index, seq in enumerate([65533, 65534, 65535, 1, 2]):  # 0 never arrives
        stream.on_packet(seq, index * frame, 100.0 + index / 30)
    assert (stream.expected, stream.received) == (6, 5)
    assert stream.jitter_ms == pytest.approx(0.0, abs=1e-6)
    stream.on_packet(3, 5 * frame, 100.0 + 5 / 30 + 0.016)  # 16 ms late
    assert stream.jitter_ms == pytest.approx(1.0, rel=0.01)  # 16 ms / 16
    stream.on_packet(65534, 1 * frame, 100.3)  # a stale duplicate does not move the highest
    assert stream.expected == 7


async def test_media_peer_refuses_a_server_whose_certificate_is_not_the_answers() -> None:
    """The peer checks the server's DTLS certificate against the answer's fingerprint, as a
    browser does: another certificate is refused and no SRTP keys are derived."""
    worker = Worker(WorkerConfig(announced_address="127.0.0.1", bind_address="127.0.0.1"))
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        peer = MediaPeer("caller")
        try:
            peer.bind()
            answer = peer.accept(await worker.open_peer("call", "caller", peer.offer()))
            answer.fingerprint = Certificate.generate().fingerprint
            with pytest.raises(MediaPeerError) as refused:
                await peer.establish()
            assert refused.value.kind == "dtls_refused"
            assert peer.srtp is None
        finally:
            peer.close()
            nursery.cancel_scope.cancel()
