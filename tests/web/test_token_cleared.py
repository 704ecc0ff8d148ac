"""A caller's stored visit token is cleared when the arrival form is submitted (issue 15).

On a shared device the previous patient's token must not survive a new arrival. Checked without a
browser: ``arrive.js`` runs under Node with a minimal stand-in for the page and its storage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ARRIVE_JS = Path(__file__).parents[2] / "web" / "static" / "js" / "arrive.js"
NODE = shutil.which("node")
NODE_TIMEOUT = 30

HARNESS = """
const stored = new Map(Object.entries(%(stored)s));
const listeners = {};
const form = { addEventListener: (type, fn) => { listeners[type] = fn; } };
const section = { dataset: { slug: "gp" }, querySelector: (sel) => (sel === "form" ? form : null) };
let replaced = null;
globalThis.document = { getElementById: (id) => (id === "arrive" ? section : null) };
globalThis.window = {
  localStorage: {
    getItem: (k) => (stored.has(k) ? stored.get(k) : null),
    setItem: (k, v) => stored.set(k, String(v)),
    removeItem: (k) => stored.delete(k),
  },
  location: { pathname: "/w/gp", replace: (url) => { replaced = url; } },
};
require(%(script)s);
if (listeners.submit) listeners.submit({});
console.log(JSON.stringify({ replaced, stored: Object.fromEntries(stored), submit: !!listeners.submit }));
"""


def run_arrive(stored: dict[str, str]) -> dict[str, object]:
    assert NODE is not None, "these tests run the page script under Node.js (Debian: nodejs)"
    script = HARNESS % {"stored": json.dumps(stored), "script": json.dumps(str(ARRIVE_JS))}
    done = subprocess.run(
        [NODE, "-e", script], capture_output=True, text=True, timeout=NODE_TIMEOUT, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_submitting_the_arrival_form_clears_a_stored_visit() -> None:
    # A stale value (no token) does not redirect, so the form is shown and submitted.
    result = run_arrive({"waitroom.visit.gp": json.dumps({"since": 1}), "other": "kept"})
    assert result["submit"] is True
    assert result["stored"] == {"other": "kept"}


def test_a_live_visit_still_goes_back_to_the_wait_page() -> None:
    """The closed-tab resume (README) stays: an arrival page with a live token goes to /wait."""
    result = run_arrive({"waitroom.visit.gp": json.dumps({"token": "t", "since": 1})})
    assert result["replaced"] == "/w/gp/wait"
