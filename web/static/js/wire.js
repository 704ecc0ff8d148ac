/* Waitroom wire client: one websocket to /ws speaking the msgpack envelope of gateway/protocol.py.
 *
 *   const wire = WaitroomWire.connect({
 *     token,                       // caller/guest room token; omit for staff (session cookie)
 *     onReady(hello, wire) {},     // after every successful hello: (re)subscribe here
 *     onFatal(code, detail) {},    // hello refused (bad/ended token) or room ended: no reconnect
 *     onStatus(status) {},         // "connecting" | "online" | "offline"
 *   });
 *   wire.on("room.state", body => ...);          // events, by type
 *   const reply = await wire.request("room.enter", {}, "room/abc");  // rejects with {code, detail}
 *
 * Needs vendor/msgpack.min.js (global MessagePack) loaded first. Heartbeat: a ping every 20 s.
 * Reconnects with exponential backoff (1 s .. 30 s, jittered) and re-sends hello each time.
 */
(function () {
  "use strict";

  const HEARTBEAT_MS = 20000;
  const REQUEST_TIMEOUT_MS = 10000;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  /* Close codes after which reconnecting cannot help: room ended (4001), policy (1008). */
  const FINAL_CLOSE_CODES = new Set([4001, 1008]);
  /* hello refusals that mean the token (or session) will never work again. */
  const FATAL_HELLO_CODES = new Set(["invalid_token", "unauthenticated", "forbidden"]);

  class WireError extends Error {
    constructor(code, detail) {
      super(detail || code);
      this.code = code;
      this.detail = detail || code;
    }
  }

  class Wire {
    constructor(options) {
      this.options = options || {};
      this.handlers = new Map();
      this.pending = new Map();
      this.nextId = 1;
      this.socket = null;
      this.ready = false;
      this.closed = false;
      this.attempt = 0;
      this.heartbeat = null;
      this.hello = null;
      this._open();
    }

    on(type, handler) {
      if (!this.handlers.has(type)) this.handlers.set(type, []);
      this.handlers.get(type).push(handler);
      return this;
    }

    request(type, body, to, timeoutMs) {
      if (!this.ready && type !== "hello") {
        return Promise.reject(new WireError("offline", "not connected"));
      }
      return this._send(type, body, to, timeoutMs);
    }

    close() {
      this.closed = true;
      this.ready = false;
      this._stopHeartbeat();
      if (this.socket) this.socket.close(1000, "bye");
      this._status("offline");
    }

    _status(status) {
      if (this.options.onStatus) this.options.onStatus(status);
    }

    _url() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + window.location.host + "/ws";
    }

    _open() {
      if (this.closed) return;
      this._status("connecting");
      const socket = new WebSocket(this._url());
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      socket.onopen = () => this._hello();
      socket.onmessage = (event) => this._receive(event.data);
      socket.onclose = (event) => this._closedSocket(socket, event.code, event.reason);
      socket.onerror = () => {}; /* onclose follows and handles it */
    }

    async _hello() {
      /* Version 2: a server frame may hold several events back to back (docs/protocol.md). */
      const body = { versions: [1, 2] };
      if (this.options.token) body.token = this.options.token;
      try {
        const hello = await this._send("hello", body);
        this.hello = hello;
        this.ready = true;
        this.attempt = 0;
        this._startHeartbeat();
        this._status("online");
        if (this.options.onReady) await this.options.onReady(hello, this);
      } catch (error) {
        if (FATAL_HELLO_CODES.has(error.code)) {
          this._fatal(error.code, error.detail);
        } else if (this.socket) {
          this.socket.close(1000, "hello failed");
        }
      }
    }

    _fatal(code, detail) {
      this.close();
      if (this.options.onFatal) this.options.onFatal(code, detail);
    }

    _send(type, body, to, timeoutMs) {
      const id = this.nextId++;
      const frame = { t: type, id: id, b: body || {} };
      if (to) frame.to = to;
      return new Promise((resolve, reject) => {
        /* A socket that is closing or closed does not throw on send(), it logs an error and drops
           the frame: refuse here instead, as offline, until onclose reconnects or ends. */
        if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
          reject(new WireError("offline", "not connected"));
          return;
        }
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new WireError("timeout", "no answer in time"));
        }, timeoutMs || REQUEST_TIMEOUT_MS);
        this.pending.set(id, { resolve, reject, timer });
        try {
          this.socket.send(MessagePack.encode(frame));
        } catch (error) {
          clearTimeout(timer);
          this.pending.delete(id);
          reject(new WireError("offline", "not connected"));
        }
      });
    }

    _receive(data) {
      let frames;
      try {
        frames = Array.from(MessagePack.decodeMulti(new Uint8Array(data)));
      } catch (error) {
        return;
      }
      for (const frame of frames) this._handle(frame);
    }

    _handle(frame) {
      if (!frame || typeof frame !== "object") return;
      const body = frame.b || {};
      if (frame.t === "reply" || (frame.t === "error" && frame.id != null)) {
        const waiter = this.pending.get(frame.id);
        if (!waiter) return;
        this.pending.delete(frame.id);
        clearTimeout(waiter.timer);
        if (frame.t === "reply") waiter.resolve(body);
        else waiter.reject(new WireError(body.code, body.detail));
        return;
      }
      for (const handler of this.handlers.get(frame.t) || []) {
        try {
          handler(body, frame.t);
        } catch (error) {
          console.error("waitroom: event handler failed", frame.t, error);
        }
      }
    }

    _closedSocket(socket, code, reason) {
      if (socket !== this.socket) return;
      this.ready = false;
      this._stopHeartbeat();
      for (const [id, waiter] of this.pending) {
        clearTimeout(waiter.timer);
        waiter.reject(new WireError("offline", "connection lost"));
        this.pending.delete(id);
      }
      if (this.closed) return;
      if (FINAL_CLOSE_CODES.has(code)) {
        this._fatal(code === 4001 ? "ended" : "closed", reason);
        return;
      }
      this._status("offline");
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
      this.attempt += 1;
      setTimeout(() => this._open(), delay / 2 + Math.random() * (delay / 2));
    }

    _startHeartbeat() {
      this._stopHeartbeat();
      this.heartbeat = setInterval(() => {
        this._send("ping", {}).catch(() => {});
      }, HEARTBEAT_MS);
    }

    _stopHeartbeat() {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
  }

  window.WaitroomWire = {
    connect(options) {
      return new Wire(options);
    },
    WireError: WireError,
  };
})();
