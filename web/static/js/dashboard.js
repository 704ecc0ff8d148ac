/* The console's waiting-area section: a live list per waiting area over the websocket (area.watch).
 *
 * The server sends a full snapshot on every watch (also after a reconnect) and then one event per
 * change: queue.caller (insert or update) and queue.removed; queue.snapshot (the whole list)
 * after the area restarted. Rows are sorted longest wait first
 * and the wait times tick locally. A new arrival beeps (WebAudio) and raises a desktop notification
 * once the provider has allowed them with the button (browsers require a gesture for both).
 */
(function () {
  "use strict";

  const root = document.getElementById("dashboard");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const TICK_MS = 1000;
  const BEEP_HZ = 880;
  const BEEP_SECONDS = 0.18;

  const areas = new Map(); /* area id (string) -> {section, callers: Map} */
  for (const section of root.querySelectorAll("[data-area-id]")) {
    areas.set(section.dataset.areaId, { section: section, callers: new Map() });
  }
  let audio = null;
  let alertsOn = false;

  function showError(text) {
    const box = $("dash-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  /* -- copy an area's link ---------------------------------------------------------------------- */
  for (const button of root.querySelectorAll("[data-copy-link]")) {
    button.addEventListener("click", async () => {
      const box = button.parentElement;
      const status = box.querySelector("[data-copy-status]");
      try {
        await navigator.clipboard.writeText(button.dataset.copyLink);
        status.textContent = "Copied.";
      } catch (error) {
        /* No clipboard access (plain HTTP, or refused): show the link selected instead. */
        const text = box.querySelector("[data-link-text]");
        text.hidden = false;
        text.select();
        status.textContent = "Press Ctrl+C (⌘C on a Mac) to copy.";
      }
    });
  }

  /* -- remove everyone not connected (after a flood, or abandoned tabs) ------------------------ */
  for (const button of root.querySelectorAll("[data-clear-unconnected]")) {
    button.addEventListener("click", async () => {
      const section = button.closest("[data-area-id]");
      const name = section.dataset.areaName;
      const area = areas.get(section.dataset.areaId);
      const count = [...area.callers.values()].filter(
        (c) => c.status === "waiting" && !c.connected,
      ).length;
      if (count === 0) {
        showError("Everyone waiting in " + name + " is connected.");
        return;
      }
      if (!window.confirm("Remove the " + count + " people waiting in " + name +
          " who are not connected now? Their visit ends.")) return;
      try {
        const reply = await wire.request("area.clear_unconnected", {}, "area/" + section.dataset.areaId);
        showError("");
        section.querySelector("[data-copy-status]").textContent =
          reply.removed + " removed.";
      } catch (error) {
        showError(error.detail);
      }
    });
  }

  /* -- alerts ---------------------------------------------------------------------------------- */
  $("alerts").addEventListener("click", async () => {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      await audio.resume();
    } catch (error) {
      audio = null;
    }
    if ("Notification" in window && Notification.permission === "default") {
      try {
        await Notification.requestPermission();
      } catch (error) {
        /* denied or unsupported */
      }
    }
    alertsOn = true;
    $("alerts").textContent = "Sound and notifications on";
    $("alerts").disabled = true;
  });

  function beep() {
    if (!audio || audio.state !== "running") return;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = BEEP_HZ;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + BEEP_SECONDS);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + BEEP_SECONDS);
  }

  function announce(areaName, caller) {
    beep();
    if (alertsOn && "Notification" in window && Notification.permission === "granted") {
      try {
        new Notification("New arrival in " + areaName, { body: caller.name, tag: caller.id });
      } catch (error) {
        /* some browsers only allow notifications from a service worker */
      }
    }
  }

  /* -- rendering ------------------------------------------------------------------------------- */
  function waited(since) {
    const seconds = Math.max(0, Math.floor(Date.now() / 1000 - since));
    const m = Math.floor(seconds / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return m >= 60 ? Math.floor(m / 60) + " h " + (m % 60) + " min" : m + ":" + s;
  }

  const STATUS = { waiting: "Waiting", in_call: "In a call", on_hold: "On hold", ended: "Ended" };

  function statusText(caller) {
    let text = STATUS[caller.status] || caller.status;
    if (caller.status === "in_call" && caller.with && caller.with.length) {
      text += " with " + caller.with.join(", ");
    }
    if (!caller.connected) text += " · not connected";
    return text;
  }

  function detailText(details) {
    return Object.entries(details || {})
      .filter(([key]) => key !== "name")
      .map(([key, value]) => key.replace(/_/g, " ") + ": " + value)
      .join(" · ");
  }

  /* The caller's pre-call check (issue 16; docs/protocol.md "precheck.result"), in words and
   * symbols, never colour alone: "Check: Camera ✓ · Microphone ✓ · Speaker not tested · Network:
   * UDP, relay 40 ms". */
  const PRECHECK_PARTS = [["camera", "Camera"], ["microphone", "Microphone"], ["speaker", "Speaker"]];
  function precheckText(check) {
    if (!check) return "";
    const word = { ok: " ✓", failed: " ✗ not working", unknown: " not tested" };
    const parts = PRECHECK_PARTS.map(([key, label]) => label + (word[check[key]] || " not tested"));
    const net = check.network || {};
    const paths = [];
    if (net.udp) paths.push("UDP");
    if (net.tcp) paths.push("TCP");
    if (net.relay) paths.push(net.rtt_ms == null ? "relay" : "relay " + net.rtt_ms + " ms");
    parts.push("Network: " + (paths.length ? paths.join(", ") : "✗ no path found"));
    return "Check: " + parts.join(" · ");
  }

  function button(label, className, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "button " + className;
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function row(areaId, caller) {
    const item = document.createElement("li");
    item.className = "queue__caller queue__caller--" + caller.status;
    item.dataset.callerId = caller.id;
    item.dataset.since = String(caller.arrived_at);

    const who = document.createElement("div");
    who.className = "queue__who";
    const name = document.createElement("strong");
    name.className = "queue__name";
    name.textContent = caller.name;
    if (caller.namesake > 1) {
      /* A second caller with the name of one still waiting: both are patients (issue 15). */
      name.textContent += " (" + caller.namesake + ")";
      name.title = "Another caller here has the same name";
    }
    const wait = document.createElement("span");
    wait.className = "queue__wait";
    wait.dataset.wait = "";
    wait.textContent = waited(caller.arrived_at);
    const status = document.createElement("span");
    status.className = "queue__status";
    status.textContent = statusText(caller);
    who.append(name, wait, status);
    if (caller.transferred_from) {
      const note = document.createElement("span");
      note.className = "queue__transferred";
      note.textContent = "Transferred from " + caller.transferred_from;
      who.append(note);
    }
    const details = document.createElement("p");
    details.className = "queue__details muted";
    details.textContent = detailText(caller.details);
    const precheck = document.createElement("p");
    precheck.className = "queue__precheck muted";
    precheck.dataset.precheck = "";
    precheck.textContent = precheckText(caller.precheck);
    precheck.hidden = !caller.precheck;

    const actions = document.createElement("div");
    actions.className = "queue__actions";
    actions.append(
      button("Join", "button--primary", () => join(areaId, caller.id))
    );
    const targets = areas.get(areaId).section.querySelector("[data-targets]");
    if (targets && targets.content.children.length) {
      const select = document.createElement("select");
      select.className = "queue__target";
      select.setAttribute("aria-label", "Transfer " + caller.name + " to");
      select.append(targets.content.cloneNode(true));
      actions.append(
        select,
        button("Transfer", "button--quiet", () => act("caller.transfer", areaId, caller.id, {
          target_area: select.value,
        }))
      );
    }
    actions.append(button("End", "button--quiet", () => act("caller.end", areaId, caller.id, {})));
    item.append(who, details, precheck, actions);
    return item;
  }

  function render(areaId) {
    const area = areas.get(areaId);
    const list = area.section.querySelector("[data-list]");
    const callers = Array.from(area.callers.values()).sort((a, b) => a.arrived_at - b.arrived_at);
    list.replaceChildren(...callers.map((c) => row(areaId, c)));
    area.section.querySelector("[data-count]").textContent = String(callers.length);
    area.section.querySelector("[data-empty]").hidden = callers.length > 0;
    const total = document.querySelector("[data-total]");
    if (total) {
      let sum = 0;
      for (const a of areas.values()) sum += a.callers.size;
      total.textContent = String(sum);
    }
  }

  setInterval(() => {
    for (const item of root.querySelectorAll(".queue__caller")) {
      item.querySelector("[data-wait]").textContent = waited(Number(item.dataset.since));
    }
  }, TICK_MS);

  /* -- actions --------------------------------------------------------------------------------- */
  async function join(areaId, callerId) {
    try {
      const reply = await wire.request("caller.join", { caller_id: callerId }, "area/" + areaId);
      window.location.href = reply.url;
    } catch (error) {
      showError(error.detail);
    }
  }

  async function act(type, areaId, callerId, extra) {
    try {
      await wire.request(type, Object.assign({ caller_id: callerId }, extra), "area/" + areaId);
      showError("");
    } catch (error) {
      showError(error.detail);
    }
  }

  /* -- the wire -------------------------------------------------------------------------------- */
  const wire = WaitroomWire.connect({
    onStatus(status) {
      $("dash-status").textContent = status === "online" ? "" : "Reconnecting…";
    },
    async onReady() {
      for (const [areaId, area] of areas) {
        try {
          const snapshot = await wire.request("area.watch", {}, "area/" + areaId);
          area.callers = new Map(snapshot.callers.map((c) => [c.id, c]));
          render(areaId);
        } catch (error) {
          showError(error.detail);
        }
      }
    },
    onFatal(code, detail) {
      showError("Your session has ended. Sign in again. (" + detail + ")");
    },
  });

  wire.on("queue.caller", (body) => {
    const areaId = String(body.area);
    const area = areas.get(areaId);
    if (!area) return;
    const isNew = !area.callers.has(body.caller.id);
    area.callers.set(body.caller.id, body.caller);
    render(areaId);
    if (isNew) announce(area.section.dataset.areaName, body.caller);
  });
  /* The area restarted after a fault: its whole list, replacing ours (no announcement). */
  wire.on("queue.snapshot", (body) => {
    const areaId = String(body.area);
    const area = areas.get(areaId);
    if (!area) return;
    area.callers = new Map(body.callers.map((c) => [c.id, c]));
    render(areaId);
  });
  wire.on("queue.removed", (body) => {
    const areaId = String(body.area);
    const area = areas.get(areaId);
    if (!area) return;
    area.callers.delete(body.id);
    render(areaId);
  });
})();
