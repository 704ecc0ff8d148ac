/* Consult Now links, live (issue 13): the send page and the console section.
 *
 * The server renders the provider's pending links with the seconds each has left; this script
 * counts them down every second and follows `consult.watch` on the staff socket that notices.js
 * opens (WaitroomStaff): `consult.link` when a link is sent, extended, cancelled or expires, and
 * `consult.opened` when its recipient opened it (the call is running: a banner links to it; the
 * ring itself is the bell's notice). Extend and Cancel stay plain forms, so they work without
 * this script; the ones it draws carry the page's CSRF token like the server's.
 */
(function () {
  "use strict";

  const lists = Array.from(document.querySelectorAll("[data-consult-links]"));
  if (!lists.length) return;
  const TICK_MS = 1000;
  const deadlines = new Map(); /* link id -> performance.now() deadline */

  function csrf() {
    const input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }

  function clock(seconds) {
    const s = Math.max(0, Math.ceil(seconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function form(action, label, aria, attr, disabled) {
    const f = document.createElement("form");
    f.method = "post";
    f.action = action;
    f.className = "form--inline";
    const token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrf_token";
    token.value = csrf();
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "button button--quiet";
    button.setAttribute(attr, "");
    button.setAttribute("aria-label", aria);
    button.textContent = label;
    button.disabled = disabled;
    f.append(token, button);
    return f;
  }

  function item(link) {
    const who = link.label || link.to;
    const more = String(Math.round((link.extension_seconds / 60) * 100) / 100);
    const li = document.createElement("li");
    li.className = "consult-link";
    li.dataset.linkId = link.id;
    li.dataset.state = link.state;
    const head = document.createElement("div");
    head.className = "consult-link__who";
    const name = document.createElement("strong");
    name.textContent = who;
    const how = document.createElement("span");
    how.className = "muted";
    how.textContent = (link.channel === "sms" ? "Text" : "Email") + " to " + link.to + " · " + link.area;
    head.append(name, " ", how);
    const time = document.createElement("p");
    time.className = "consult-link__time";
    time.dataset.timeLeft = "";
    const span = document.createElement("span");
    span.dataset.clock = "";
    time.append("Valid for ", span);
    const actions = document.createElement("div");
    actions.className = "consult-link__actions";
    actions.append(
      form("/consult/" + encodeURIComponent(link.id) + "/extend",
        "Extend " + more + " min (" + link.extensions_left + " left)",
        "Extend by " + more + " minutes: " + who,
        "data-extend", link.extensions_left === 0),
      form("/consult/" + encodeURIComponent(link.id) + "/cancel", "Cancel", "Cancel link: " + who,
        "data-cancel", false)
    );
    li.append(head, time, actions);
    return li;
  }

  function say(text) {
    for (const list of lists) {
      const status = list.parentElement.querySelector("[data-consult-status]");
      if (status) status.textContent = text;
    }
  }

  function refreshEmpty() {
    for (const list of lists) {
      const empty = list.parentElement.querySelector("[data-consult-empty]");
      if (empty) empty.hidden = list.children.length > 0;
    }
  }

  function tick() {
    const now = performance.now();
    for (const list of lists) {
      for (const li of list.querySelectorAll("[data-link-id]")) {
        const deadline = deadlines.get(li.dataset.linkId);
        if (deadline === undefined) continue;
        const left = (deadline - now) / 1000;
        const span = li.querySelector("[data-clock]");
        if (span) span.textContent = clock(left);
        if (left <= 0) li.dataset.state = "expired";
      }
    }
  }

  function track(link) {
    deadlines.set(link.id, performance.now() + link.seconds_left * 1000);
  }

  /* Each list shows the pending links; a link that is no longer pending leaves it. */
  function upsert(link) {
    for (const list of lists) {
      const old = list.querySelector('[data-link-id="' + CSS.escape(link.id) + '"]');
      if (link.state !== "pending") {
        if (old) old.remove();
        continue;
      }
      const fresh = item(link);
      if (old) old.replaceWith(fresh);
      else list.append(fresh);
    }
    if (link.state === "pending") track(link);
    else deadlines.delete(link.id);
    refreshEmpty();
    tick();
  }

  function opened(link) {
    upsert(link);
    let banner = document.getElementById("consult-opened");
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "consult-opened";
      banner.className = "notice notice--info consult-opened";
      banner.setAttribute("role", "alert");
      lists[0].parentElement.prepend(banner);
    }
    const who = link.label || link.to;
    const answer = document.createElement("a");
    answer.className = "button button--primary";
    answer.href = "/consult/call/" + encodeURIComponent(link.room);
    answer.id = "consult-answer";
    answer.textContent = "Answer the call";
    banner.replaceChildren(who + " opened your link: the call has started. ", answer);
  }

  for (const list of lists) {
    for (const li of list.querySelectorAll("[data-link-id]")) {
      deadlines.set(li.dataset.linkId, performance.now() + Number(li.dataset.secondsLeft) * 1000);
    }
  }
  tick();
  window.setInterval(tick, TICK_MS);

  function start() {
    if (!window.WaitroomStaff) return;
    const wire = window.WaitroomStaff.wire;
    wire.on("consult.link", (body) => {
      upsert(body);
      if (body.state === "expired") say("A link expired unused.");
      else if (body.state === "cancelled") say("A link was cancelled.");
    });
    wire.on("consult.opened", opened);
    window.WaitroomStaff.onReady(async (socket) => {
      try {
        const reply = await socket.request("consult.watch", {});
        const known = new Set((reply.links || []).map((l) => l.id));
        for (const list of lists) {
          for (const li of list.querySelectorAll("[data-link-id]")) {
            if (!known.has(li.dataset.linkId)) upsert({ id: li.dataset.linkId, state: "gone" });
          }
        }
        for (const link of reply.links || []) upsert(link);
      } catch (error) {
        /* the desk is not there: the rendered list and its countdown still stand */
      }
    });
  }
  /* notices.js (deferred, in the header) defines WaitroomStaff before this deferred script runs. */
  if (window.WaitroomStaff) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
})();
