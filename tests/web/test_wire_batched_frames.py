"""``wire.js`` reads a version 2 frame holding several events as each event, in order.

Run under Node with the vendored msgpack library the pages load (``vendor/msgpack.min.js``) and a
stand-in ``WebSocket``: the server's encoding (``gateway.protocol``) of a hello reply, then one
frame of three events back to back, then a reply after them. Every handler sees its events in
the order they were written, and a request's reply is still matched by id.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from gateway import protocol

STATIC = Path(__file__).parents[2] / "web" / "static"
NODE = shutil.which("node")

HARNESS = r"""
const sent = [];
class FakeSocket {
  constructor() { this.readyState = FakeSocket.OPEN; FakeSocket.last = this; }
  send(data) { sent.push(data); }
  close() { this.readyState = FakeSocket.CLOSING; }
}
FakeSocket.CONNECTING = 0; FakeSocket.OPEN = 1; FakeSocket.CLOSING = 2; FakeSocket.CLOSED = 3;
globalThis.WebSocket = FakeSocket;
globalThis.window = { location: { protocol: "http:", host: "x" } };
globalThis.MessagePack = require(%(msgpack)s);
%(wire)s
const frames = %(frames)s.map((hex) => Buffer.from(hex, "hex"));
const results = { events: [] };
async function main() {
  const wire = window.WaitroomWire.connect({});
  const socket = FakeSocket.last;
  wire.on("queue.caller", (body) => results.events.push(["queue.caller", body.caller.id]));
  wire.on("queue.removed", (body) => results.events.push(["queue.removed", body.id]));
  socket.onopen();
  const hello = MessagePack.decode(sent[0]);
  results.offered = hello.b.versions;
  socket.onmessage({ data: frames[0] });  // the hello reply (id 1)
  await new Promise((r) => setTimeout(r, 0));
  const reply = wire.request("area.watch", {}, "area/1");  // id 2
  socket.onmessage({ data: frames[1] });  // three events in one frame
  socket.onmessage({ data: frames[2] });  // the reply to id 2
  results.reply = await reply;
  console.log(JSON.stringify(results));
  process.exit(0);
}
main();
"""


def test_a_frame_of_three_events_reaches_the_handlers_as_three_in_order() -> None:
    assert NODE, "node is needed for the page-script tests (Debian package nodejs)"
    events = [
        protocol.encode_event("queue.caller", {"area": 1, "caller": {"id": "a"}}),
        protocol.encode_event("queue.removed", {"area": 1, "id": "b"}),
        protocol.encode_event("queue.caller", {"area": 1, "caller": {"id": "c"}}),
    ]
    frames = [
        protocol.encode_reply(1, {"version": 2}),
        b"".join(events),
        protocol.encode_reply(2, {"callers": []}),
    ]
    assert len(protocol.decode_server_messages(frames[1])) == 3
    script = HARNESS % {
        "msgpack": json.dumps(str(STATIC / "vendor" / "msgpack.min.js")),
        "wire": (STATIC / "js" / "wire.js").read_text(encoding="utf-8"),
        "frames": json.dumps([f.hex() for f in frames]),
    }
    done = subprocess.run(
        [NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results == {
        "offered": [1, 2],
        "events": [["queue.caller", "a"], ["queue.removed", "b"], ["queue.caller", "c"]],
        "reply": {"callers": []},
    }
