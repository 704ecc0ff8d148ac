// Waitroom media: the browser side of a call through the Waitroom SFU.
//
// A self-contained ES module. The page supplies signalling; this module owns the camera, the
// microphone and one RTCPeerConnection. The SFU uses fixed slots (docs/media.md): the offer
// carries our own audio and video (sendonly) plus a fixed number of receive-only lines (9 video
// and 5 audio by default, or `slots` audio+video pairs), and the server fills slot n's video and
// slot n's audio with whichever participants it selects (all of them while everyone fits; in a
// large call the ones this page shows, then the recent speakers, and the loudest voices). The
// server's `media.slots` says who is where; no renegotiation ever happens.
//
// With `tiles` (an element whose children carry data-peer), the page's view is reported as
// `media.view` {shown: {peer: {w, h}}, pinned: [peer]} whenever tiles come, go, scroll in or out,
// or change size (debounced): that is what the server's last-N video follows. A tile with
// data-pinned="true" is pinned; `self` (our own peer id) is never reported.
//
//   import { joinMedia } from "/static/js/media.js";
//   const call = await joinMedia({
//     signal: async (type, body) => reply,   // "media.offer", {sdp} -> {sdp: answer}
//     iceServers: [{urls, username, credential}],       // optional TURN (the page's data-ice)
//     iceTransportPolicy: "all" | "relay",               // optional; "relay" = TURN only
//     onConnectionState: (state) => {},                  // RTCPeerConnection.connectionState
//     localVideo: document.querySelector("#me"),        // optional <video> for the self view
//     container: document.querySelector("#others"),     // optional: tiles are created here
//     onRemote: ({slot, stream, peerId}) => {},          // a slot started receiving media
//     onRemoteGone: ({slot, peerId}) => {},              // a slot went quiet / was freed
//   });
//   call.setCamera(false); call.setMicrophone(true);   // toggles; return the new state
//   call.setSlots({0: "peer-b", 1: "peer-c"}, {0: "peer-c"}, seq); // media.slots: video, audio maps
//                         // and the server's seq: a map older than the one applied is ignored
//   call.setLayers(["q", "h"]);  // media.layers: send only these simulcast layers (the lowest always)
//   await call.stats();   // {slots: {0: {framesDecoded, totalSamplesReceived, concealedSamples, peerId}}, ...}
//   call.leave();         // stops tracks, closes the connection (signal "media.leave" too)

export const DEFAULT_SLOTS = 5;
/** Receive lines by default: last-N video (docs/media.md) and the loudest voices plus pins. */
export const DEFAULT_VIDEO_SLOTS = 9;
export const DEFAULT_AUDIO_SLOTS = 5;
/** media.view: at most this often, and within the server's limits. */
const VIEW_DEBOUNCE_MS = 250;
const VIEW_MAX_SHOWN = 64;
const VIEW_MAX_PINNED = 4;
const VIEW_MAX_PX = 8192;
/** A re-mapped video line's decoded frames are looked at this often until the newcomer's play. */
const FRAME_POLL_MS = 150;
const DEFAULT_CONSTRAINTS = {
  audio: true,
  video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
};
/** Simulcast (option `simulcast`, for large calls): three VP8 layers by rid, low to high, so the
 * SFU can forward each subscriber the one that fits its tile and its bandwidth (docs/media.md,
 * "Simulcast"). A 720p camera gives 320x180, 640x360 and 1280x720. */
const SIMULCAST_ENCODINGS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];
const SIMULCAST_CONSTRAINTS = {
  audio: true,
  video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
};

/** One remote position: slot n's receive-only video and/or audio line, each filled by whoever the
 * server maps there (audio and video may be different people in a large call). `stream` holds
 * the slot's own tracks; `peerStreams` below joins each person's audio and video. */
