// Websocket side of the maskweb protocol (docs/protocol.md, version 1).

export const PROTOCOL_VERSION = 1;
const FATAL_CLOSE_CODES = new Set([4404, 4403, 4004, 1008]);

/**
 * Split a binary mask frame: uint32 big-endian header length, UTF-8 JSON header, PNG bytes.
 * Returns {header, png} where png is a Uint8Array (length 0 for an empty current object).
 * Throws Error on a malformed frame (the caller reports it, never crashes the page).
 */
export function parseMaskFrame(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (bytes.byteLength < 4) throw new Error("mask frame shorter than its length prefix");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, false);
  if (4 + headerLength > bytes.byteLength) throw new Error("mask frame header runs past the end");
  const headerText = new TextDecoder("utf-8").decode(bytes.subarray(4, 4 + headerLength));
  const header = JSON.parse(headerText);
  if (!header || typeof header !== "object") throw new Error("mask frame header is not an object");
  return { header, png: bytes.subarray(4 + headerLength) };
}

/** Build a mask frame (the inverse of parseMaskFrame); used by the unit tests. */
export function buildMaskFrame(header, png = new Uint8Array(0)) {
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + headerBytes.length + png.length);
  new DataView(out.buffer).setUint32(0, headerBytes.length, false);
  out.set(headerBytes, 4);
  out.set(png, 4 + headerBytes.length);
  return out;
}

export function socketUrl(token, loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws/sessions/${encodeURIComponent(token)}/`;
}

/** Delay before reconnect attempt n (0-based): quick first retries, capped, with jitter. */
export function reconnectDelay(attempt, random = Math.random) {
  const base = Math.min(5000, 300 * 2 ** attempt);
  return Math.round(base * (0.75 + 0.5 * random()));
}

/**
 * A websocket that reconnects after a drop (a Daphne restart, say) and tells its owner.
 * handlers: onOpen(), onClose(willRetry, event), onJson(msg), onMask({header, png}),
 * onBadFrame(err), onDropped(id).
 * A message sent while reconnecting is queued and sent on the new connection if that comes
 * within `queueMs` (a blip the user never notices); older ones are dropped and reported
 * (onDropped): a click replayed long after it was made would surprise more than a lost one.
 */
export class MaskSocket {
  constructor(url, handlers, { WebSocketImpl = globalThis.WebSocket, queueMs = 3000,
    now = () => Date.now() } = {}) {
    this.url = url;
    this.handlers = handlers;
    this.WebSocketImpl = WebSocketImpl;
    this.queueMs = queueMs;
    this.now = now;
    this.ws = null;
    this.attempt = 0;
    this.closedByUs = false;
    this.gaveUp = false; // the server refused this token for good
    this.queue = [];
    this.nextId = 1;
    // Mask frames reach every client with the originator's id, so ids must not collide
    // between tabs: a random prefix per page.
    this.idPrefix = Math.random().toString(36).slice(2, 10);
    this.pingTimer = null;
    this.retryTimer = null;
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === 1; // WebSocket.OPEN
  }

  /** Not connected now, but trying: what is sent now goes out if it reconnects soon. */
  get reconnecting() {
    return !this.connected && !this.closedByUs && !this.gaveUp;
  }

  connect() {
    this.closedByUs = false;
    clearTimeout(this.retryTimer);
    const ws = new this.WebSocketImpl(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      clearInterval(this.pingTimer);
      // Keeps idle proxies from closing the socket and notices a dead server early.
      this.pingTimer = setInterval(() => this.send({ type: "ping" }), 25000);
      this.handlers.onOpen?.();
      this.flushQueue(ws);
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (e) {
          this.handlers.onBadFrame?.(e);
          return;
        }
        this.handlers.onJson?.(msg);
      } else {
        let frame;
        try {
          frame = parseMaskFrame(event.data);
        } catch (e) {
          this.handlers.onBadFrame?.(e);
          return;
        }
        this.handlers.onMask?.(frame);
      }
    };
    ws.onclose = (event) => {
      clearInterval(this.pingTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      // 4404/4403 (or 1008) mean the token is unknown/forbidden: retrying cannot help.
      const fatal = FATAL_CLOSE_CODES.has(event.code);
      if (fatal) {
        this.gaveUp = true;
        this.dropQueue();
      }
      const willRetry = !this.closedByUs && !fatal;
      this.handlers.onClose?.(willRetry, event);
      if (willRetry) {
        const delay = reconnectDelay(this.attempt);
        this.attempt += 1;
        this.retryTimer = setTimeout(() => this.connect(), delay);
      }
    };
  }

  flushQueue(ws) {
    const queued = this.queue;
    this.queue = [];
    const now = this.now();
    for (const item of queued) {
      if (now - item.at <= this.queueMs) ws.send(item.text);
      else this.handlers.onDropped?.(item.id);
    }
  }

  dropQueue() {
    const queued = this.queue;
    this.queue = [];
    for (const item of queued) this.handlers.onDropped?.(item.id);
  }

  /** Send a JSON message (v and id added); returns its id, or null when it cannot go. */
  send(message) {
    const id = message.id ?? `${this.idPrefix}-${this.nextId++}`;
    const text = JSON.stringify({ v: PROTOCOL_VERSION, id, ...message });
    if (this.connected) {
      this.ws.send(text);
      return id;
    }
    if (this.reconnecting && message.type !== "ping") {
      this.queue.push({ id, text, at: this.now() });
      return id;
    }
    return null;
  }

  close() {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.dropQueue();
    this.ws?.close();
  }
}
