/* The waiting page's pre-call check (issue 16): camera, microphone, speaker and the network path,
 * shown to the caller and sent to their room as `precheck.result` (docs/protocol.md), so the
 * provider sees it next to the caller before joining.
 *
 * Honest about what a page can know (docs/media.md "Pre-call check"):
 * - camera: the preview room.js opened has a live video track;
 * - microphone: a WebAudio AnalyserNode on the preview's audio track heard something;
 * - speaker: only the caller knows: a short test tone, then "I heard it" / "I did not hear it";
 * - network: ICE candidates gathered with the page's data-ice servers. A host UDP candidate is a
 *   usable local address, a server-reflexive one proves UDP out to a STUN server, a relay one
 *   proves the TURN server allocates for us. TCP to the media server needs an offer to the SFU,
 *   which the waiting page does not make: it is reported "not tested". The time shown is the time
 *   to gather the relay candidate (a TURN allocation: about two round trips to the TURN server),
 *   or nothing when there is no TURN server.
 */
(function () {
  "use strict";

  const section = document.getElementById("precheck");
  const page = document.getElementById("room-page");
  if (!section || !page) return;
  const S = JSON.parse(document.getElementById("precheck-strings").textContent);
  const $ = (id) => document.getElementById(id);

  /* How long to wait for room.js's preview, for ICE gathering, between tries to send. */
  const PREVIEW_WAIT_MS = 15000;
  const PREVIEW_POLL_MS = 250;
  const GATHER_TIMEOUT_MS = 8000;
  const SEND_RETRY_MS = 2000;
  const SEND_TRIES = 15;
  /* The analyser's RMS level (0..1) above which the microphone counts as hearing sound. */
  const SOUND_LEVEL = 0.02;
  const METER_INTERVAL_MS = 100;
  /* Samples per stretch whose RMS level is compared with SOUND_LEVEL. */
  const STRETCH = 1024;
  const TONE_HZ = 440;
  const TONE_SECONDS = 0.8;
  const TONE_GAIN = 0.2;

  const result = {
    camera: "unknown",
    microphone: "unknown",
    speaker: "unknown",
    network: { udp: false, tcp: false, relay: false, rtt_ms: null },
  };
  let networkDone = false;
  let audioContext = null;

  function say(id, text) {
    const node = $(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function context() {
    if (!audioContext) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      audioContext = new Ctx();
    }
    if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
    return audioContext;
  }

  /* -- camera and microphone: the preview room.js opened ------------------------------------- */
  function waitForPreview() {
    const preview = $("preview");
    const started = Date.now();
    return new Promise((resolve) => {
      const look = () => {
        const stream = preview && preview.srcObject;
        if (stream && stream.getTracks().length > 0) return resolve(stream);
        const check = $("device-check");
        const failed = check && check.textContent === S.device_failed;
        if (failed || Date.now() - started > PREVIEW_WAIT_MS) return resolve(null);
        setTimeout(look, PREVIEW_POLL_MS);
      };
      look();
    });
  }

  function checkCamera(stream) {
    const live = stream && stream.getVideoTracks().some((t) => t.readyState === "live");
    result.camera = live ? "ok" : "failed";
    say("precheck-camera", live ? S.camera_ok : S.camera_failed);
  }

  function checkMicrophone(stream) {
    const tracks = stream ? stream.getAudioTracks() : [];
    const meter = $("precheck-meter");
    if (tracks.length === 0) {
      result.microphone = "failed";
      say("precheck-microphone", S.mic_failed);
      return;
    }
    const ctx = context();
    if (!ctx) {
      say("precheck-microphone", S.mic_untested);
      return;
    }
    /* Each read covers more than the time since the last one (8192 samples: 170 ms at 48 kHz,
     * read every 100 ms), so a short sound between two reads is never missed; the level is the
     * loudest 1024-sample stretch of it (about 21 ms: the window the meter used to read whole). */
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    ctx.createMediaStreamSource(new MediaStream(tracks)).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    say("precheck-microphone", S.mic_listening);
    const timer = setInterval(() => {
      if (ctx.state !== "running") {
        say("precheck-microphone", S.mic_press);
        return;
      }
      analyser.getFloatTimeDomainData(samples);
      let level = 0;
      for (let start = 0; start < samples.length; start += STRETCH) {
        let sum = 0;
        for (let i = start; i < start + STRETCH; i++) sum += samples[i] * samples[i];
        level = Math.max(level, Math.sqrt(sum / STRETCH));
      }
      if (meter) meter.value = Math.min(1, level * 5);
      if (level > SOUND_LEVEL && result.microphone !== "ok") {
        result.microphone = "ok";
        say("precheck-microphone", S.mic_ok);
        report();
      } else if (result.microphone !== "ok") {
        say("precheck-microphone", S.mic_listening);
      }
      if (!tracks.some((t) => t.readyState === "live")) clearInterval(timer);
    }, METER_INTERVAL_MS);
  }

  /* -- speaker: a short tone; the caller says whether they heard it --------------------------- */
  function playTone() {
    const ctx = context();
    if (!ctx) return;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = TONE_HZ;
    gain.gain.value = TONE_GAIN;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + TONE_SECONDS);
    $("precheck-heard-row").hidden = false;
    say("precheck-speaker", S.speaker_asked);
  }

  function heard(yes) {
    result.speaker = yes ? "ok" : "failed";
    say("precheck-speaker", yes ? S.speaker_ok : S.speaker_failed);
    report();
  }

  /* -- network: ICE candidates with the page's servers ---------------------------------------- */
  function iceOptions() {
    try {
      return JSON.parse(page.dataset.ice || "{}");
    } catch (error) {
      return {};
    }
  }

  async function checkNetwork() {
    if (!window.RTCPeerConnection) {
      finishNetwork(false);
      return;
    }
    const ice = iceOptions();
    const servers = Array.isArray(ice.iceServers) ? ice.iceServers : [];
    const urls = servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])).map(String);
    const hasTurn = urls.some((u) => u.startsWith("turn"));
    /* Always gather everything ("all"), even where calls are relay-only: we want to know which
     * kinds work. The probe sends nothing but STUN/TURN requests. */
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: "all" });
    const started = performance.now();
    pc.createDataChannel("precheck");
    const done = new Promise((resolve) => {
      const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
      pc.onicecandidate = (event) => {
        if (!event.candidate) {
          clearTimeout(timer);
          resolve();
          return;
        }
        const c = event.candidate;
        const type = c.type || (/ typ (\w+)/.exec(c.candidate) || [])[1];
        const protocol = (c.protocol || (/ (udp|tcp) /i.exec(c.candidate) || [])[1] || "").toLowerCase();
        if ((type === "host" || type === "srflx") && protocol === "udp") result.network.udp = true;
        if (type === "relay" && !result.network.relay) {
          result.network.relay = true;
          result.network.rtt_ms = Math.round(performance.now() - started);
        }
      };
    });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await done;
    } catch (error) {
      /* a browser that cannot gather: nothing shown working */
    }
    pc.close();
    finishNetwork(hasTurn);
  }

  function finishNetwork(hasTurn) {
    const n = result.network;
    say("precheck-udp", n.udp ? S.udp_ok : S.udp_failed);
    say("precheck-tcp", S.tcp_untested);
    if (!hasTurn) say("precheck-relay", S.relay_none);
    else say("precheck-relay", n.relay ? S.relay_ok.replace("%(ms)s", String(n.rtt_ms)) : S.relay_failed);
    networkDone = true;
    report();
  }

  /* -- to the room ----------------------------------------------------------------------------- */
  let lastSent = null;
  let sending = false;
  async function report() {
    if (!networkDone || sending) return;
    const body = JSON.stringify(result);
    if (body === lastSent) return;
    sending = true;
    for (let i = 0; i < SEND_TRIES; i += 1) {
      try {
        if (!window.WaitroomRoom) throw new Error("room not ready");
        await window.WaitroomRoom.request("precheck.result", JSON.parse(body));
        lastSent = body;
        section.dataset.sent = "1";
        say("precheck-sent", S.sent);
        break;
      } catch (error) {
        /* not in the room yet (or reconnecting): try again shortly */
        await new Promise((r) => setTimeout(r, SEND_RETRY_MS));
      }
    }
    sending = false;
    if (lastSent !== JSON.stringify(result)) report(); /* changed while we were sending */
  }

  $("precheck-tone").addEventListener("click", playTone);
  $("precheck-heard").addEventListener("click", () => heard(true));
  $("precheck-not-heard").addEventListener("click", () => heard(false));
  section.addEventListener("click", () => context());

  waitForPreview().then((stream) => {
    checkCamera(stream);
    checkMicrophone(stream);
    report();
  });
  checkNetwork();
})();