class Slot {
  constructor(index) {
    this.index = index;
    this.stream = new MediaStream();
    this.peerId = null; /* whose video (or, without a video line, whose audio) */
    this.audioPeer = null;
    this.tracks = { audio: null, video: null };
    this.receivers = { audio: null, video: null };
    this.awaiting = null; /* re-mapped: {frames} decoded before, until a new frame decodes */
    this.mids = { audio: null, video: null };
    this.element = null;
    this.live = false;
  }
}

/* ICE restart (docs/media.md, "ICE restart"): a connection that fails after it once worked (a
 * network change: Wi-Fi to mobile data, a VPN) offers again with new ICE credentials on the same
 * DTLS session before anyone gives up; "disconnected" first gets this long to come back itself. */
const ICE_DISCONNECTED_GRACE_MS = 4000;
const ICE_RESTART_LIMIT = 3;

export class MediaCall {
  constructor(pc, localStream, slots, options, senders = {}) {
    this.pc = pc;
    this.localStream = localStream;
    this.slots = slots;
    this._options = options;
    this._senders = senders; /* kind -> our RTCRtpSender */
  }

  /** Turn the camera on or off. Off sends nothing at all (no black frames): the sender's track
   * is replaced by null, so not one RTP packet leaves; on puts the same track back. */
  setCamera(on) {
    return this._setSending("video", this.localStream.getVideoTracks(), Boolean(on));
  }

  /** Mute or unmute the microphone; muted sends nothing (not even silence). */
  setMicrophone(on) {
    return this._setSending("audio", this.localStream.getAudioTracks(), Boolean(on));
  }

  _setSending(kind, tracks, on) {
    for (const t of tracks) t.enabled = on; /* the self view goes dark too */
    const sender = this._senders[kind];
    if (sender && this.pc.connectionState !== "closed") {
      sender.replaceTrack(on ? (tracks[0] ?? null) : null).catch((error) => {
        console.warn("waitroom: could not switch the " + kind + " track", error);
      });
    }
    return on;
  }

  /** The server's `media.layers` {active: [rid]}: send only the simulcast layers someone wants,
   * so a layer nobody shows costs this publisher neither uplink nor encoder (docs/media.md,
   * "Pausing layers at the publisher"). Applied with RTCRtpSender.setParameters (encodings[i]
   * .active); the lowest layer is never switched off (the server falls back on it and asks it for
   * key frames), and a later message resumes what it lists. Calls are applied in order, each with
   * the newest set, so two messages in quick succession never race on the parameters. Resolves
   * to whether the sender's encodings now match (false: not publishing simulcast). */
  setLayers(active) {
    const rids = Array.isArray(active) ? active.filter((rid) => typeof rid === "string") : [];
    this._wantedLayers = new Set(rids);
    const run = () => this._applyLayers();
    this._layersApplied = (this._layersApplied ?? Promise.resolve()).then(run, run);
    return this._layersApplied;
  }

  async _applyLayers() {
    const sender = this._senders.video;
    if (!sender || !this._options.simulcast || this.pc.connectionState === "closed") return false;
    const parameters = sender.getParameters();
    const encodings = parameters.encodings ?? [];
    if (encodings.length < 2) return false;
    let changed = false;
    encodings.forEach((encoding, i) => {
      const on = i === 0 || this._wantedLayers.has(encoding.rid);
      if (encoding.active !== on) {
        encoding.active = on;
        changed = true;
      }
    });
    if (!changed) return true;
    try {
      await sender.setParameters(parameters);
      return true;
    } catch (error) {
      console.warn("waitroom: could not pause or resume simulcast layers", error);
      return false;
    }
  }

  get cameraOn() {
    return this.localStream.getVideoTracks().some((t) => t.enabled);
  }

  get microphoneOn() {
    return this.localStream.getAudioTracks().some((t) => t.enabled);
  }

