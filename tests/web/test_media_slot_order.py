"""media.js applies a slot map only if it is newer than the one it has (the server's ``seq``).

The answer to a page's offer and the ``media.slots`` pushes reach the page by different paths
(a reply, the connection's event queue) and may swap places; a group page once applied an older
push over the answer's newer map, so two people it was receiving (their packets decoded) had no
picture in their tiles for the rest of the breakout. Checked under Node: a ``MediaCall`` with
stand-in slots, maps given in the wrong order, and who the page is told it receives.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

MEDIA_JS = Path(__file__).parents[2] / "web" / "static" / "js" / "media.js"
NODE = shutil.which("node")

HARNESS = r"""
globalThis.MediaStream = class { constructor(tracks) { this.tracks = tracks || []; } };
const { MediaCall } = await import(process.argv[2]);
const told = [];
function slot(index) {
  return {
    index, stream: new MediaStream(), peerId: null, audioPeer: null,
    tracks: { audio: { kind: "audio" }, video: null }, receivers: { audio: null, video: null },
    awaiting: null, mids: { audio: String(index), video: null }, element: null, live: true,
  };
}
const pc = { connectionState: "connected" };  // joinMedia sets peerStreams too
const call = new MediaCall(pc, new MediaStream(), [slot(0), slot(1)], {
  onRemote: ({ peerId }) => told.push("+" + peerId),
  onRemoteGone: ({ peerId }) => told.push("-" + peerId),
});
call.peerStreams = new Map();
call.setSlots({ 0: "dee", 1: "eve" }, { 0: "dee", 1: "eve" }, 20);  // the answer (newer)
call.setSlots({ 0: "dee" }, { 0: "dee" }, 10);                      // an older push, late
const afterStale = call.slots.map((s) => s.audioPeer);
call.setSlots({ 0: "eve" }, { 0: "eve" }, 30);                      // a newer push
const afterNewer = call.slots.map((s) => s.audioPeer);
call.setSlots({ 1: "dee" }, { 1: "dee" });                          // no seq: applied as before
const unnumbered = call.slots.map((s) => s.audioPeer);
console.log(JSON.stringify({ told, afterStale, afterNewer, unnumbered }));
"""


def test_an_older_slot_map_arriving_late_does_not_undo_a_newer_one(tmp_path: Path) -> None:
    assert NODE, "node is needed for the page-script tests (Debian package nodejs)"
    script = tmp_path / "harness.mjs"
    script.write_text(HARNESS, encoding="utf-8")
    done = subprocess.run(
        [NODE, str(script), MEDIA_JS.as_uri()],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["afterStale"] == ["dee", "eve"]  # the late, older map changed nothing
    assert results["afterNewer"] == ["eve", None]
    assert results["unnumbered"] == [None, "dee"]
    assert results["told"][:2] == ["+dee", "+eve"] and "-eve" not in results["told"][:3]
