/* The room page for callers (waiting then call), invited guests and staff: one script, three roles.
 *
 * Callers: the token arrives in the page once (data-token) after the arrival form; it is moved to
 * localStorage for this area (so a closed tab comes back within the grace period) and the address
 * bar is rewritten to the secret-free /w/<slug>/wait. Guests keep theirs in sessionStorage.
 * Staff are recognised by their session cookie and enter room/<id> explicitly.
 *
 * Video: once someone from the clinic is in the call, media.js (the media engineer's ES module,
 * data-media-url) is imported and joinMedia() signals over this wire; remote streams go into the
 * participant tiles. Without it, or without an SFU, the call still works: tiles, toggles, chat.
 */
(function () {
  "use strict";

  const page = document.getElementById("room-page");
  if (!page) return;
  const role = page.dataset.role;
  /* A guest set aside by "hold" re-enters the room this soon, to hear when the call resumes. */
  const REENTER_MS = 500;
  /* When the server closes our media (its worker restarted, say) the page offers again, but at
   * most this many times per window, so a peer the server keeps refusing does not loop. */
  const REOFFER_LIMIT = 3;
  const REOFFER_WINDOW_MS = 60000;
  const S = JSON.parse(document.getElementById("wr-strings").textContent);
  /* In a caller's room media starts once someone from the clinic is there; a meeting room's
   * guests and members talk among themselves (data-media-without-staff="1"). */
  const MEDIA_WITHOUT_STAFF = page.dataset.mediaWithoutStaff === "1";
  const $ = (id) => document.getElementById(id);

  const el = {
    waiting: $("waiting"),
    status: $("waiting-status"),
    timer: $("wait-timer"),
    preview: $("preview"),
    deviceCheck: $("device-check"),
    invalid: $("invalid"),
    invalidText: $("invalid-text"),
    call: $("call"),
    note: $("call-note"),
    tiles: $("tiles"),
    ended: $("ended"),
    left: $("left"),
    chatLog: $("chat-log"),
    chatForm: $("chat-form"),
    chatText: $("chat-text"),
    mic: $("toggle-mic"),
    cam: $("toggle-cam"),
    error: $("call-error"),
    start: $("session-start"),
    startButton: $("start-session"),
    startText: $("session-start-text"),
    callNotice: $("call-notice"),
  };

  const state = { room: null, state: null, joining: null, participants: [], you: null, area: null, ondemand: null };
  let localStream = null;
  let wire = null;
  let media = null;
  /* A media.slots that came while the media plane was still starting. The answer to our offer
   * carries slot maps too; the server numbers every map (seq) and the newer one wins, whichever
   * came first (a reply and a push may swap places on the way). */
  let slotsWhileStarting = null;
  let audioOn = true;
  let videoOn = true;
  let reoffers = [];
  let speaker = null; /* the call's dominant speaker (call.speaker), shown on their tile */
  let left = false; /* the person chose Leave (callers and guests) */

  /* -- identity and storage ------------------------------------------------------------------ */
  const visitKey = role === "caller" ? "waitroom.visit." + page.dataset.slug : null;
  const GUEST_KEY = "waitroom.guest";

  function loadToken() {
    try {
      if (role === "caller") {
        if (page.dataset.token) {
          const visit = { token: page.dataset.token, since: Date.now() };
          window.localStorage.setItem(visitKey, JSON.stringify(visit));
          window.history.replaceState(null, "", page.dataset.waitUrl);
          return visit;
        }
        return JSON.parse(window.localStorage.getItem(visitKey) || "null");
      }
      if (role === "guest") {
        if (page.dataset.token) {
          window.sessionStorage.setItem(GUEST_KEY, page.dataset.token);
          window.history.replaceState(null, "", page.dataset.homeUrl);
        }
        const token = window.sessionStorage.getItem(GUEST_KEY);
        return token ? { token: token, since: Date.now() } : null;
      }
    } catch (error) {
      if (page.dataset.token) return { token: page.dataset.token, since: Date.now() };
    }
    return null;
  }

  function forget() {
    try {
      if (visitKey) window.localStorage.removeItem(visitKey);
      if (role === "guest") window.sessionStorage.removeItem(GUEST_KEY);
    } catch (error) {
      /* nothing stored */
    }
  }

  /* -- rendering ------------------------------------------------------------------------------- */
  function show(section) {
    for (const s of [el.waiting, el.invalid, el.call, el.ended, el.left]) {
      if (s) s.hidden = s !== section;
    }
  }

  function showError(text) {
    if (!el.error) return;
    el.error.textContent = text || "";
    el.error.hidden = !text;
  }

  function render() {
    if (state.state === "ended") {
      forget();
      show(el.ended);
      stopMedia();
      if (wire) wire.close();
      return;
    }
    const staffHere = state.participants.some((p) => p.kind === "staff");
    /* On-demand (issue 14): claimed, both sides see the call view and Start Session first. */
    const gated = Boolean(state.ondemand && state.ondemand.state === "claimed");
    if (role === "caller" && state.state !== "in_call" && !gated) {
      if (stopMediaPlane()) {
        localStream = null;
        startDevices(); /* back in the waiting room: the preview comes back */
      }
      show(el.waiting);
      if (el.status && state.state === "on_hold") el.status.textContent = S.on_hold;
      return;
    }
    if (role === "caller" && state.state === "in_call" && !staffHere) {
      /* A provider pressed Join: tell the caller, keep the waiting view until they arrive. */
      show(el.waiting);
      if (el.status && state.joining) el.status.textContent = fmt(S.joining, { name: state.joining });
      return;
    }
    show(el.call);
    renderTiles();
    renderStart(gated && state.state !== "in_call");
    if (el.note) {
      const paused = state.state === "on_hold";
      const alone = state.participants.length < 2;
      el.note.hidden = !(alone || paused);
      el.note.textContent = paused ? S.paused : alone ? S.waiting_for : "";
    }
  }

  /* Start Session (on-demand): the same button on both sides; the server forwards no media until
   * both have pressed it, and this page starts its media only once the call is in_call. */
  function renderStart(gated) {
    if (!el.start) return;
    el.start.hidden = !gated;
    if (!gated) return;
    const started = state.ondemand.started || {};
    const mine = role === "staff" ? started.staff : started.patient;
    el.startButton.disabled = Boolean(mine);
    el.startText.textContent = mine ? S.start_waiting : S.start_prompt;
  }

  function fmt(text, values) {
    return text.replace(/%\((\w+)\)s/g, (_, key) => (key in values ? values[key] : ""));
  }

  function renderTiles() {
    const seen = new Set();
    for (const p of state.participants) {
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
          if (localStream) video.srcObject = localStream;
        }
        const caption = document.createElement("figcaption");
        tile.append(video, caption);
        el.tiles.append(tile);
      }
      const caption = tile.querySelector("figcaption");
      const name = p.id === state.you ? S.you + " (" + p.name + ")" : p.name;
      const speaking = p.id === speaker;
      caption.textContent =
        name + (speaking ? " · " + S.speaking : "") + (p.audio ? "" : " · " + S.mic_off) + (p.video ? "" : " · " + S.cam_off);
      tile.classList.toggle("tile--no-video", !p.video);
      /* The media plane (last-N video) keeps a speaking tile and the clinic's tiles forwarded. */
      tile.classList.toggle("tile--speaking", speaking);
      tile.dataset.pinned = String(p.kind === "staff" && p.id !== state.you);
    }
    for (const tile of Array.from(el.tiles.children)) {
      if (!seen.has(tile.dataset.peer)) tile.remove();
    }
  }

  function addChat(message) {
    const item = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = message.peer === state.you ? S.you : message.from;
    const at = document.createElement("time");
    const when = new Date((message.at || Date.now() / 1000) * 1000);
    at.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("span");
    text.textContent = message.text;
    item.append(who, " ", at, " ", text);
    el.chatLog.append(item);
    el.chatLog.scrollTop = el.chatLog.scrollHeight;
  }

  /* -- devices --------------------------------------------------------------------------------- */
  async function startDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      if (el.deviceCheck) el.deviceCheck.textContent = S.camera_failed;
      return;
    }
    try {
      localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      const ok = localStream.getVideoTracks().length > 0 && localStream.getAudioTracks().length > 0;
      if (el.deviceCheck) el.deviceCheck.textContent = ok ? S.camera_ok : S.camera_failed;
      if (!videoOn) releaseCamera(); /* turned off before (a re-offer after a worker restart) */
      showSelf();
    } catch (error) {
      if (el.deviceCheck) el.deviceCheck.textContent = S.camera_failed;
    }
  }

  function showSelf() {
    if (el.preview) el.preview.srcObject = localStream;
    const self = state.you && el.tiles.querySelector('[data-peer="' + CSS.escape(state.you) + '"] video');
    if (self) self.srcObject = localStream;
  }

  /* Camera off releases the camera, so its light goes out: a disabled track keeps the device
   * open, and a patient who turns the camera off expects it to be off. On asks for it again. */
  function releaseCamera() {
    if (!localStream) return;
    for (const track of localStream.getVideoTracks()) {
      track.stop();
      localStream.removeTrack(track);
    }
  }

  async function reacquireCamera() {
    if (!localStream || localStream.getVideoTracks().length > 0) return;
    try {
      const fresh = await navigator.mediaDevices.getUserMedia({ video: true });
      const [track] = fresh.getVideoTracks();
      if (!videoOn || !localStream) {
        track.stop(); /* switched off again (or the call ended) while we asked */
        return;
      }
      localStream.addTrack(track);
      showSelf();
    } catch (error) {
      if (el.deviceCheck) el.deviceCheck.textContent = S.camera_failed;
    }
  }

  function stopMedia() {
    stopMediaPlane();
    if (localStream) localStream.getTracks().forEach((t) => t.stop());
  }

  /* The media plane (web/static/js/media.js, an ES module) is imported on first use; remote
   * streams go into the participant tiles. Without it (or without an SFU) the call still works. */
  function findRemoteTile(peerId) {
    if (peerId) {
      const tile = el.tiles.querySelector('[data-peer="' + CSS.escape(peerId) + '"]');
      if (tile) return tile;
    }
    for (const tile of el.tiles.querySelectorAll("figure.tile:not(.tile--self)")) {
      if (!tile.querySelector("video").srcObject) return tile;
    }
    return null;
  }

  function startMediaPlane() {
    if (media || !page.dataset.mediaUrl || !window.RTCPeerConnection) return;
    media = { pending: true };
    watchMedia("new");
    import(page.dataset.mediaUrl)
      .then((module) =>
        module.joinMedia({
          signal: (type, body) => wire.request(type, body, roomAddress()),
          stream: localStream || undefined,
          ...iceOptions() /* TURN servers and policy (data-ice) */,
          onConnectionState: watchMedia,
          tiles: el.tiles /* media.view: which tiles show whom, and how large */,
          self: state.you,
          simulcast: page.dataset.simulcast === "1" /* large calls: three layers (docs/media.md) */,
          onRemote({ stream, peerId }) {
            const tile = findRemoteTile(peerId);
            if (tile) tile.querySelector("video").srcObject = stream;
          },
          onRemoteGone({ peerId }) {
            const tile = peerId && findRemoteTile(peerId);
            if (tile) tile.querySelector("video").srcObject = null;
          },
        })
      )
      .then((call) => {
        if (media && media.pending) {
          media = call;
          call.setMicrophone(audioOn);
          call.setCamera(videoOn);
          const late = slotsWhileStarting;
          slotsWhileStarting = null;
          if (late) call.setSlots(late.slots || {}, late.audio, late.seq);
        } else {
          call.leave();
        }
      })
      .catch((error) => {
        console.warn("waitroom: video is unavailable in this call", error);
        if (media && media.pending) media = null; /* a later media.closed may try again */
      });
  }

  /* Media that does not connect (no UDP, TCP or TURN path works) gets a notice with what to try
   * this long after the first attempt, whatever re-offers happen meanwhile; connected hides it. */
  const MEDIA_TROUBLE_MS = 25000;
  let mediaTrouble = null;
  function iceOptions() {
    try {
      return JSON.parse(page.dataset.ice || "{}");
    } catch (error) {
      return {};
    }
  }
  function watchMedia(connection) {
    const notice = $("media-trouble");
    if (connection === "connected") {
      clearTimeout(mediaTrouble);
      mediaTrouble = null;
      if (notice) notice.hidden = true;
    } else if (mediaTrouble === null) {
      mediaTrouble = setTimeout(() => {
        if (notice && state.state === "in_call") {
          notice.textContent = S.media_trouble;
          notice.hidden = false;
        }
      }, MEDIA_TROUBLE_MS);
    }
  }

  /* ... and when ours works but a small call's other participant (camera or microphone on) sends
   * us nothing for as long, we say so too: their own page tells them what to try. */
  const REMOTE_CHECK_MS = 5000;
  const REMOTE_CHECK_MAX_PEOPLE = 5; /* a larger call forwards only some of its videos */
  const remoteSilentSince = new Map();
  function checkRemoteMedia() {
    const notice = $("media-trouble-other");
    if (!notice) return;
    const ours = media && media.pc && media.pc.connectionState === "connected";
    const now = Date.now();
    const silent = [];
    for (const p of state.participants) {
      const video = el.tiles.querySelector('[data-peer="' + CSS.escape(p.id) + '"] video');
      const arriving = video && video.srcObject && video.srcObject.getTracks().some((t) => !t.muted);
      if (!ours || p.id === state.you || !(p.audio || p.video) || arriving) {
        remoteSilentSince.delete(p.id);
      } else if (!remoteSilentSince.has(p.id)) {
        remoteSilentSince.set(p.id, now);
      } else if (now - remoteSilentSince.get(p.id) >= MEDIA_TROUBLE_MS) {
        silent.push(p.name);
      }
    }
    const shown =
      state.state === "in_call" && state.participants.length <= REMOTE_CHECK_MAX_PEOPLE && silent.length > 0;
    notice.hidden = !shown;
    if (shown) notice.textContent = fmt(S.media_trouble_other, { name: silent.join(", ") });
  }
  setInterval(checkRemoteMedia, REMOTE_CHECK_MS);

  /* The SFU closed our connection (not we): leave what is left of it and offer afresh. */
  function reofferMedia() {
    const now = Date.now();
    reoffers = reoffers.filter((at) => now - at < REOFFER_WINDOW_MS);
    if (reoffers.length >= REOFFER_LIMIT) {
      console.warn("waitroom: video stopped and could not be restarted");
      return;
    }
    reoffers.push(now);
    if (stopMediaPlane()) localStream = null; /* leave() stopped our camera */
    startDevices().finally(() => {
      if (mediaWanted()) {
        startMediaPlane();
      }
    });
  }

  function stopMediaPlane() {
    const had = media && media.leave;
    if (had) media.leave(); /* this stops our camera too */
    media = null;
    return Boolean(had);
  }

  function updateToggles() {
    el.mic.textContent = audioOn ? S.mic_on : S.mic_off;
    el.mic.setAttribute("aria-pressed", String(audioOn));
    el.cam.textContent = videoOn ? S.cam_on : S.cam_off;
    el.cam.setAttribute("aria-pressed", String(videoOn));
    if (localStream) {
      localStream.getAudioTracks().forEach((t) => (t.enabled = audioOn));
      localStream.getVideoTracks().forEach((t) => (t.enabled = videoOn));
    }
    if (media && media.setCamera) {
      /* Off means nothing is sent at all, not black frames or silence (media.js). */
      media.setMicrophone(audioOn);
      media.setCamera(videoOn);
    }
    if (wire && wire.ready && state.you) {
      wire.request("media.state", { audio: audioOn, video: videoOn }, roomAddress()).catch(() => {});
    }
  }

  /* -- the wire -------------------------------------------------------------------------------- */
  function roomAddress() {
    return role === "staff" ? "room/" + page.dataset.room : undefined;
  }

  /* The area the caller waits in, as the room says (it changes with a transfer). */
  function showArea(name) {
    if (!name || name === state.area) return;
    const title = $("waiting-title") || page.querySelector(".call__title");
    if (title) {
      title.textContent = fmt(role === "caller" ? S.waiting_for_area : S.consultation_area, {
        area: name,
      });
    }
    const sep = document.title.lastIndexOf(" · ");
    if (role === "caller" && sep > 0) document.title = name + document.title.slice(sep);
    state.area = name;
  }

  function applyState(body) {
    if (left) return; /* this person left: nothing more to show until they rejoin */
    if (body.state) state.state = body.state;
    if (body.area) showArea(body.area);
    if ("joining" in body) state.joining = body.joining;
    if ("estimate" in body) showEstimate(body.estimate);
    if (Array.isArray(body.participants)) state.participants = body.participants;
    /* The room no longer knows our media peer: it started again (after a crash, or on another
     * node; the server says "again"), or took this socket as a new entry (a new id for us).
     * Offer afresh instead of waiting for the old connection to fail, which takes Chrome about
     * half a minute. */
    const forgotten = body.again === true || Boolean(state.you && body.you && body.you !== state.you);
    if (body.you) state.you = body.you;
    if (forgotten && media && media.leave) reofferMedia();
    if (body.ondemand) state.ondemand = body.ondemand;
    if (page.dataset.ondemand === "1") {
      document.dispatchEvent(new CustomEvent("waitroom:ondemand", { detail: body }));
    }
    if (role === "staff" && body.state === "on_hold") {
      window.location.href = page.dataset.dashboardUrl;
      return;
    }
    if (role === "guest" && body.state === "on_hold" && !Array.isArray(body.participants)) {
      /* The room let go of us with the clinic: wait in the room for the call to resume. */
      stopMediaPlane();
      localStream = null;
      startDevices();
      state.participants = [];
      render();
      if (el.note) {
        el.note.hidden = false;
        el.note.textContent = S.paused;
      }
      setTimeout(() => {
        wire.request("room.enter", {}).then(applyState).catch(() => {});
      }, REENTER_MS);
      return;
    }
    render();
    if (mediaWanted()) {
      startMediaPlane();
    }
  }

  /* The typical wait in this area from its recent joins (never about anyone else); null: no
   * estimate yet, and nothing is shown. */
  function showEstimate(seconds) {
    const box = $("wait-estimate");
    if (!box) return;
    if (typeof seconds !== "number") {
      box.hidden = true;
      return;
    }
    const minutes = Math.round(seconds / 60);
    box.textContent = minutes < 1 ? S.estimate_soon : fmt(S.estimate, { minutes: minutes });
    box.hidden = false;
  }

  function mediaWanted() {
    return state.state === "in_call" &&
      (MEDIA_WITHOUT_STAFF || state.participants.some((p) => p.kind === "staff"));
  }

  function invalid(text) {
    forget();
    stopMedia();
    show(el.invalid);
    if (el.invalidText) el.invalidText.textContent = text;
  }

  /* Staff other than the provider who joined the caller are asked first (issue 15): the server
   * refuses join_confirm_needed with the question; on "OK" the page enters saying so, and
   * everyone in the call is told. On "Cancel" the page goes back to the console. */
  async function enterRoom() {
    try {
      return await wire.request("room.enter", {}, roomAddress());
    } catch (error) {
      if (error.code !== "join_confirm_needed") throw error;
      if (!window.confirm(error.detail)) {
        window.location.href = page.dataset.dashboardUrl;
        throw error;
      }
      return await wire.request("room.enter", { announce: true }, roomAddress());
    }
  }

  function connect(token) {
    wire = WaitroomWire.connect({
      token: token,
      onStatus(status) {
        if (el.note && status === "offline" && state.state !== "ended") {
          el.note.hidden = false;
          el.note.textContent = S.offline;
        }
      },
      async onReady() {
        try {
          const view = await enterRoom();
          applyState(view);
          if (!audioOn || !videoOn) updateToggles();
        } catch (error) {
          if (error.code === "offline" || error.code === "timeout") return;
          invalid(error.detail);
          wire.close();
        }
      },
      onFatal(code, detail) {
        if (code === "ended") {
          state.state = "ended";
          render();
        } else if (state.state !== "ended") {
          invalid(role === "staff" ? detail : S.invalid);
        }
      },
    });
    wire.on("room.state", applyState);
    wire.on("room.participants", (body) => {
      state.participants = body.participants || [];
      render();
      if (mediaWanted()) {
        startMediaPlane();
      }
    });
    wire.on("chat.message", addChat);
    /* Someone the whole call should know about came in (a colleague who confirmed "join"). */
    wire.on("call.notice", (body) => {
      if (!el.callNotice || body.kind !== "staff_joined") return;
      el.callNotice.textContent = fmt(S.staff_joined, { name: body.name || "" });
      el.callNotice.hidden = false;
    });
    /* The SFU says which participant fills which receive slot, so each stream lands on its tile. */
    /* The SFU says which of our simulcast layers anyone wants: Chrome stops sending the rest. */
    wire.on("media.layers", (body) => {
      if (media && media.setLayers && Array.isArray(body.active)) media.setLayers(body.active);
    });
    wire.on("media.slots", (body) => {
      if (media && media.setSlots) media.setSlots(body.slots || {}, body.audio, body.seq);
      else if (media) slotsWhileStarting = body;
    });
    /* Who speaks now: their tile is outlined and its caption (in the polite live region) says so. */
    wire.on("call.speaker", (body) => {
      speaker = body.peer || null;
      renderTiles();
    });
    wire.on("media.closed", () => {
      if (media && media.leave) reofferMedia();
    });
  }

  /* -- controls -------------------------------------------------------------------------------- */
  el.mic.addEventListener("click", () => {
    audioOn = !audioOn;
    updateToggles();
  });
  el.cam.addEventListener("click", async () => {
    videoOn = !videoOn;
    if (videoOn) await reacquireCamera();
    updateToggles(); /* off: the sender stops first ... */
    if (!videoOn) releaseCamera(); /* ... then the camera is let go */
  });
  el.chatForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = el.chatText.value.trim();
    if (!text || !wire) return;
    try {
      await wire.request("chat.send", { text: text }, roomAddress());
      el.chatText.value = "";
    } catch (error) {
      showError(error.detail);
    }
  });

  if (role === "staff") {
    const inviteForm = $("invite-form");
    $("invite-open").addEventListener("click", () => {
      inviteForm.hidden = !inviteForm.hidden;
      if (!inviteForm.hidden) $("invite-label").focus();
    });
    inviteForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const reply = await wire.request(
          "call.invite", { label: $("invite-label").value.trim() }, roomAddress()
        );
        $("invite-url").value = window.location.origin + reply.url;
        $("invite-result").hidden = false;
        $("invite-url").select();
        showError("");
      } catch (error) {
        showError(error.detail);
      }
    });
    $("invite-copy").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("invite-url").value);
      } catch (error) {
        $("invite-url").select();
        document.execCommand("copy");
      }
    });
    $("hold").addEventListener("click", async () => {
      try {
        await wire.request("call.hold", {}, roomAddress());
        window.location.href = page.dataset.dashboardUrl;
      } catch (error) {
        showError(error.detail);
      }
    });
    $("end-call").addEventListener("click", async () => {
      try {
        await wire.request("call.end", {}, roomAddress());
      } catch (error) {
        if (error.code !== "offline") showError(error.detail);
      }
      state.state = "ended";
      render();
    });
  }

  /* Leave (callers and guests), confirmed first: the same as closing the tab. The room sees the
   * person go (the area's list says "not connected"); a caller who does not come back within
   * the grace ends their visit, a guest may come back while the call goes on. */
  const leaveDialog = $("leave-dialog");
  if (leaveDialog) {
    $("leave-call").addEventListener("click", () => {
      leaveDialog.returnValue = "";
      leaveDialog.showModal(); /* focus goes to "Stay in the call" (autofocus) */
    });
    leaveDialog.addEventListener("close", async () => {
      if (leaveDialog.returnValue !== "leave") return;
      leaveDialog.returnValue = "";
      left = true;
      if (wire && wire.ready) {
        try {
          await wire.request("room.leave", {});
        } catch (error) {
          /* closing the socket below leaves the room too */
        }
      }
      stopMedia();
      localStream = null;
      if (wire) wire.close();
      show(el.left);
      $("rejoin").focus();
    });
    $("rejoin").addEventListener("click", () => window.location.reload());
  }

  if (el.startButton) {
    el.startButton.addEventListener("click", async () => {
      try {
        const reply = await wire.request("session.start", {}, roomAddress());
        if (state.ondemand && reply.started) state.ondemand.started = reply.started;
        render();
      } catch (error) {
        showError(error.detail);
      }
    });
  }
  /* The on-demand page script (ondemand-patient.js) sends its intake steps over this socket. */
  window.WaitroomRoom = {
    request: (type, body) => wire.request(type, body, roomAddress()),
    ondemand: () => state.ondemand,
  };

  /* -- start ----------------------------------------------------------------------------------- */
  function tick(since) {
    if (!el.timer) return;
    const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
    const m = Math.floor(seconds / 60);
    const s = String(seconds % 60).padStart(2, "0");
    el.timer.textContent = m >= 60 ? Math.floor(m / 60) + ":" + String(m % 60).padStart(2, "0") + ":" + s : m + ":" + s;
  }

  const visit = role === "staff" ? { token: null, since: Date.now() } : loadToken();
  if (!visit) {
    if (role === "caller") {
      window.location.replace(page.dataset.arriveUrl);
    } else {
      invalid(S.invalid);
    }
    return;
  }
  if (role === "caller") {
    show(el.waiting);
    tick(visit.since);
    setInterval(() => tick(visit.since), 1000);
  }
  startDevices().finally(() => {
    if (role !== "caller") updateToggles();
  });
  connect(visit.token);
})();
