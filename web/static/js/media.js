// Waitroom media: the browser side of a call through the Waitroom SFU.
//
// A self-contained ES module. The page supplies signalling; this module owns the camera, the
// microphone and one RTCPeerConnection. The SFU uses fixed slots (docs/media.md): the offer
// carries our own audio and video (sendonly) plus `slots` receive-only audio+video pairs, and the
// server fills slot n with whichever participant it assigns there. No renegotiation ever happens.
//
//   import { joinMedia } from "/static/js/media.js";
//   const call = await joinMedia({
//     signal: async (type, body) => reply,   // "media.offer", {sdp} -> {sdp: answer}
//     localVideo: document.querySelector("#me"),        // optional <video> for the self view
//     container: document.querySelector("#others"),     // optional: tiles are created here
//     onRemote: ({slot, stream, peerId}) => {},          // a slot started receiving media
//     onRemoteGone: ({slot, peerId}) => {},              // a slot went quiet / was freed
//   });
//   call.setCamera(false); call.setMicrophone(true);   // toggles; return the new state
//   call.setSlots({0: "peer-b", 1: "peer-c"});          // from the server's slot event
//   await call.stats();   // {slots: {0: {framesDecoded, totalSamplesReceived, concealedSamples, peerId}}, ...}
//   call.leave();         // stops tracks, closes the connection (signal "media.leave" too)

export const DEFAULT_SLOTS = 5;
const DEFAULT_CONSTRAINTS = {
  audio: true,
  video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
};

/** One remote participant position: a receive-only audio and video line sharing a stream. */
class Slot {
  constructor(index) {
    this.index = index;
    this.stream = new MediaStream();
    this.peerId = null;
    this.mids = { audio: null, video: null };
    this.element = null;
    this.live = false;
  }
}

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

  get cameraOn() {
    return this.localStream.getVideoTracks().some((t) => t.enabled);
  }

  get microphoneOn() {
    return this.localStream.getAudioTracks().some((t) => t.enabled);
  }

  /** Apply the server's slot map ({slot index: peer id}); freed slots are hidden. */
  setSlots(map) {
    for (const slot of this.slots) {
      const peerId = map[slot.index] ?? map[String(slot.index)] ?? null;
      if (slot.peerId === peerId) continue;
      const previous = slot.peerId;
      slot.peerId = peerId;
      if (slot.element) slot.element.dataset.peer = peerId ?? "";
      if (peerId === null) {
        this._setLive(slot, false, previous);
      } else if (slot.live) {
        this._options.onRemote?.({ slot: slot.index, stream: slot.stream, peerId });
      }
    }
  }

  /** Per-slot receive figures from getStats (inbound-rtp), keyed by slot index. */
  async stats() {
    const report = await this.pc.getStats();
    const byMid = new Map();
    for (const s of this.slots) {
      byMid.set(s.mids.audio, s);
      byMid.set(s.mids.video, s);
    }
    const out = { slots: {}, connectionState: this.pc.connectionState };
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
      if (r.kind === "video") entry.framesDecoded += r.framesDecoded ?? 0;
      if (r.kind === "audio") {
        // totalSamplesReceived includes concealment (made-up audio after packets stop).
        entry.totalSamplesReceived += r.totalSamplesReceived ?? 0;
        entry.concealedSamples += r.concealedSamples ?? 0;
      }
    });
    return out;
  }

  /** Leave the call: stop the camera and microphone and close the connection. Idempotent. */
  leave() {
    if (this.pc.connectionState === "closed") return;
    for (const t of this.localStream.getTracks()) t.stop();
    this.pc.close();
    for (const slot of this.slots) slot.element?.remove();
    this._options.signal("media.leave", {}).catch(() => {});
  }

  _setLive(slot, live, peerId = slot.peerId) {
    if (slot.live === live) return;
    slot.live = live;
    if (slot.element) slot.element.hidden = !live;
    if (live) this._options.onRemote?.({ slot: slot.index, stream: slot.stream, peerId });
    else this._options.onRemoteGone?.({ slot: slot.index, peerId });
  }
}

/**
 * Open the camera and microphone, offer to the SFU through `signal`, and return a MediaCall.
 *
 * Options: signal (required), localVideo, container, onRemote, onRemoteGone,
 * slots (receive positions, default 5), constraints (getUserMedia), stream (use this instead).
 */
export async function joinMedia(options) {
  if (typeof options?.signal !== "function") throw new TypeError("joinMedia needs a signal function");
  const slotCount = options.slots ?? DEFAULT_SLOTS;
  const localStream =
    options.stream ??
    (await navigator.mediaDevices.getUserMedia(options.constraints ?? DEFAULT_CONSTRAINTS));
  if (options.localVideo) {
    options.localVideo.muted = true;
    options.localVideo.playsInline = true;
    options.localVideo.srcObject = localStream;
  }
  // max-bundle: one transport for every line, which is all the SFU serves.
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  const senders = {};
  for (const track of localStream.getTracks()) {
    senders[track.kind] = pc.addTransceiver(track, {
      direction: "sendonly",
      streams: [localStream],
    }).sender;
  }
  const slots = [];
  const slotByTransceiver = new Map();
  for (let i = 0; i < slotCount; i++) {
    const slot = new Slot(i);
    slots.push(slot);
    for (const kind of ["audio", "video"]) {
      slotByTransceiver.set(pc.addTransceiver(kind, { direction: "recvonly" }), slot);
    }
  }
  const call = new MediaCall(pc, localStream, slots, options, senders);

  pc.addEventListener("track", (event) => {
    const slot = slotByTransceiver.get(event.transceiver);
    if (!slot) return;
    const track = event.track;
    slot.stream.addTrack(track);
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
  const reply = await options.signal("media.offer", { sdp: pc.localDescription.sdp });
  if (!reply || typeof reply.sdp !== "string") {
    pc.close();
    throw new Error("media.offer: the server sent no answer");
  }
  await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  for (const [transceiver, slot] of slotByTransceiver) {
    slot.mids[transceiver.receiver.track.kind] = transceiver.mid;
  }
  if (reply.slots) call.setSlots(reply.slots);
  return call;
}
