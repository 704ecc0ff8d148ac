/* The bell (issue 14) and the staff pages' shared websocket.
 *
 * Every signed-in staff page opens one socket here (wire.js; the session cookie says who) and
 * subscribes to the notice board: `notices.subscribe` answers the latest notices and the unread
 * count, then `staff.notice` pushes each new one. A notice with `ring` plays a short tone (WebAudio,
 * no sound file) and shows a desktop Notification when the browser allows them. Browsers only let
 * a page make sound or ask for notifications after a gesture: the first click anywhere unlocks
 * the sound, and the panel's button asks for notification permission.
 *
 * Other staff scripts share the socket: WaitroomStaff.onReady(fn) runs fn(wire) after every
 * (re)connection, WaitroomStaff.onStatus(fn) hears "online" / "offline" / "connecting".
 */
(function () {
  "use strict";

  const bell = document.getElementById("bell");
  if (!bell || !window.WaitroomWire) return;
  const $ = (id) => document.getElementById(id);
  const TONE_HZ = [660, 880];
  const TONE_SECONDS = 0.16;
  const TONE_GAIN = 0.2;

  const readyFns = [];
  const statusFns = [];
  const notices = new Map(); /* id -> notice, newest first when rendered */
  let unread = 0;
  let audio = null;

  /* -- sound and desktop notifications -------------------------------------------------------- */
  function unlockAudio() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state !== "running") audio.resume().catch(() => {});
    } catch (error) {
      audio = null;
    }
  }
  document.addEventListener("pointerdown", unlockAudio, { once: true, capture: true });
  document.addEventListener("keydown", unlockAudio, { once: true, capture: true });

  function ring() {
    if (!audio || audio.state !== "running") return;
    TONE_HZ.forEach((hz, i) => {
      const start = audio.currentTime + i * TONE_SECONDS;
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(TONE_GAIN, start);
      gain.gain.exponentialRampToValueAtTime(0.001, start + TONE_SECONDS);
      osc.connect(gain).connect(audio.destination);
      osc.start(start);
      osc.stop(start + TONE_SECONDS);
    });
  }

  function desktop(notice) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const shown = new Notification("Waitroom", { body: notice.text, tag: "notice-" + notice.id });
      shown.onclick = () => {
        window.focus();
        if (notice.url) window.location.href = notice.url;
      };
    } catch (error) {
      /* some browsers only allow notifications from a service worker */
    }
  }

  function updateAlertsButton() {
    const button = $("bell-alerts");
    const granted = "Notification" in window && Notification.permission === "granted";
    button.hidden = granted && audio && audio.state === "running";
  }

  $("bell-alerts").addEventListener("click", async () => {
    unlockAudio();
    if ("Notification" in window && Notification.permission === "default") {
      try {
        await Notification.requestPermission();
      } catch (error) {
        /* denied or unsupported */
      }
    }
    updateAlertsButton();
  });

  /* -- the panel ------------------------------------------------------------------------------ */
  function setUnread(n) {
    unread = Math.max(0, n | 0);
    const count = $("bell-count");
    count.textContent = String(unread);
    count.hidden = unread === 0;
    $("bell-button").setAttribute(
      "aria-label",
      unread === 0 ? "Notifications, none unread" : "Notifications, " + unread + " unread"
    );
  }

  function when(at) {
    return new Date(at * 1000).toLocaleString([], {
      hour: "2-digit", minute: "2-digit", day: "numeric", month: "short",
    });
  }

  function item(notice) {
    const li = document.createElement("li");
    li.className = "bell__item" + (notice.read ? "" : " bell__item--unread");
    li.dataset.noticeId = String(notice.id);
    li.dataset.kind = notice.kind || "";
    const text = document.createElement(notice.url ? "a" : "span");
    text.className = "bell__text";
    text.textContent = notice.text;
    if (notice.url) {
      text.href = notice.url;
      text.addEventListener("click", () => markRead(notice));
    }
    const time = document.createElement("time");
    time.className = "muted bell__time";
    time.textContent = when(notice.at);
    li.append(text, time);
    if (!notice.read) {
      const read = document.createElement("button");
      read.type = "button";
      read.className = "button button--quiet bell__read";
      read.textContent = "Mark read";
      read.setAttribute("aria-label", "Mark read: " + notice.text);
      read.addEventListener("click", () => markRead(notice));
      li.append(read);
    }
    return li;
  }

  function render() {
    const list = $("bell-list");
    const sorted = Array.from(notices.values()).sort((a, b) => b.id - a.id);
    list.replaceChildren(...sorted.map(item));
    $("bell-empty").hidden = sorted.length > 0;
  }

  async function markRead(notice) {
    if (notice.read) return;
    try {
      const reply = await wire.request("notices.read", { id: notice.id });
      notice.read = true;
      setUnread(reply.unread);
      render();
    } catch (error) {
      /* offline: it stays unread, and the next subscribe says so */
    }
  }

  function toggle(open) {
    const panel = $("bell-panel");
    panel.hidden = !open;
    $("bell-button").setAttribute("aria-expanded", String(open));
    if (open) updateAlertsButton();
  }
  $("bell-button").addEventListener("click", () => toggle($("bell-panel").hidden));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("bell-panel").hidden) {
      toggle(false);
      $("bell-button").focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!bell.contains(event.target)) toggle(false);
  });

  /* -- the wire ------------------------------------------------------------------------------- */
  async function subscribe() {
    try {
      const reply = await wire.request("notices.subscribe", {});
      notices.clear();
      for (const n of reply.notices || []) notices.set(n.id, n);
      setUnread(reply.unread);
      render();
    } catch (error) {
      /* the board is not there: the bell stays empty */
    }
  }

  const wire = WaitroomWire.connect({
    onStatus(status) {
      for (const fn of statusFns) fn(status);
    },
    async onReady() {
      await subscribe();
      for (const fn of readyFns.slice()) {
        try {
          await fn(wire);
        } catch (error) {
          console.error("waitroom: staff socket listener failed", error);
        }
      }
    },
    onFatal() {
      for (const fn of statusFns) fn("offline");
    },
  });

  wire.on("staff.notice", (body) => {
    const notice = Object.assign({ read: false }, body);
    notices.set(notice.id, notice);
    if (typeof body.unread === "number") setUnread(body.unread);
    else setUnread(unread + 1);
    render();
    $("bell-live").textContent = notice.text;
    if (notice.ring) {
      ring();
      desktop(notice);
    }
  });

  window.WaitroomStaff = {
    wire: wire,
    onReady(fn) {
      readyFns.push(fn);
      if (wire.ready) fn(wire);
    },
    onStatus(fn) {
      statusFns.push(fn);
    },
  };
})();