  /** Apply the server's slot maps ({slot index: peer id}) for video and audio; without an audio
   * map, each slot's audio belongs to whoever has its video (a small call). Freed slots hide. */
  setSlots(map, audioMap, seq) {
    /* The offer's answer and media.slots pushes come by different paths and may swap places:
       the server numbers its maps (seq), and an older one must not undo a newer one. */
    if (typeof seq === "number") {
      if (seq <= (this._slotSeq ?? 0)) return;
      this._slotSeq = seq;
    }
    const at = (m, i) => (m ? (m[i] ?? m[String(i)] ?? null) : null);
    const before = this._peerTracks();
    for (const slot of this.slots) {
      const hasVideo = Boolean(slot.tracks.video) || slot.mids.video !== null;
      const audio = audioMap === undefined ? at(map, slot.index) : at(audioMap, slot.index);
      slot.audioPeer = slot.tracks.audio || slot.mids.audio !== null ? audio : null;
      const peerId = hasVideo ? at(map, slot.index) : audio;
      if (slot.peerId === peerId) continue;
      const previous = slot.peerId;
      slot.peerId = peerId;
      if (slot.element) slot.element.dataset.peer = peerId ?? "";
      if (peerId === null) this._setLive(slot, false, previous);
      else if (slot.tracks.video) this._awaitFrame(slot);
    }
    this._announce(before);
  }

  /** A video line re-mapped to someone new shows them once a frame decodes after the re-map:
   * until then its picture is the previous person's last frame (or nothing). Chrome mutes a
   * receive track only a while after its packets stop, so a freed slot filled again soon gets
   * no `unmute`; the line's decoded-frame count says when the newcomer's video plays. */
  _awaitFrame(slot) {
    slot.live = false; /* _announce (the caller's) leaves this video out of anyone's stream */
    if (slot.element) slot.element.hidden = true;
    const mark = (slot.awaiting = { frames: null });
    this._decodedFrames(slot).then((frames) => {
      if (slot.awaiting === mark && mark.frames === null) mark.frames = frames;
    });
    this._pollFrames();
  }

