"""The wire client never writes to a websocket that is closing or closed.

A socket the server is closing (a breakout room's, when everyone goes back to the main call)
stays "ready" for the page until its ``onclose`` runs; ``WebSocket.send`` in that gap does not
throw, Chrome logs "WebSocket is already in CLOSING or CLOSED state." and drops the frame, and the
page's request waits ten seconds for a reply that cannot come. ``wire.js`` refuses such a send at
once as ``offline``. Checked under Node with a stand-in ``WebSocket`` whose state the test sets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

WIRE_JS = Path(__file__).parents[2] / "web" / "static" / "js" / "wire.js"
NODE = shutil.which("node")

HARNESS = r"""
const sent = [];
class FakeSocket {
  constructor() { this.readyState = FakeSocket.CONNECTING; FakeSocket.last = this; }
  send(data) { sent.push(data); }
  close() { this.readyState = FakeSocket.CLOSING; }
}
FakeSocket.CONNECTING = 0; FakeSocket.OPEN = 1; FakeSocket.CLOSING = 2; FakeSocket.CLOSED = 3;
globalThis.WebSocket = FakeSocket;
globalThis.window = { location: { protocol: "http:", host: "x" } };
globalThis.MessagePack = {
  encode: (frame) => JSON.stringify(frame),
  decodeMulti: (bytes) => [JSON.parse(new TextDecoder().decode(bytes))],
};
%(wire)s
const results = {};
async function main() {
  const wire = window.WaitroomWire.connect({});
  const socket = FakeSocket.last;
  socket.readyState = FakeSocket.OPEN;
  socket.onopen();  // hello goes out
  const hello = JSON.parse(sent[0]);
  socket.onmessage({ data: new TextEncoder().encode(JSON.stringify({ t: "reply", id: hello.id, b: {} })) });
  await new Promise((r) => setTimeout(r, 0));
  results.readyAfterHello = wire.ready;
  socket.readyState = FakeSocket.CLOSING;  // the server started closing; onclose not yet run
  const before = sent.length;
  try {
    await wire.request("room.enter", {}, "room/a");
    results.refused = null;
  } catch (error) {
    results.refused = error.code;
  }
  results.sentWhileClosing = sent.length - before;
  socket.readyState = FakeSocket.OPEN;
  wire.close();  // the page closes it: nothing may be sent after
  try {
    await wire.request("ping", {});
    results.afterClose = null;
  } catch (error) {
    results.afterClose = error.code;
  }
  results.sentAfterClose = sent.length - before;
  console.log(JSON.stringify(results));
  process.exit(0);
}
main();
"""


def test_requests_on_a_closing_or_closed_socket_are_refused_without_sending() -> None:
    assert NODE, "node is needed for the page-script tests (Debian package nodejs)"
    script = HARNESS % {"wire": WIRE_JS.read_text(encoding="utf-8")}
    done = subprocess.run(
        [NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results == {
        "readyAfterHello": True,
        "refused": "offline",
        "sentWhileClosing": 0,
        "afterClose": "offline",
        "sentAfterClose": 0,
    }
