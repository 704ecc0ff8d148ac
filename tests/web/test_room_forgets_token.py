"""The room page forgets the caller's token when the call ends (issue 15).

A caller's token stays in ``localStorage`` so a closed tab comes back within the grace period; on
a shared device it must not outlive the call, or the next person who opens the area's link walks
into the previous patient's room. ``room.js`` clears it in ``forget()`` when the room says the
call ended (``room.state`` ``ended``), when the server closes the socket as ended (4001, the
wire's ``onFatal("ended")``) and when the token is refused. Checked without a browser: the script
runs under Node with a minimal stand-in for the page, its storage and the wire client
(``WaitroomWire``), whose handlers the test calls as the server's frames would.

A new test of existing behaviour: nothing proved the clearing before, and it fails if
``forget()`` stops being called on the end of a call (checked by running it against a copy of
the script whose ``forget`` does nothing, below).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOM_JS = Path(__file__).parents[2] / "web" / "static" / "js" / "room.js"
NODE = shutil.which("node")
NODE_TIMEOUT = 30
SLUG = "gp"
VISIT_KEY = f"waitroom.visit.{SLUG}"
GUEST_KEY = "waitroom.guest"

HARNESS = r"""
const config = %(config)s;
function storage(initial) {
  const map = new Map(Object.entries(initial));
  return {
    map,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, v) => map.set(k, String(v)),
    removeItem: (k) => map.delete(k),
  };
}
const local = storage(config.local);
const session = storage(config.session);
function element(extra) {
  return Object.assign({
    hidden: true, textContent: "", value: "", dataset: {}, disabled: false, returnValue: "",
    addEventListener() {}, setAttribute() {}, focus() {}, select() {}, showModal() {},
    append() {}, querySelector: () => null, querySelectorAll: () => [],
    classList: { add() {}, remove() {}, toggle() {} },
  }, extra || {});
}
const page = element({ dataset: config.dataset });
const elements = new Map([["room-page", page], ["wr-strings", element({ textContent: "{}" })]]);
globalThis.document = {
  getElementById: (id) => {
    if (!elements.has(id)) elements.set(id, element());
    return elements.get(id);
  },
  createElement: () => element(),
  dispatchEvent() {},
};
globalThis.window = {
  localStorage: local,
  sessionStorage: session,
  history: { replaceState() {} },
  location: { pathname: "/w/gp/wait", origin: "http://x", replace() {}, href: "" },
  confirm: () => false,
};
globalThis.setInterval = () => 0;  // the waiting timer would keep Node running
let options = null;
const handlers = {};
let closed = false;
globalThis.WaitroomWire = {
  connect(given) {
    options = given;
    return {
      ready: true,
      on(type, fn) { handlers[type] = fn; return this; },
      request: () => new Promise(() => {}),
      close() { closed = true; },
    };
  },
};
const snapshot = () => ({
  local: Object.fromEntries(local.map), session: Object.fromEntries(session.map), closed,
});
require(config.script);
const steps = [snapshot()];
for (const [kind, arg] of config.events) {
  if (kind === "state") handlers["room.state"](arg);
  else if (kind === "fatal") options.onFatal(arg, "");
  steps.push(snapshot());
}
console.log(JSON.stringify(steps));
process.exit(0);
"""


def run_room(
    role: str,
    events: list[tuple[str, object]],
    *,
    token: str = "",
    local: dict[str, str] | None = None,
    session: dict[str, str] | None = None,
    script: Path = ROOM_JS,
) -> list[dict[str, Any]]:
    """Storage before any event, then after each one."""
    assert NODE is not None, "these tests run the page script under Node.js (Debian: nodejs)"
    config = {
        "script": str(script),
        "dataset": {
            "role": role,
            "slug": SLUG,
            "token": token,
            "waitUrl": "/w/gp/wait",
            "arriveUrl": "/w/gp",
            "homeUrl": "/g",
        },
        "local": local or {},
        "session": session or {},
        "events": events,
    }
    done = subprocess.run(
        [NODE, "-e", HARNESS % {"config": json.dumps(config)}],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=True,
    )
    steps: list[dict[str, Any]] = json.loads(done.stdout)
    return steps


def test_the_callers_token_is_stored_while_waiting_and_cleared_when_the_call_ends() -> None:
    steps = run_room(
        "caller", [("state", {"state": "waiting"}), ("state", {"state": "ended"})], token="r1.s1"
    )
    arrived, waiting, ended = steps
    assert json.loads(str(arrived["local"][VISIT_KEY]))["token"] == "r1.s1"
    assert VISIT_KEY in waiting["local"]
    assert ended["local"] == {} and ended["closed"] is True


def test_a_socket_closed_as_ended_clears_it_too() -> None:
    """The room ended while the tab was away (close 4001 on reconnect): the wire's onFatal."""
    stored = {VISIT_KEY: json.dumps({"token": "r1.s1", "since": 1}), "other": "kept"}
    steps = run_room("caller", [("fatal", "ended")], local=stored)
    assert VISIT_KEY in steps[0]["local"]
    assert steps[-1]["local"] == {"other": "kept"}


def test_a_refused_token_is_cleared() -> None:
    stored = {VISIT_KEY: json.dumps({"token": "r1.old", "since": 1})}
    steps = run_room("caller", [("fatal", "invalid_token")], local=stored)
    assert steps[-1]["local"] == {}


def test_a_guests_token_is_cleared_when_the_call_ends() -> None:
    steps = run_room("guest", [("state", {"state": "ended"})], token="r1.g1")
    assert steps[0]["session"] == {GUEST_KEY: "r1.g1"}
    assert steps[-1]["session"] == {}


def test_the_check_would_catch_a_page_that_kept_the_token(tmp_path: Path) -> None:
    """The same run against room.js with ``forget()`` emptied keeps the token: the tests above
    depend on ``forget()`` being called, not on the harness."""
    source = ROOM_JS.read_text()
    marker = "  function forget() {\n"
    assert source.count(marker) == 1
    broken = tmp_path / "room.js"
    broken.write_text(source.replace(marker, marker + "    return;\n"))
    steps = run_room("caller", [("state", {"state": "ended"})], token="r1.s1", script=broken)
    assert VISIT_KEY in steps[-1]["local"]