  async _decodedFrames(slot) {
    let frames = null;
    try {
      (await slot.receivers.video.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp") frames = r.framesDecoded ?? 0;
      });
    } catch (error) {
      /* closed meanwhile: nothing to show */
    }
    return frames ?? 0;
  }

  _pollFrames() {
    if (this._framePoll || this.pc.connectionState === "closed") return;
    this._framePoll = setTimeout(async () => {
      this._framePoll = null;
      const waiting = this.slots.filter((slot) => slot.awaiting);
      await Promise.all(
        waiting.map(async (slot) => {
          const mark = slot.awaiting;
          const frames = await this._decodedFrames(slot);
          if (slot.awaiting !== mark) return; /* re-mapped, or live, meanwhile */
          if (mark.frames === null) mark.frames = frames;
          else if (frames > mark.frames) this._setLive(slot, true);
        })
      );
      if (this.slots.some((slot) => slot.awaiting)) this._pollFrames();
    }, FRAME_POLL_MS);
  }

  /** peer id -> [its video track, its audio track] as the slot maps say now. */
  _peerTracks() {
    const out = new Map();
    for (const slot of this.slots) {
      const video = slot.tracks.video && slot.live ? slot.peerId : null;
      if (video) (out.get(video) ?? out.set(video, [null, null]).get(video))[0] = slot.tracks.video;
      const audio = slot.tracks.audio ? slot.audioPeer : null;
      if (audio) (out.get(audio) ?? out.set(audio, [null, null]).get(audio))[1] = slot.tracks.audio;
    }
    return out;
  }

  /** Tell the page each person whose tracks changed: one stream of their video and audio. */
  _announce(before) {
    const after = this._peerTracks();
    for (const [peerId, tracks] of after) {
      const old = before.get(peerId);
      if (old && old[0] === tracks[0] && old[1] === tracks[1]) continue;
      const stream = new MediaStream(tracks.filter(Boolean));
      const slot = this.slots.find((s) => s.peerId === peerId) ?? null;
      this.peerStreams.set(peerId, stream);
      this._options.onRemote?.({ slot: slot ? slot.index : null, stream, peerId });
    }
    for (const peerId of before.keys()) {
      if (after.has(peerId)) continue;
      this.peerStreams.delete(peerId);
      this._options.onRemoteGone?.({ slot: null, peerId });
    }
  }

  /** Report which tiles of `container` show whom, and how large (media.view), from now on. */
  watchTiles(container, selfId) {
    this._tiles = { container, selfId };
    const schedule = () => {
      clearTimeout(this._viewTimer);
      this._viewTimer = setTimeout(() => this._reportView(), VIEW_DEBOUNCE_MS);
    };
    this._visible = new Set();
    this._resize = new ResizeObserver(schedule);
    this._intersect = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.isIntersecting) this._visible.add(e.target);
        else this._visible.delete(e.target);
      }
      schedule();
    });
    const observeAll = () => {
      for (const tile of container.children) {
        if (tile.dataset.observed) continue;
        tile.dataset.observed = "1";
        this._resize.observe(tile);
        this._intersect.observe(tile);
      }
      for (const tile of Array.from(this._visible)) if (!tile.isConnected) this._visible.delete(tile);
      schedule();
    };
    this._mutations = new MutationObserver(observeAll);
    this._mutations.observe(container, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ["data-peer", "data-pinned", "hidden", "class"],
    });
    observeAll();
  }

  /** What this page shows now, in the server's terms. */
  view() {
    const shown = {};
    const pinned = [];
    if (!this._tiles) return { shown, pinned };
    let count = 0;
    for (const tile of this._tiles.container.children) {
      const peerId = tile.dataset.peer;
      if (!peerId || peerId === this._tiles.selfId) continue;
      if (tile.dataset.pinned === "true" && pinned.length < VIEW_MAX_PINNED) pinned.push(peerId);
      if (!this._visible.has(tile) || tile.hidden || count >= VIEW_MAX_SHOWN) continue;
      const r = tile.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) continue;
      const px = (v) => Math.min(VIEW_MAX_PX, Math.round(v * (window.devicePixelRatio || 1)));
      shown[peerId] = { w: px(r.width), h: px(r.height) };
      count++;
    }
    return { shown, pinned };
  }

  _reportView() {
    if (this.pc.connectionState === "closed") return;
    const view = this.view();
    const text = JSON.stringify(view);
    if (text === this._lastView) return;
    this._lastView = text;
    this._options.signal("media.view", view).catch(() => {
      this._lastView = null; /* refused (someone just left): the next change sends it again */
    });
  }

  /** Per-slot receive figures from getStats (inbound-rtp), keyed by slot index. */
  async stats() {
    const report = await this.pc.getStats();
    const byMid = new Map();
    for (const s of this.slots) {
      byMid.set(s.mids.audio, s);
      byMid.set(s.mids.video, s);
    }
    const out = { slots: {}, peers: {}, connectionState: this.pc.connectionState };
    report.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      const slot = byMid.get(r.mid);
      if (!slot) return;
      const entry = (out.slots[slot.index] ??= {
        peerId: slot.peerId,
        framesDecoded: 0,
        totalSamplesReceived: 0,
        concealedSamples: 0,
        packetsReceived: 0,
      });
      entry.packetsReceived += r.packetsReceived ?? 0;
      const who = r.kind === "video" ? slot.peerId : slot.audioPeer;
      if (who) {
        /* By person, now: what their current slot lines carry (counters are the line's own). */
        const p = (out.peers[who] ??= { framesDecoded: 0, frameWidth: 0, packetsReceived: 0 });
        p.packetsReceived += r.packetsReceived ?? 0;
        if (r.kind === "video") {
          p.framesDecoded += r.framesDecoded ?? 0;
          p.frameWidth = Math.max(p.frameWidth, r.frameWidth ?? 0);
          p.videoSlot = slot.index;
        } else {
          p.audioSlot = slot.index;
          p.audioLevel = r.audioLevel ?? 0;
        }
      }
      if (r.kind === "video") entry.framesDecoded += r.framesDecoded ?? 0;
      if (r.kind === "audio") {
        // totalSamplesReceived includes concealment (made-up audio after packets stop).
        entry.totalSamplesReceived += r.totalSamplesReceived ?? 0;
        entry.concealedSamples += r.concealedSamples ?? 0;
      }
    });
    return out;
  }

  /** Offer again with fresh ICE credentials; the SFU keeps our DTLS session and our slots. */
  async restartIce() {
    const pc = this.pc;
    if (pc.connectionState === "closed" || pc.signalingState !== "stable") return false;
    this._restarts = (this._restarts ?? 0) + 1;
    await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
    const reply = await this._options.signal("media.offer", { sdp: pc.localDescription.sdp });
    if (!reply || typeof reply.sdp !== "string") throw new Error("media.offer: no restart answer");
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    return true;
  }

  /** connectionstatechange: restart ICE when a working connection fails; tell the page. */
  _watchConnection() {
    const state = this.pc.connectionState;
    if (state === "connected") {
      this._everConnected = true;
      this._restarts = 0;
    } else if (
      (state === "disconnected" || state === "failed") &&
      this._everConnected &&
      !this._restartTimer &&
      (this._restarts ?? 0) < ICE_RESTART_LIMIT
    ) {
      this._restartTimer = setTimeout(
        () => {
          this._restartTimer = null;
          if (!["disconnected", "failed"].includes(this.pc.connectionState)) return;
          this.restartIce().catch((error) => console.warn("waitroom: ICE restart failed", error));
        },
        state === "failed" ? 0 : ICE_DISCONNECTED_GRACE_MS
      );
    }
    this._options.onConnectionState?.(state);
  }

  /** Leave the call: stop the camera and microphone and close the connection. Idempotent. */
  leave() {
    if (this.pc.connectionState === "closed") return;
    for (const t of this.localStream.getTracks()) t.stop();
    this.pc.close();
    clearTimeout(this._viewTimer);
    clearTimeout(this._framePoll);
    this._resize?.disconnect();
    this._intersect?.disconnect();
    this._mutations?.disconnect();
    for (const slot of this.slots) slot.element?.remove();
    this._options.signal("media.leave", {}).catch(() => {});
  }

  _setLive(slot, live, peerId = slot.peerId) {
    if (live || peerId === null) slot.awaiting = null;
    if (slot.live === live) return;
    const before = this._peerTracks();
    slot.live = live;
    if (slot.element) slot.element.hidden = !live;
    this._announce(before);
  }
}

