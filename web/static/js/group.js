/* The group consultation page (issue 12), for the moderator and for participants: one script.
 *
 * Participants: the token arrives once in the page (data-token); it is kept in sessionStorage
 * and the address bar becomes /g/<link>/wait, so a reload comes back (an admitted participant
 * enters the call directly). room.enter answers "waiting" (the group waiting area: nobody else
 * is shown) until a moderator admits them; room.state then brings the call.
 * Moderators are recognised by their session cookie and address room/<id> (data-room).
 *
 * The call: media.js (data-media-url) publishes simulcast (data-simulcast="1": a group call is
 * large) and follows media.view from the tiles, so a tile hidden by the gallery's paging or by
 * the speaker view is not forwarded. The gallery pages 9 tiles (4 on a phone); the speaker view
 * shows one large tile: the spotlight, else (participants) the moderator, else who speaks.
 * Spotlight peers, and on a participant's page the moderators, are pinned (data-pinned).
 *
 * Breakout rooms live in group-breakouts.js, which uses window.WaitroomGroup: a participant
 * moved to a room gets a second socket for it; the tiles and media then follow that room.
 */
(function () {
  "use strict";

  const page = document.getElementById("group-page");
  if (!page) return;
  const role = page.dataset.role; /* "moderator" | "participant" */
  const MODERATOR = role === "moderator";
  const S = JSON.parse(document.getElementById("group-strings").textContent);
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE_WIDE = 9;
  const PAGE_SIZE_NARROW = 4;
  const NARROW_PX = 700;
  const SPEAKER_STRIP = 4;
  const TICK_MS = 1000;
  const STORE_KEY = "waitroom.group." + (page.dataset.link || "");

  const el = {
    announce: $("group-announce"),
    ending: $("group-ending"),
    waiting: $("group-waiting"),
    waitingStatus: $("group-waiting-status"),
    waitTimer: $("wait-timer"),
    preview: $("preview"),
    deviceCheck: $("device-check"),
    invalid: $("group-invalid"),
    invalidText: $("group-invalid-text"),
    ended: $("group-ended"),
    endedText: $("group-ended-text"),
    left: $("group-left"),
    call: $("group-call"),
    tiles: $("tiles"),
    pager: $("group-pager"),
    pageText: $("page-text"),
    mic: $("toggle-mic"),
    cam: $("toggle-cam"),
    hand: $("toggle-hand"),
    error: $("group-error"),
    people: $("people-list"),
    peopleCount: $("people-count"),
    chatLog: $("chat-log"),
    chatForm: $("chat-form"),
    chatTo: $("chat-to"),
    chatText: $("chat-text"),
    speaking: $("group-speaking"),
    unmute: $("unmute-request"),
  };

  /* -- state ---------------------------------------------------------------------------------- */
  const state = {
    phase: "connecting", /* waiting | in_call | ended | invalid | left */
    view: {},
    participants: [],
    you: null,
    member: null,
    privacy: {},
    spotlight: { id: null, peers: [] },
    hands: [],
    lobby: { waiting: [], admitted: 0, capacity: 0 },
    locked: false,
    speaker: null,
    layout: "gallery",
    page: 0,
    endsAt: null,
    raised: false,
    breakout: null /* set by group-breakouts.js while in a breakout room: {name, wire, to} */,
  };
  let wire = null;
  let media = null;
  let audioOn = true;
  let videoOn = true;
  let previewStream = null;
  let waitingSince = Date.now();
  const listeners = new Map();

  function fmt(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, (_, key) => (key in values ? values[key] : ""));
  }

  function announce(text) {
    if (!el.announce) return;
    el.announce.textContent = "";
    /* a new text node each time, so screen readers speak a repeated message again */
    window.setTimeout(() => (el.announce.textContent = text), 50);
  }

  function showError(text) {
    if (!el.error) return;
    el.error.textContent = text || "";
    el.error.hidden = !text;
  }

  function emit(type, body) {
    for (const fn of listeners.get(type) || []) {
      try {
        fn(body);
      } catch (error) {
        console.warn("waitroom: group listener failed", type, error);
      }
    }
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
  }

  /* -- token ---------------------------------------------------------------------------------- */
  function loadToken() {
    if (MODERATOR) return null;
    try {
      if (page.dataset.token) {
        window.sessionStorage.setItem(STORE_KEY, page.dataset.token);
        window.history.replaceState(null, "", page.dataset.homeUrl);
      }
      return window.sessionStorage.getItem(STORE_KEY);
    } catch (error) {
      return page.dataset.token || null;
    }
  }

  function forget() {
    try {
      window.sessionStorage.removeItem(STORE_KEY);
    } catch (error) {
      /* nothing stored */
    }
  }

  /* -- sections -------------------------------------------------------------------------------- */
  function show(section) {
    for (const s of [el.waiting, el.invalid, el.ended, el.left, el.call]) {
      if (s) s.hidden = s !== section;
    }
  }

  function setPhase(phase, reason) {
    const before = state.phase;
    state.phase = phase;
    if (phase === "waiting") {
      stopMedia();
      show(el.waiting);
      if (before !== "waiting") waitingSince = Date.now();
      if (el.waitingStatus) el.waitingStatus.textContent = reason === "sent_back" ? S.sent_back : S.waiting;
      startPreview();
    } else if (phase === "in_call") {
      stopPreview();
      show(el.call);
      if (before === "waiting") announce(S.admitted);
      render();
      startMedia();
    } else if (phase === "ended") {
      forget();
      stopMedia();
      stopPreview();
      show(el.ended);
      const text = reason === "removed" ? S.removed : reason === "time_limit" ? S.ended_time_limit : S.ended;
      if (el.endedText && text) el.endedText.textContent = text;
      if (el.ending) el.ending.hidden = true;
      if (wire) wire.close();
      emit("ended", { reason });
    } else if (phase === "invalid") {
      forget();
      stopMedia();
      stopPreview();
      show(el.invalid);
      if (el.invalidText) el.invalidText.textContent = reason || S.invalid;
      if (wire) wire.close();
    } else if (phase === "left") {
      stopMedia();
      show(el.left);
    }
  }

  /* -- the room's view ------------------------------------------------------------------------- */
  function applyView(body) {
    if (!body || state.phase === "left") return;
    state.view = { ...state.view, ...body };
    if (body.you) state.you = body.you;
    if (body.member) state.member = body.member;
    if (body.privacy) state.privacy = body.privacy;
    if (Array.isArray(body.participants) && !state.breakout) state.participants = body.participants;
    if ("spotlight" in body) setSpotlight({ id: body.spotlight, peers: body.spotlight_peers || peersOf(body.spotlight) });
    if (Array.isArray(body.lobby)) {
      applyLobby({ waiting: body.lobby, admitted: body.admitted, capacity: body.capacity });
    } else if (body.lobby) {
      applyLobby(body.lobby);
    } else if (MODERATOR && "admitted" in body) {
      applyLobby({ waiting: state.lobby.waiting, admitted: body.admitted, capacity: body.capacity });
    }
    if (body.hands) applyHands(body.hands);
    if ("locked" in body) applyLocked(body.locked);
    if (body.ends_at) state.endsAt = body.ends_at;
    if (body.title && $("group-title")) $("group-title").textContent = body.title;
    emit("view", body);
    if (body.state === "ended") {
      setPhase("ended", body.reason);
    } else if (body.state === "waiting" && !MODERATOR) {
      setPhase("waiting", body.reason);
    } else if (body.state === "in_call" || (MODERATOR && body.state === "waiting")) {
      if (state.phase !== "in_call") setPhase("in_call");
      else render();
    } else {
      render();
    }
  }

  function peersOf(member) {
    if (!member) return [];
    return state.participants.filter((p) => p.member === member).map((p) => p.id);
  }

  function setSpotlight(spot) {
    state.spotlight = { id: spot.id || null, peers: spot.peers || [] };
  }

  function nameOf(member) {
    const p = state.participants.find((x) => x.member === member);
    if (p) return p.name;
    const w = state.lobby.waiting.find((x) => x.id === member);
    return w ? w.name : "";
  }

  /* -- tiles, gallery pages, speaker view ------------------------------------------------------ */
  function pinnedPeers() {
    const pins = new Set(state.spotlight.peers || []);
    if (!MODERATOR && !state.breakout) {
      for (const p of state.participants) if (p.kind === "staff") pins.add(p.id);
    }
    return pins;
  }

  function pageSize() {
    return window.innerWidth < NARROW_PX ? PAGE_SIZE_NARROW : PAGE_SIZE_WIDE;
  }

  function mainPeer(others) {
    const spot = (state.spotlight.peers || []).find((id) => others.some((p) => p.id === id));
    if (spot) return spot;
    if (state.speaker && others.some((p) => p.id === state.speaker)) return state.speaker;
    const staff = others.find((p) => p.kind === "staff");
    if (!MODERATOR && staff) return staff.id;
    return others.length ? others[0].id : null;
  }

  /* Tiles: everyone in this call, except (main call) those now in a breakout room: their media
   * is there, the people list says which room. */
  function inCall() {
    return state.breakout ? state.participants : state.participants.filter((p) => !p.breakout);
  }

  function renderTiles() {
    const people = inCall();
    const pins = pinnedPeers();
    const seen = new Set();
    for (const p of people) {
      seen.add(p.id);
      let tile = el.tiles.querySelector('[data-peer="' + CSS.escape(p.id) + '"]');
      if (!tile) {
        tile = document.createElement("figure");
        tile.className = "tile";
        tile.dataset.peer = p.id;
        const video = document.createElement("video");
        video.autoplay = true;
        video.playsInline = true;
        if (p.id === state.you) {
          video.muted = true;
          tile.classList.add("tile--self");
          if (media && media.localStream) video.srcObject = media.localStream;
        } else if (media && media.peerStreams && media.peerStreams.get(p.id)) {
          video.srcObject = media.peerStreams.get(p.id);
        }
        const caption = document.createElement("figcaption");
        tile.append(video, caption);
        el.tiles.append(tile);
      }
      if (p.member) tile.dataset.member = p.member;
      const self = p.id === state.you;
      const bits = [self ? S.you + (p.name ? " (" + p.name + ")" : "") : p.name || ""];
      if (p.kind === "staff" && !self) bits[0] = bits[0] + " · " + S.moderator;
      if (p.audio === false) bits.push(S.muted);
      if (handOf(p.member) || p.hand) bits.push(S.hand);
      if (state.speaker === p.id) bits.push(S.speaking);
      tile.querySelector("figcaption").textContent = bits.filter(Boolean).join(" · ");
      tile.classList.toggle("tile--speaking", state.speaker === p.id);
      tile.classList.toggle("tile--no-video", p.video === false);
      tile.classList.toggle("tile--spotlight", (state.spotlight.peers || []).includes(p.id));
      tile.dataset.pinned = pins.has(p.id) && !self ? "true" : "false";
    }
    for (const tile of Array.from(el.tiles.children)) {
      if (!seen.has(tile.dataset.peer)) tile.remove();
    }
    layoutTiles();
  }

  function layoutTiles() {
    const others = inCall().filter((p) => p.id !== state.you);
    const tileOf = (id) => el.tiles.querySelector('[data-peer="' + CSS.escape(id) + '"]');
    const selfTile = state.you ? tileOf(state.you) : null;
    el.tiles.classList.toggle("group-tiles--speaker", state.layout === "speaker");
    el.tiles.classList.toggle("group-tiles--gallery", state.layout !== "speaker");
    const ordered = orderForGallery(others);
    let visible;
    if (state.layout === "speaker") {
      const main = mainPeer(others);
      const strip = ordered.filter((p) => p.id !== main).slice(0, SPEAKER_STRIP);
      visible = new Set([main, ...strip.map((p) => p.id)].filter(Boolean));
      for (const p of ordered) {
        const t = tileOf(p.id);
        if (t) t.classList.toggle("tile--main", p.id === main);
      }
      if (el.pager) el.pager.hidden = true;
    } else {
      const size = pageSize();
      const pages = Math.max(1, Math.ceil(ordered.length / size));
      state.page = Math.min(state.page, pages - 1);
      visible = new Set(ordered.slice(state.page * size, state.page * size + size).map((p) => p.id));
      for (const t of el.tiles.children) t.classList.remove("tile--main");
      if (el.pager) {
        el.pager.hidden = pages <= 1;
        el.pageText.textContent = fmt(S.page, { page: state.page + 1, pages: pages });
        $("page-prev").disabled = state.page === 0;
        $("page-next").disabled = state.page >= pages - 1;
      }
    }
    /* DOM order follows the gallery order: the main tile first in the speaker view. */
    const order = state.layout === "speaker" ? [...visible] : ordered.map((p) => p.id);
    for (const id of order) {
      const t = tileOf(id);
      if (t) el.tiles.append(t);
    }
    for (const p of others) {
      const t = tileOf(p.id);
      if (t) t.hidden = !visible.has(p.id);
    }
    if (selfTile) {
      selfTile.hidden = false;
      el.tiles.append(selfTile);
    }
  }

  function orderForGallery(others) {
    const spot = new Set(state.spotlight.peers || []);
    const rank = (p) => (spot.has(p.id) ? 0 : p.kind === "staff" ? 1 : 2);
    return others
      .map((p, i) => ({ p, i }))
      .sort((a, b) => rank(a.p) - rank(b.p) || a.i - b.i)
      .map((x) => x.p);
  }

  function handOf(member) {
    return member ? state.hands.find((h) => h.id === member) : null;
  }

  /* -- people --------------------------------------------------------------------------------- */
  function renderPeople() {
    if (!el.people) return;
    const hidden = !MODERATOR && state.privacy.hide_participant_list;
    const list = hidden ? state.participants.filter((p) => p.kind === "staff" || p.id === state.you) : state.participants;
    $("people-hidden").hidden = !hidden;
    el.peopleCount.textContent = String(list.length);
    el.people.replaceChildren(
      ...list.map((p) => {
        const li = document.createElement("li");
        li.className = "group-person";
        li.dataset.peer = p.id;
        if (p.member) li.dataset.member = p.member;
        const who = document.createElement("span");
        who.className = "group-person__name";
        const self = p.id === state.you;
        who.textContent = (self ? S.you + " (" + p.name + ")" : p.name) + (p.kind === "staff" ? " · " + S.moderator : "");
        const status = document.createElement("span");
        status.className = "muted group-person__status";
        const bits = [];
        if (p.audio === false) bits.push(S.muted);
        if (p.video === false) bits.push(S.camera_off);
        const hand = handOf(p.member);
        if (hand) bits.push(S.hand + " (" + (state.hands.indexOf(hand) + 1) + ")");
        else if (p.hand) bits.push(S.hand);
        if (state.speaker === p.id) bits.push(S.speaking);
        if ((state.spotlight.peers || []).includes(p.id)) bits.push(S.spotlight);
        if (p.breakout && S.in_room) bits.push(fmt(S.in_room, { room: p.breakout.name || "" }));
        status.textContent = bits.join(", ");
        li.append(who, status);
        if (MODERATOR && p.kind !== "staff" && p.member && !state.breakout) li.append(personActions(p));
        return li;
      })
    );
    renderChatTargets();
  }

  function button(text, label, onClick, extra) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "button button--quiet button--small" + (extra ? " " + extra : "");
    b.textContent = text;
    if (label) b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }

  function personActions(p) {
    const box = document.createElement("div");
    box.className = "group-person__actions";
    const name = p.name;
    const act = (text, type, body) =>
      button(text, fmt(S.action_for, { action: text, name: name }), () => moderate(type, body));
    if (p.audio !== false) box.append(act(S.mute, "group.mute", { id: p.member }));
    else box.append(act(S.ask_unmute, "group.ask_unmute", { id: p.member }));
    if (p.video !== false) box.append(act(S.cam_off_action, "group.camera_off", { id: p.member }));
    const spotted = state.spotlight.id === p.member;
    box.append(act(spotted ? S.unspot : S.spot, "group.spotlight", { id: spotted ? null : p.member }));
    box.append(act(S.send_back, "group.send_back", { id: p.member }));
    box.append(
      button(S.remove, fmt(S.action_for, { action: S.remove, name: name }), () => {
        confirmThen(fmt(S.remove_title, { name: name }), S.remove_text, S.remove_yes, () =>
          moderate("group.remove", { id: p.member })
        );
      }, "button--danger-quiet")
    );
    return box;
  }

  async function moderate(type, body) {
    try {
      const reply = await request(type, body || {});
      showError("");
      return reply;
    } catch (error) {
      showError(error.detail);
      return null;
    }
  }

  /* -- lobby, hands, lock (moderator) ---------------------------------------------------------- */
  const selected = new Set();

  function applyLobby(lobby) {
    const before = new Set(state.lobby.waiting.map((w) => w.id));
    state.lobby = { waiting: lobby.waiting || [], admitted: lobby.admitted ?? state.lobby.admitted, capacity: lobby.capacity ?? state.lobby.capacity };
    if (!MODERATOR) return;
    const fresh = state.lobby.waiting.filter((w) => !before.has(w.id));
    if (fresh.length && before.size + fresh.length > 0 && state.phase === "in_call") {
      /* a few by name; a crowd arriving at once is one count, not sixty announcements */
      announce(
        fresh.length <= 3
          ? fresh.map((w) => fmt(S.arrived, { name: w.name })).join(" ")
          : fmt(S.arrived_many, { n: state.lobby.waiting.length })
      );
    }
    for (const id of Array.from(selected)) if (!state.lobby.waiting.some((w) => w.id === id)) selected.delete(id);
    renderLobby();
  }

  function renderLobby() {
    const list = $("lobby-list");
    if (!list) return;
    const now = Date.now() / 1000;
    const waiting = state.lobby.waiting;
    $("lobby-count").textContent = String(waiting.length);
    $("lobby-empty").hidden = waiting.length > 0;
    $("admit-all").disabled = waiting.length === 0;
    $("admit-selected").disabled = selected.size === 0;
    const left = Math.max(0, (state.lobby.capacity || 0) - (state.lobby.admitted || 0));
    $("lobby-capacity").textContent = fmt(S.capacity, { admitted: state.lobby.admitted || 0, capacity: state.lobby.capacity || 0, left: left });
    const admitted = $("group-admitted");
    if (admitted) admitted.textContent = String(state.lobby.admitted || 0);
    list.replaceChildren(
      ...waiting.map((w) => {
        const li = document.createElement("li");
        li.className = "group-waiter";
        li.dataset.member = w.id;
        const check = document.createElement("input");
        check.type = "checkbox";
        check.id = "select-" + w.id;
        check.checked = selected.has(w.id);
        check.setAttribute("aria-label", fmt(S.select_one, { name: w.name }));
        check.addEventListener("change", () => {
          if (check.checked) selected.add(w.id);
          else selected.delete(w.id);
          $("admit-selected").disabled = selected.size === 0;
        });
        const who = document.createElement("span");
        who.className = "group-waiter__name";
        who.textContent = w.name;
        const about = document.createElement("span");
        about.className = "muted group-waiter__about";
        const bits = [w.registered ? S.registered : S.not_registered];
        if (w.returned) bits.push(S.returned);
        bits.push(fmt(S.waiting_since, { time: duration(now - (w.since || now)) }));
        about.textContent = bits.join(" · ");
        about.dataset.since = String(w.since || now);
        const admitOne = button(S.admit, fmt(S.admit_one, { name: w.name }), () => admit([w.id]));
        li.append(check, who, about, admitOne);
        return li;
      })
    );
  }

  async function admit(ids) {
    const box = $("lobby-error");
    try {
      const reply = await request(ids ? "group.admit" : "group.admit_all", ids ? { ids: ids } : {});
      box.hidden = true;
      for (const id of ids || []) selected.delete(id);
      const names = (reply.admitted || []).map(nameOf).filter(Boolean);
      if (names.length) announce(fmt(S.admitted, { names: names.join(", ") }));
    } catch (error) {
      box.textContent = error.detail;
      box.hidden = false;
    }
  }

  function applyHands(hands) {
    state.hands = hands || [];
    if (!MODERATOR) return;
    const list = $("hands-list");
    if (!list) return;
    $("hands-count").textContent = String(state.hands.length);
    $("hands-empty").hidden = state.hands.length > 0;
    list.replaceChildren(
      ...state.hands.map((h) => {
        const li = document.createElement("li");
        li.dataset.member = h.id;
        const who = document.createElement("span");
        who.textContent = h.name;
        li.append(who, button(S.lower, fmt(S.action_for, { action: S.lower, name: h.name }), () => moderate("group.hand_lower", { id: h.id })));
        return li;
      })
    );
  }

  function applyLocked(locked) {
    state.locked = Boolean(locked);
    const b = $("lock");
    if (!b) return;
    b.setAttribute("aria-pressed", String(state.locked));
    b.textContent = state.locked ? S.unlock : S.lock;
  }

  /* -- chat ----------------------------------------------------------------------------------- */
  function renderChatTargets() {
    if (!el.chatTo) return;
    const keep = el.chatTo.value;
    const options = [["", S.everyone]];
    const privateOk = MODERATOR || !(state.privacy.no_private_chat || state.privacy.hide_participant_list);
    for (const p of state.participants) {
      if (p.id === state.you || !p.member || p.member === state.member) continue;
      if (p.kind !== "staff" && !privateOk) continue;
      if (options.some((o) => o[0] === p.member)) continue;
      options.push([p.member, fmt(S.private_to, { name: p.name })]);
    }
    el.chatTo.replaceChildren(
      ...options.map(([value, text]) => {
        const o = document.createElement("option");
        o.value = value;
        o.textContent = text;
        return o;
      })
    );
    el.chatTo.value = options.some((o) => o[0] === keep) ? keep : "";
  }

  function addChat(line, privateLabel) {
    const li = document.createElement("li");
    if (privateLabel) li.className = "chat__private";
    const time = document.createElement("time");
    const at = line.at ? new Date(line.at * 1000) : new Date();
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const who = document.createElement("strong");
    who.textContent = privateLabel || line.from || "";
    li.append(time, " ", who, ": ", document.createTextNode(line.text || ""));
    el.chatLog.append(li);
    el.chatLog.scrollTop = el.chatLog.scrollHeight;
  }

  /* -- media ---------------------------------------------------------------------------------- */
  function iceOptions() {
    try {
      return JSON.parse(page.dataset.ice || "{}");
    } catch (error) {
      return {};
    }
  }

  /* Where media and room frames go now: the main call, or the breakout room's own socket. */
  function target() {
    if (state.breakout) return { wire: state.breakout.wire, to: state.breakout.to };
    return { wire: wire, to: MODERATOR ? "room/" + page.dataset.room : undefined };
  }

  function request(type, body) {
    const t = target();
    if (!t.wire) return Promise.reject({ code: "offline", detail: S.offline });
    return t.wire.request(type, body || {}, t.to);
  }

  function mainRequest(type, body) {
    if (!wire) return Promise.reject({ code: "offline", detail: S.offline });
    return wire.request(type, body || {}, MODERATOR ? "room/" + page.dataset.room : undefined);
  }

  /* media.layers {active: [rid]}: the simulcast layers of ours that someone shows (media.js). */
  function applyLayers(body) {
    if (media && media.setLayers && Array.isArray(body.active)) media.setLayers(body.active);
  }

  function startMedia() {
    /* media is {pending} while a start runs: one start at a time, for the call we are in now */
    if (media || state.phase !== "in_call" || !page.dataset.mediaUrl) return;
    const t = target();
    if (!t.wire || !t.wire.ready) return;
    const mine = { cancelled: false };
    media = { pending: mine };
    import(page.dataset.mediaUrl)
      .then((module) =>
        module.joinMedia({
          signal: (type, body) => t.wire.request(type, body, t.to),
          ...iceOptions(),
          tiles: el.tiles,
          self: state.you,
          simulcast: page.dataset.simulcast === "1",
          onRemote({ stream, peerId }) {
            const tile = peerId && el.tiles.querySelector('[data-peer="' + CSS.escape(peerId) + '"]');
            if (tile) tile.querySelector("video").srcObject = stream;
          },
          onRemoteGone({ peerId }) {
            const tile = peerId && el.tiles.querySelector('[data-peer="' + CSS.escape(peerId) + '"]');
            if (tile) tile.querySelector("video").srcObject = null;
          },
        })
      )
      .then((call) => {
        if (!media || media.pending !== mine) {
          call.leave();
          return;
        }
        media = call;
        call.setMicrophone(audioOn);
        call.setCamera(videoOn);
        const self = state.you && el.tiles.querySelector('[data-peer="' + CSS.escape(state.you) + '"] video');
        if (self) self.srcObject = call.localStream;
        if (pendingSlots) call.setSlots(pendingSlots.slots || {}, pendingSlots.audio, pendingSlots.seq);
        pendingSlots = null;
        sendMediaState();
      })
      .catch((error) => {
        console.warn("waitroom: video is unavailable in this call", error);
        if (media && media.pending === mine) media = null;
        if (el.deviceCheck) el.deviceCheck.textContent = S.camera_failed;
      });
  }
  let pendingSlots = null;

  function stopMedia() {
    if (media && media.leave) media.leave();
    media = null;
    pendingSlots = null;
  }

  function sendMediaState() {
    const t = target();
    if (t.wire && t.wire.ready && state.phase === "in_call") {
      t.wire.request("media.state", { audio: audioOn, video: videoOn }, t.to).catch(() => {});
    }
  }

  function updateToggles() {
    el.mic.textContent = audioOn ? S.mic_on : S.mic_off;
    el.mic.setAttribute("aria-pressed", String(audioOn));
    el.cam.textContent = videoOn ? S.cam_on : S.cam_off;
    el.cam.setAttribute("aria-pressed", String(videoOn));
    if (media && media.setCamera) {
      media.setMicrophone(audioOn);
      media.setCamera(videoOn);
    }
    sendMediaState();
  }

  async function startPreview() {
    if (!el.preview || previewStream) return;
    try {
      previewStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      if (state.phase !== "waiting") {
        stopPreview();
        return;
      }
      el.preview.srcObject = previewStream;
      if (el.deviceCheck) el.deviceCheck.textContent = S.camera_ok;
    } catch (error) {
      if (el.deviceCheck) el.deviceCheck.textContent = S.camera_failed;
    }
  }

  function stopPreview() {
    if (previewStream) for (const t of previewStream.getTracks()) t.stop();
    previewStream = null;
    if (el.preview) el.preview.srcObject = null;
  }

  /* -- rendering ------------------------------------------------------------------------------ */
  function render() {
    if (state.phase !== "in_call") return;
    renderTiles();
    renderPeople();
    const speaking = state.participants.find((p) => p.id === state.speaker);
    if (el.speaking) el.speaking.textContent = speaking ? fmt(S.speaking_now, { name: speaking.name || "" }) : "";
    if (el.hand) {
      el.hand.textContent = state.raised ? S.lower : S.raise;
      el.hand.setAttribute("aria-pressed", String(state.raised));
    }
  }

  function tick() {
    if (state.phase === "waiting" && el.waitTimer) el.waitTimer.textContent = duration((Date.now() - waitingSince) / 1000);
    const left = $("group-time-left");
    if (left && state.endsAt) left.textContent = fmt(S.time_left, { time: duration(state.endsAt - Date.now() / 1000) });
    if (MODERATOR) {
      const now = Date.now() / 1000;
      for (const about of document.querySelectorAll(".group-waiter__about")) {
        const w = state.lobby.waiting.find((x) => x.id === about.parentElement.dataset.member);
        if (!w) continue;
        const bits = [w.registered ? S.registered : S.not_registered];
        if (w.returned) bits.push(S.returned);
        bits.push(fmt(S.waiting_since, { time: duration(now - (w.since || now)) }));
        about.textContent = bits.join(" · ");
      }
    }
    emit("tick", {});
  }

  /* -- the wire ------------------------------------------------------------------------------- */
  function wireEvents(w) {
    w.on("room.state", (body) => {
      if (state.breakout && body.kind === "breakout") return;
      applyView(body);
      /* The call started again (its node died; the server says "again") and forgot our media
       * peer: offer afresh rather than wait for the old connection to fail. */
      if (body.again === true && !state.breakout && media && media.leave) {
        stopMedia();
        startMedia();
      }
    });
    w.on("room.participants", (body) => {
      if (state.breakout) return;
      state.participants = body.participants || [];
      if (state.spotlight.id) state.spotlight.peers = peersOf(state.spotlight.id);
      render();
      startMedia();
    });
    w.on("chat.message", (body) => {
      if (!state.breakout) addChat(body);
    });
    w.on("chat.private", (body) => {
      const mine = body.from_id === state.member;
      const other = mine ? nameOf(body.to) || body.to_name || "" : body.from;
      addChat(body, fmt(mine ? S.private_to : S.private_from, { name: other }));
    });
    w.on("media.slots", (body) => {
      if (state.breakout) return;
      if (media && media.setSlots) media.setSlots(body.slots || {}, body.audio, body.seq);
      else pendingSlots = body;
    });
    /* The SFU says which of our simulcast layers anyone wants: Chrome stops sending the rest. */
    w.on("media.layers", (body) => {
      if (!state.breakout) applyLayers(body);
    });
    w.on("call.speaker", (body) => {
      if (state.breakout) return;
      state.speaker = body.peer || null;
      render();
    });
    w.on("media.closed", () => {
      if (state.breakout) return;
      stopMedia();
      startMedia();
    });
    w.on("group.lobby", applyLobby);
    w.on("group.hands", (body) => {
      const before = state.hands.map((h) => h.id);
      applyHands(body.hands);
      for (const h of state.hands) if (!before.includes(h.id)) announce(fmt(S.hand_up, { name: h.name }));
      render();
    });
    w.on("group.hand", (body) => {
      state.raised = Boolean(body.raised);
      if (!state.raised) announce(S.hand_lowered);
      render();
    });
    w.on("group.locked", (body) => {
      applyLocked(body.locked);
      announce(state.locked ? S.locked : S.unlocked);
    });
    w.on("group.spotlight", (body) => {
      setSpotlight(body);
      render();
    });
    w.on("group.mute", () => {
      audioOn = false;
      updateToggles();
      announce(S.muted_by);
    });
    w.on("group.unmute_request", () => {
      if (!el.unmute) return;
      $("unmute-text").textContent = S.unmute_request;
      el.unmute.hidden = false;
    });
    w.on("group.camera_off", () => {
      videoOn = false;
      updateToggles();
      announce(S.camera_off_by);
    });
    w.on("group.ending", (body) => {
      if (!el.ending) return;
      el.ending.textContent = fmt(S.ending, { minutes: Math.round((body.in_seconds || 0) / 60) });
      el.ending.hidden = false;
    });
  }

  async function enter() {
    try {
      const view = await wire.request("room.enter", {}, MODERATOR ? "room/" + page.dataset.room : undefined);
      applyView(view);
      if (!audioOn || !videoOn) updateToggles();
    } catch (error) {
      if (error.code === "offline" || error.code === "timeout") return;
      setPhase("invalid", error.code === "group_locked" ? S.locked : MODERATOR ? error.detail : S.invalid);
    }
  }

  function connect(token) {
    wire = WaitroomWire.connect({
      token: token || undefined,
      onStatus(status) {
        if (status === "offline" && state.phase === "in_call" && !state.breakout) {
          stopMedia();
          announce(S.offline);
        }
      },
      onReady() {
        enter();
      },
      onFatal(code, detail) {
        if (code === "ended") setPhase("ended", "ended");
        else if (state.phase !== "ended") setPhase("invalid", MODERATOR ? detail : S.invalid);
      },
    });
    wireEvents(wire);
  }

  /* -- controls ------------------------------------------------------------------------------- */
  el.mic.addEventListener("click", () => {
    audioOn = !audioOn;
    if (audioOn && el.unmute) el.unmute.hidden = true;
    updateToggles();
  });
  el.cam.addEventListener("click", () => {
    videoOn = !videoOn;
    updateToggles();
  });
  if (el.unmute) {
    $("unmute-now").addEventListener("click", () => {
      audioOn = true;
      el.unmute.hidden = true;
      updateToggles();
      el.mic.focus();
    });
    $("unmute-dismiss").addEventListener("click", () => {
      el.unmute.hidden = true;
      el.mic.focus();
    });
  }
  $("layout-gallery").addEventListener("click", () => setLayout("gallery"));
  $("layout-speaker").addEventListener("click", () => setLayout("speaker"));
  function setLayout(layout) {
    state.layout = layout;
    $("layout-gallery").setAttribute("aria-pressed", String(layout === "gallery"));
    $("layout-speaker").setAttribute("aria-pressed", String(layout === "speaker"));
    layoutTiles();
  }
  $("page-prev").addEventListener("click", () => {
    state.page = Math.max(0, state.page - 1);
    layoutTiles();
  });
  $("page-next").addEventListener("click", () => {
    state.page += 1;
    layoutTiles();
  });
  window.addEventListener("resize", () => {
    if (state.phase === "in_call") layoutTiles();
  });
  el.chatForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = el.chatText.value.trim();
    if (!text) return;
    const to = el.chatTo ? el.chatTo.value : "";
    try {
      if (to) await mainRequest("group.chat_private", { to: to, text: text });
      else await request("chat.send", { text: text });
      el.chatText.value = "";
      showError("");
    } catch (error) {
      showError(error.detail);
    }
  });

  const dialog = $("confirm-dialog");
  let confirmAction = null;
  function confirmThen(title, text, yes, action) {
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    confirmAction = action;
    dialog.returnValue = "";
    dialog.showModal();
  }
  dialog.addEventListener("close", () => {
    const action = confirmAction;
    confirmAction = null;
    if (dialog.returnValue === "yes" && action) action();
  });

  if (MODERATOR) {
    $("admit-all").addEventListener("click", () => admit(null));
    $("admit-selected").addEventListener("click", () => admit(Array.from(selected)));
    $("lock").addEventListener("click", () => moderate("group.lock", { locked: !state.locked }).then((r) => r && applyLocked(r.locked)));
    $("mute-all").addEventListener("click", async () => {
      const reply = await moderate("group.mute_all", {});
      if (reply) announce(fmt(S.muted_all, { n: reply.muted ?? 0 }));
    });
    $("end-all").addEventListener("click", () => {
      confirmThen(S.end_title, S.end_text, S.end_yes, async () => {
        try {
          await mainRequest("group.end", {});
        } catch (error) {
          if (error.code !== "offline") showError(error.detail);
          return;
        }
        setPhase("ended", "ended");
      });
    });
  } else {
    el.hand.addEventListener("click", async () => {
      const want = !state.raised;
      try {
        const reply = await mainRequest("group.hand", { raised: want });
        state.raised = Boolean(reply.raised);
        announce(state.raised ? S.hand_raised : S.hand_down);
        render();
      } catch (error) {
        showError(error.detail);
      }
    });
    $("leave-call").addEventListener("click", () => {
      confirmThen(S.leave_title, S.leave_text, S.leave_yes, async () => {
        emit("leaving", {});
        try {
          await mainRequest("room.leave", {});
        } catch (error) {
          /* closing the socket leaves too */
        }
        if (wire) wire.close();
        setPhase("left");
        $("rejoin").focus();
      });
    });
    $("rejoin").addEventListener("click", () => window.location.reload());
  }

  /* -- for group-breakouts.js ----------------------------------------------------------------- */
  window.WaitroomGroup = {
    role: role,
    strings: S,
    state: state,
    fmt: fmt,
    announce: announce,
    showError: showError,
    duration: duration,
    on(type, fn) {
      if (!listeners.has(type)) listeners.set(type, []);
      listeners.get(type).push(fn);
    },
    wire: () => wire,
    mainRequest: mainRequest,
    request: request,
    roomTo: () => (MODERATOR ? "room/" + page.dataset.room : undefined),
    iceOptions: iceOptions,
    /* Switch the tiles and media to another call (a breakout room: its socket and `to`), or back
     * to the main call (null). The caller of this sets state.participants/you for the room. */
    switchCall(breakout) {
      stopMedia();
      state.breakout = breakout;
      state.speaker = null;
      state.page = 0;
      el.tiles.replaceChildren();
      if (!breakout) {
        state.participants = [];
        mainRequest("room.enter", {})
          .then((view) => {
            applyView(view);
            startMedia();
          })
          .catch(() => {});
        return;
      }
      render();
      startMedia();
    },
    setParticipants(participants, you) {
      state.participants = participants || [];
      if (you) state.you = you;
      render();
      startMedia();
    },
    setSlots(body) {
      if (media && media.setSlots) media.setSlots(body.slots || {}, body.audio, body.seq);
      else pendingSlots = body;
    },
    setLayers: applyLayers,
    setSpeaker(peer) {
      state.speaker = peer || null;
      render();
    },
    addChat: addChat,
    render: render,
    restartMedia() {
      stopMedia();
      startMedia();
    },
  };

  /* -- start ---------------------------------------------------------------------------------- */
  setInterval(tick, TICK_MS);
  updateToggles();
  if (MODERATOR) {
    connect(null);
  } else {
    const token = loadToken();
    if (!token) {
      setPhase("invalid", S.invalid);
      return;
    }
    show(el.waiting);
    startPreview();
    connect(token);
  }
})();
