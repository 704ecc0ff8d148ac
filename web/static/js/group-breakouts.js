/* Breakout rooms on the group pages (issue 12), on top of group.js (window.WaitroomGroup).
 *
 * Frames group.breakout.* go through the main call, which forwards them to the session's
 * breakout desk (docs/protocol.md, "Group consultations"; actors/group/breakouts.py):
 *   state, create {count, names}, rename {room, name}, assign {mode, assignments}, choose {room},
 *   open {duration}, extend {seconds}, broadcast {text}, move {id, room|null}, help, close.
 * Events: rooms (the moderator's whole view), plan (a participant's own), move {room, name,
 * token, address, ends_at}, back, timer {ends_at}, closing {ends_at, in_seconds}, broadcast
 * {text, from}, help {room, name, who} (moderators).
 *
 * A participant moved to a room opens a second websocket with the move's token, enters that
 * room and offers media there (the main call's media is closed first): the room's call is its own
 * media call, so nothing of another room reaches this page. "back" closes it and the page offers
 * in the main call again. A moderator visits a room the same way with a second socket of their own
 * (their session cookie) addressed to the room, and comes back by leaving it.
 */
(function () {
  "use strict";

  const G = window.WaitroomGroup;
  if (!G) return;
  const S = G.strings;
  const fmt = G.fmt;
  const MODERATOR = G.role === "moderator";
  const $ = (id) => document.getElementById(id);
  const bar = $("breakout-bar");
  let room = null; /* {wire, to, name, plan} while in (or visiting) a room */
  let endsAt = null;
  let closingAt = null;
  let view = null; /* the moderator's last group.breakout.rooms */
  let plan = null; /* a participant's last group.breakout.plan */
  let moving = 0;
  let shownMode = null;

  function request(type, body) {
    return G.mainRequest(type, body || {});
  }

  function error(text) {
    const box = $("breakout-error");
    if (box) {
      box.textContent = text || "";
      box.hidden = !text;
    } else {
      G.showError(text);
    }
  }

  /* -- the room's own socket ------------------------------------------------------------------ */
  function enterRoom(move) {
    const mine = ++moving;
    leaveRoom(false);
    const token = MODERATOR ? undefined : move.token;
    const to = MODERATOR ? move.address : undefined;
    const roomWire = WaitroomWire.connect({
      token: token,
      async onReady() {
        try {
          const reply = await roomWire.request("room.enter", {}, to);
          if (mine !== moving) return;
          if (reply.ends_at) endsAt = reply.ends_at;
          G.setParticipants(reply.participants || [], reply.you);
          renderBar();
        } catch (err) {
          if (mine === moving) G.showError(err.detail);
        }
      },
      onFatal() {
        /* the room closed (or we moved on): group.breakout.back on the main socket follows */
      },
    });
    room = { wire: roomWire, to: to, name: move.name, id: move.room };
    if (move.ends_at) endsAt = move.ends_at;
    roomWire.on("room.participants", (body) => {
      if (room && room.wire === roomWire) G.setParticipants(body.participants || []);
    });
    roomWire.on("room.state", (body) => {
      if (!room || room.wire !== roomWire) return;
      if (body.ends_at) endsAt = body.ends_at;
      if (Array.isArray(body.participants)) G.setParticipants(body.participants, body.you);
    });
    roomWire.on("media.slots", (body) => {
      if (room && room.wire === roomWire) G.setSlots(body);
    });
    roomWire.on("media.layers", (body) => {
      if (room && room.wire === roomWire) G.setLayers(body);
    });
    roomWire.on("call.speaker", (body) => {
      if (room && room.wire === roomWire) G.setSpeaker(body.peer);
    });
    roomWire.on("chat.message", (body) => {
      if (room && room.wire === roomWire) G.addChat(body);
    });
    roomWire.on("media.closed", () => {
      if (room && room.wire === roomWire) G.restartMedia();
    });
    roomWire.on("group.breakout.broadcast", showBroadcast);
    roomWire.on("group.breakout.timer", onTimer);
    roomWire.on("group.breakout.closing", onClosing);
    G.switchCall({ wire: roomWire, to: to, name: move.name });
    G.announce(MODERATOR ? fmt(S.visiting, { room: move.name }) : fmt(S.breakout_moved, { room: move.name }));
    renderBar();
  }

  function leaveRoom(back) {
    if (!room) return;
    const old = room;
    room = null;
    if (old.wire.ready) old.wire.request("room.leave", {}, old.to).catch(() => {});
    window.setTimeout(() => old.wire.close(), 200);
    if (back) {
      G.switchCall(null);
      G.announce(MODERATOR ? S.back_main : S.breakout_back);
      $("breakout-broadcast") && ($("breakout-broadcast").hidden = true);
    }
    renderBar();
  }

  /* -- the bar every page in a room shows: name, countdown, closing, broadcast, help ---------- */
  function renderBar() {
    if (!bar) return;
    bar.hidden = !room;
    if (!room) return;
    $("breakout-room-name").textContent = MODERATOR ? fmt(S.visiting, { room: room.name }) : room.name;
    tick();
  }

  function tick() {
    const now = Date.now() / 1000;
    if (bar && room) {
      const clock = $("breakout-clock");
      const until = closingAt || endsAt;
      clock.textContent = until ? G.duration(until - now) : "–";
      const closing = $("breakout-closing");
      if (closingAt) {
        closing.hidden = false;
        const left = Math.max(0, Math.ceil(closingAt - now));
        const text = fmt(S.breakout_closing || S.closing_in, { seconds: left });
        if (closing.textContent !== text && (left % 10 === 0 || left <= 5 || !closing.dataset.shown)) {
          closing.textContent = text;
          closing.dataset.shown = "1";
        }
      } else {
        closing.hidden = true;
        closing.dataset.shown = "";
      }
    }
    const modClock = $("breakout-mod-clock");
    if (modClock && view) {
      const until = view.phase === "closing" ? closingAt : view.ends_at;
      modClock.textContent = until ? G.duration(until - now) : "–";
    }
  }
  setInterval(tick, 500);

  function onTimer(body) {
    endsAt = body.ends_at || endsAt;
    tick();
  }

  function onClosing(body) {
    closingAt = body.ends_at || Date.now() / 1000 + (body.in_seconds || 60);
    const closing = $("breakout-closing");
    if (closing) closing.dataset.shown = "";
    tick();
    if (MODERATOR) renderRooms();
  }

  function showBroadcast(body) {
    const box = $("breakout-broadcast");
    const text = fmt(S.broadcast, { text: body.text || "" });
    if (box) {
      box.textContent = text;
      box.hidden = false;
    }
    G.addChat({ from: body.from || S.moderator, text: body.text || "", at: body.at }, S.broadcast ? fmt(S.broadcast, { text: "" }).replace(/[:：]\s*$/, "") : "");
  }

  /* -- events on the main socket --------------------------------------------------------------- */
  const main = () => G.wire();
  function onMain(type, fn) {
    const w = main();
    if (w) w.on(type, fn);
  }

  function wireUp() {
    onMain("group.breakout.move", (body) => {
      closingAt = null;
      if (!MODERATOR) enterRoom(body);
    });
    onMain("group.breakout.back", () => {
      closingAt = null;
      endsAt = null;
      if (!MODERATOR) leaveRoom(true);
      renderChoose();
    });
    onMain("group.breakout.timer", onTimer);
    onMain("group.breakout.closing", onClosing);
    onMain("group.breakout.plan", (body) => {
      plan = body;
      if (body.ends_at) endsAt = body.ends_at;
      if (body.phase !== "closing") closingAt = null;
      renderChoose();
    });
    onMain("group.breakout.rooms", (body) => {
      view = body;
      if (body.phase !== "closing") closingAt = null;
      if (body.phase === "closing" && body.ends_at) closingAt = body.ends_at;
      renderRooms();
      if (room && MODERATOR && body.phase !== "open" && body.phase !== "closing") leaveRoom(true);
    });
    onMain("group.breakout.help", (body) => {
      G.announce(fmt(S.help_asked, { room: body.name || "", who: body.who || "" }));
      const list = $("breakout-help-list");
      if (list) {
        const line = document.createElement("p");
        line.className = "notice notice--error";
        line.textContent = fmt(S.help_asked, { room: body.name || "", who: body.who || "" });
        line.dataset.room = body.room;
        list.append(line);
      }
    });
  }

  /* The main socket exists once group.js connected; ask the desk for its state after each entry. */
  let wired = null;
  G.on("view", () => {
    const w = main();
    if (!w || wired === w) return;
    wired = w;
    wireUp();
    request("group.breakout.state", {})
      .then((body) => {
        if (MODERATOR) {
          view = body;
          renderRooms();
        } else {
          plan = body;
          if (body.ends_at) endsAt = body.ends_at;
          renderChoose();
          if (body.move && !room) enterRoom(body.move);
        }
      })
      .catch(() => {});
  });
  G.on("ended", () => leaveRoom(false));
  G.on("leaving", () => leaveRoom(false));

  /* -- participants: choose a room, ask for help ----------------------------------------------- */
  function renderChoose() {
    const box = $("breakout-choose");
    if (!box || MODERATOR) return;
    const choosing = plan && plan.mode === "choose" && Array.isArray(plan.rooms) && plan.phase !== "closing" && plan.phase !== "none";
    box.hidden = !choosing;
    if (!choosing) return;
    $("breakout-choose-mine").textContent = plan.room ? fmt(S.choose_mine, { room: plan.room.name }) : "";
    $("breakout-choose-list").replaceChildren(
      ...plan.rooms.map((r) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "button" + (plan.room && plan.room.id === r.id ? " button--primary" : "");
        b.textContent = fmt(S.choose_join, { room: r.name });
        b.setAttribute("aria-pressed", String(Boolean(plan.room && plan.room.id === r.id)));
        b.addEventListener("click", () =>
          request("group.breakout.choose", { room: r.id })
            .then((body) => {
              plan = body;
              renderChoose();
            })
            .catch((err) => G.showError(err.detail))
        );
        li.append(b);
        return li;
      })
    );
  }

  const help = $("breakout-help");
  if (help) {
    help.addEventListener("click", async () => {
      try {
        if (room && room.wire.ready) await room.wire.request("group.breakout.help", {});
        else await request("group.breakout.help", {});
        help.setAttribute("aria-pressed", "true");
        G.announce(S.help_sent);
      } catch (err) {
        G.showError(err.detail);
      }
    });
  }

  /* -- the moderator's panel ------------------------------------------------------------------- */
  function act(type, body) {
    return request(type, body)
      .then((reply) => {
        error("");
        if (reply && reply.rooms && reply.phase) {
          view = reply;
          renderRooms();
        }
        return reply;
      })
      .catch((err) => {
        error(err.detail);
        return null;
      });
  }

  function placeSelect(person, current) {
    const select = document.createElement("select");
    select.setAttribute("aria-label", fmt(S.place_for, { name: person.name }));
    select.dataset.member = person.id;
    const options = [["", S.main_call], ...view.rooms.map((r) => [r.id, r.name])];
    for (const [value, text] of options) {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = text;
      select.append(o);
    }
    select.value = current || "";
    select.disabled = view.phase === "closing";
    select.addEventListener("change", () => {
      const target = select.value || null;
      if (view.phase === "open") act("group.breakout.move", { id: person.id, room: target });
      else act("group.breakout.assign", { mode: "manual", assignments: { [person.id]: target } });
    });
    return select;
  }

  function personLine(person, current) {
    const li = document.createElement("li");
    li.dataset.member = person.id;
    const name = document.createElement("span");
    name.textContent = person.name;
    li.append(name, " ", placeSelect(person, current));
    return li;
  }

  function renderRooms() {
    if (!MODERATOR || !$("group-breakouts") || !view) return;
    const rooms = view.rooms || [];
    const phase = view.phase || "none";
    const running = phase === "open" || phase === "closing";
    const phaseText = {
      none: S.phase_none,
      ready: fmt(S.phase_ready, { n: rooms.length }),
      open: fmt(S.phase_open, { n: rooms.length }),
      closing: fmt(S.phase_closing, { seconds: closingAt ? Math.max(0, Math.ceil(closingAt - Date.now() / 1000)) : 60 }),
    }[phase];
    $("breakout-phase").textContent = phaseText || "";
    $("breakout-create").hidden = running;
    $("breakout-setup").hidden = running || !rooms.length;
    $("breakout-open").hidden = running || !rooms.length;
    $("breakout-running").hidden = !running;
    /* The mode radios follow the desk only when its mode changes, not over a choice being made. */
    if (view.mode !== shownMode) {
      shownMode = view.mode;
      for (const radio of document.querySelectorAll('input[name="breakout-mode"]')) {
        radio.checked = radio.value === (view.mode || "manual");
      }
    }
    if (!running) {
      const help = $("breakout-help-list");
      if (help) help.replaceChildren();
    }
    $("breakout-rooms").replaceChildren(
      ...rooms.map((r, i) => {
        const li = document.createElement("li");
        li.className = "breakout-room" + (r.help ? " breakout-room--help" : "");
        li.dataset.room = r.id;
        const head = document.createElement("div");
        head.className = "breakout-room__head";
        const label = document.createElement("label");
        label.className = "visually-hidden";
        label.htmlFor = "breakout-name-" + i;
        label.textContent = fmt(S.room_name, { room: "room " + (i + 1) });
        const input = document.createElement("input");
        input.type = "text";
        input.id = "breakout-name-" + i;
        input.maxLength = 60;
        input.value = r.name;
        const rename = document.createElement("button");
        rename.type = "button";
        rename.className = "button button--quiet button--small";
        rename.textContent = S.rename;
        rename.setAttribute("aria-label", S.rename + ": " + r.name);
        rename.addEventListener("click", () => act("group.breakout.rename", { room: r.id, name: input.value }));
        head.append(label, input, rename);
        if (running && r.address) {
          const visit = document.createElement("button");
          visit.type = "button";
          visit.className = "button button--small";
          visit.textContent = S.visit;
          visit.setAttribute("aria-label", fmt(S.visit_room, { room: r.name }));
          visit.addEventListener("click", () => enterRoom({ address: r.address, name: r.name, room: r.id }));
          head.append(visit);
        }
        if (r.help) {
          const badge = document.createElement("strong");
          badge.textContent = S.help_badge;
          head.append(badge);
        }
        const people = document.createElement("ul");
        const present = new Set(r.present || []);
        for (const p of r.people || []) {
          const line = personLine(p, r.id);
          if (running && present.has(p.id)) line.classList.add("breakout-room__present");
          people.append(line);
        }
        if (!(r.people || []).length) {
          const none = document.createElement("li");
          none.className = "muted";
          none.textContent = S.room_people_none;
          people.append(none);
        }
        li.append(head, people);
        if (running) {
          const count = document.createElement("p");
          count.className = "muted";
          count.textContent = fmt(S.present, { n: (r.present || []).length });
          li.append(count);
        }
        return li;
      })
    );
    const unassigned = view.unassigned || [];
    $("breakout-unassigned-box").hidden = !rooms.length || !unassigned.length;
    $("breakout-unassigned").replaceChildren(...unassigned.map((p) => personLine(p, null)));
    tick();
  }

  if (MODERATOR && $("group-breakouts")) {
    $("breakout-create").addEventListener("submit", (event) => {
      event.preventDefault();
      const count = parseInt($("breakout-count").value, 10);
      const names = view && view.rooms ? view.rooms.slice(0, count).map((r) => r.name) : [];
      act("group.breakout.create", { count: count, names: names });
    });
    $("breakout-assign").addEventListener("click", () => {
      const mode = (document.querySelector('input[name="breakout-mode"]:checked') || {}).value || "manual";
      act("group.breakout.assign", { mode: mode });
    });
    $("breakout-open").addEventListener("submit", (event) => {
      event.preventDefault();
      const minutes = parseInt($("breakout-minutes").value || "0", 10) || 0;
      const seconds = parseInt($("breakout-seconds").value || "0", 10) || 0;
      act("group.breakout.open", { duration: minutes * 60 + seconds }).then((reply) => {
        if (reply) G.announce(S.opened);
      });
    });
    for (const b of document.querySelectorAll("[data-extend]")) {
      b.addEventListener("click", () => act("group.breakout.extend", { seconds: parseInt(b.dataset.extend, 10) }));
    }
    $("breakout-close").addEventListener("click", () => act("group.breakout.close", {}));
    $("breakout-broadcast-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("breakout-broadcast-text");
      const text = input.value.trim();
      if (!text) return;
      act("group.breakout.broadcast", { text: text }).then((reply) => {
        if (reply) {
          input.value = "";
          G.announce(S.broadcast_sent);
        }
      });
    });
    const back = $("breakout-return");
    if (back) back.addEventListener("click", () => leaveRoom(true));
  }
})();