/**
 * Open the camera and microphone, offer to the SFU through `signal`, and return a MediaCall.
 *
 * Options: signal (required), localVideo, container, onRemote, onRemoteGone,
 * videoSlots / audioSlots (receive lines, default 9 and 5), or slots (that many audio+video pairs),
 * tiles + self (report media.view from these tiles), constraints (getUserMedia), stream (use it),
 * simulcast (true: publish the camera as three VP8 layers; the room page sets it for large calls).
 */
export async function joinMedia(options) {
  if (typeof options?.signal !== "function") throw new TypeError("joinMedia needs a signal function");
  const videoSlots = options.slots ?? options.videoSlots ?? DEFAULT_VIDEO_SLOTS;
  const audioSlots = options.slots ?? options.audioSlots ?? DEFAULT_AUDIO_SLOTS;
  const slotCount = Math.max(videoSlots, audioSlots);
  const localStream =
    options.stream ??
    (await navigator.mediaDevices.getUserMedia(
      options.constraints ?? (options.simulcast ? SIMULCAST_CONSTRAINTS : DEFAULT_CONSTRAINTS)
    ));
  if (options.localVideo) {
    options.localVideo.muted = true;
    options.localVideo.playsInline = true;
    options.localVideo.srcObject = localStream;
  }
  // max-bundle: one transport for every line, which is all the SFU serves.
  const pc = new RTCPeerConnection({
    bundlePolicy: "max-bundle",
    rtcpMuxPolicy: "require",
    iceServers: options.iceServers ?? [],
    iceTransportPolicy: options.iceTransportPolicy ?? "all",
  });
  const senders = {};
  for (const track of localStream.getTracks()) {
    const init = { direction: "sendonly", streams: [localStream] };
    const layered = Boolean(options.simulcast) && track.kind === "video";
    if (layered) init.sendEncodings = SIMULCAST_ENCODINGS.map((encoding) => ({ ...encoding }));
    const transceiver = pc.addTransceiver(track, init);
    if (layered) onlyForwardedCodec(transceiver, "video"); /* the layers must be VP8 */
    senders[track.kind] = transceiver.sender;
  }
  const slots = [];
  const slotByTransceiver = new Map();
  for (let i = 0; i < slotCount; i++) {
    const slot = new Slot(i);
    slots.push(slot);
    for (const kind of ["audio", "video"]) {
      if (i >= (kind === "audio" ? audioSlots : videoSlots)) continue;
      const transceiver = pc.addTransceiver(kind, { direction: "recvonly" });
      onlyForwardedCodec(transceiver, kind);
      slotByTransceiver.set(transceiver, slot);
    }
  }
  const call = new MediaCall(pc, localStream, slots, options, senders);
  pc.addEventListener("connectionstatechange", () => call._watchConnection());
  call.peerStreams = new Map(); /* peer id -> the stream of their video and audio now */

  pc.addEventListener("track", (event) => {
    const slot = slotByTransceiver.get(event.transceiver);
    if (!slot) return;
    const track = event.track;
    slot.stream.addTrack(track);
    slot.tracks[track.kind] = track;
    slot.receivers[track.kind] = event.receiver;
    // A receive-only track is "muted" until RTP arrives, and mutes again when it stops.
    track.addEventListener("unmute", () => call._setLive(slot, true));
    track.addEventListener("mute", () => {
      if (slot.stream.getTracks().every((t) => t.muted)) call._setLive(slot, false);
    });
  });

  if (options.container) {
    for (const slot of slots) {
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.hidden = true;
      video.dataset.slot = String(slot.index);
      video.srcObject = slot.stream;
      options.container.append(video);
      slot.element = video;
    }
  }

  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  // The SFU is ICE-lite: it needs no candidates from us, so the offer goes out at once.
  // A refused offer (the person moved to a breakout room meanwhile, the call ended) must not
  // leave a connection open that will never be answered.
  let reply;
  try {
    reply = await options.signal("media.offer", { sdp: pc.localDescription.sdp });
  } catch (error) {
    pc.close();
    throw error;
  }
  if (!reply || typeof reply.sdp !== "string") {
    pc.close();
    throw new Error("media.offer: the server sent no answer");
  }
  try {
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  } catch (error) {
    pc.close();
    throw error;
  }
  for (const [transceiver, slot] of slotByTransceiver) {
    slot.mids[transceiver.receiver.track.kind] = transceiver.mid;
  }
  if (reply.slots) call.setSlots(reply.slots, reply.audio, reply.seq);
  if (options.tiles) call.watchTiles(options.tiles, options.self ?? null);
  return call;
}

/** A receive line offers only the codec the SFU forwards in (Opus, VP8): a 60-person call's
 * offer then stays a few kilobytes per line instead of listing every codec Chrome knows. */
function onlyForwardedCodec(transceiver, kind) {
  const wanted = kind === "audio" ? "audio/opus" : "video/vp8";
  try {
    const all = RTCRtpReceiver.getCapabilities?.(kind)?.codecs ?? [];
    const codecs = all.filter((c) => c.mimeType.toLowerCase() === wanted);
    if (codecs.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(codecs);
  } catch (error) {
    /* older browsers: the full list is offered, the SFU picks its codec anyway */
  }
}
