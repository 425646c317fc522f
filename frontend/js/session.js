// Session page controller: loads the session state, keeps a websocket to the server, turns
// pointer and keyboard input into prompts (full-resolution upright pixels), and draws what the
// server answers. The server is the single source of truth: the page shows what frames say.

import {
  API,
  normalizeModels,
  request,
  sessionPath,
  tokenFromPath,
  vectorQuery,
} from "./api.js";
import {
  boxPrompt,
  insidePhoto,
  pointPrompt,
  strokePrompt,
} from "./geometry.js";
import { fillIcons } from "./icons.js";
import {
  CURRENT_COLOUR,
  colourOf,
  decodeMaskPng,
  renderableMask,
} from "./maskrender.js";
import { ObjectsPanel } from "./objects.js";
import { MaskSocket, socketUrl } from "./protocol.js";
import { forgetSession, rememberSession } from "./recent.js";
import { absoluteUrl, copyText, download, sameWords, toast } from "./ui.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const body = document.body;

const CLICK_SLOP_PX = 5; // a press that moves less than this (CSS px) is a click, not a box
const PENDING_TIMEOUT_MS = 30000; // never leave the busy cursor on forever
const VECTOR_KEY = "maskweb.vector";

const ERROR_TEXT = {
  forbidden: "This is a view link: it cannot change the masks.",
  not_ready: "The photo is still being encoded. Try again in a moment.",
  rate_limited: "Too many prompts at once: slow down a little.",
  unavailable: "The server is briefly unreachable inside: your prompt is kept, its mask follows.",
  too_many_objects: "This session holds as many objects as it may: delete one first.",
  too_many_points: "That stroke has too many points.",
  out_of_bounds: "That prompt lies outside the photo.",
  empty: "Nothing to apply: the current object has no mask yet.",
  not_found: "That object no longer exists.",
};

const app = {
  token: tokenFromPath(window.location.pathname),
  role: null,
  state: null,
  photo: null,
  photoUrl: null,
  status: "loading",
  progress: 0,
  current: { prompts: [], candidate: 0, scores: [], can_undo: false, can_redo: false },
  hasMask: false,
  objects: [],
  objectMasks: new Map(), // id → {key, mask | null, loading}
  lastSeq: -1,
  maskGeneration: 0,
  pending: new Map(), // message id → timer
  tool: "prompt",
  brushPercent: 2, // brush radius as % of the photo's long side
  spaceHeld: false,
  gesture: null,
  pan: null,
  pinch: null,
  socket: null,
  everConnected: false,
  models: [],
  switchingModel: false,
};

const viewer = new Viewer($("stage"));
const objectsPanel = new ObjectsPanel($("objects-list"), $("objects-count"), {
  rename: (id, name) => patchObject(id, { name }),
  toggle: (id, visible) => patchObject(id, { visible }),
  colour: (id, colour) => patchObject(id, { colour }),
  select: (ids) => updateCombineBar(ids),
  reopen: (id) => reopenObject(id),
  remove: (id) => deleteObject(id),
  download: (id, format) => downloadObject(id, format),
  hover: (id) => {
    viewer.highlightObject = id;
    viewer.redraw();
  },
}, () => canEdit());

function canEdit() {
  return app.role === "edit";
}

function sp() {
  return sessionPath(app.token);
}

// ---------------------------------------------------------------- state from the server

function applyState(state) {
  app.state = state;
  const role = state.role ?? state.token_role;
  if (role) setRole(role);
  if (Array.isArray(state.models) && state.models.length) setModels(normalizeModels(state));
  if (state.photo) setPhoto(state.photo);
  if (state.model) setModelValue(state.model);
  setStatus(state.status ?? app.status, state.progress ?? 0, state.message);
  if (state.current) {
    // An empty current object has no mask frame to wait for: clear what is drawn now.
    if (!state.current.prompts?.length) {
      app.hasMask = false;
      viewer.current = null;
    }
    setCurrent(state.current);
  }
  if (Array.isArray(state.objects)) setObjects(state.objects);
  setShareLinks(state);
  if ("sidecar" in state) setSidecar(state.sidecar);
  const vectorWas = !$("vector-settings").hidden;
  $("vector-settings").hidden = !state.vectorize;
  if (state.vectorize && !vectorWas) loadVectorSettings(state.vectorize, state.vectorize_bounds);
}

function setRole(role) {
  app.role = role;
  body.dataset.role = role;
  const edit = role === "edit";
  for (const el of document.querySelectorAll(".edit-only")) el.hidden = !edit;
  for (const el of document.querySelectorAll(".view-only")) el.hidden = edit;
  $("role-badge").hidden = edit;
  $("model-select").disabled = !edit || app.models.length < 2;
  if (!edit && app.tool !== "pan") setTool("prompt");
  objectsPanel.render(app.objects, app.photo);
  updateHint();
}

/** The masks whose full-resolution edge the 100 % view draws, each with its version. */
function edgeTargets() {
  const out = [];
  if (app.hasMask && app.currentObjectId != null) {
    out.push({ id: "current", key: `${app.currentObjectId}:${app.lastSeq}` });
  }
  for (const o of app.objects) if (o.visible !== false) out.push({ id: o.id, key: `${o.area}` });
  return out;
}

/** A region of a mask as its download has it (full resolution, on the photo's edges). */
async function loadEdge(id, { x, y, w, h }) {
  const number = id === "current" ? app.currentObjectId : id;
  const url = `${sp()}/objects/${encodeURIComponent(number)}/mask.png?x=${x}&y=${y}&w=${w}&h=${h}`;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return renderableMask(await decodeMaskPng(await res.blob()), [...CURRENT_COLOUR, 1]);
}

/** The true 100 % view's loader: a region of the full-resolution photo as an image. */
function loadCropImage({ x, y, w, h }) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("crop not loaded"));
    img.src = `${sp()}/photo/crop?x=${x}&y=${y}&w=${w}&h=${h}`;
  });
}

function setPhoto(photo) {
  const url = photo.preview_url || `${sp()}/photo`;
  app.photo = photo;
  const name = $("photo-name");
  name.textContent = photo.name || "";
  const dims = document.createElement("span");
  dims.className = "dims";
  dims.textContent = `${photo.width} × ${photo.height}`;
  name.append(dims);
  document.title = `${photo.name || "Photo"} · maskweb`;
  updateBrushOutput();
  if (url === app.photoUrl) return;
  app.photoUrl = url;
  const img = new Image();
  img.decoding = "async";
  img.onload = () => {
    viewer.setPhoto(img, photo);
    body.dataset.photo = "loaded";
    updateZoomText();
  };
  img.onerror = () => toast("The photo preview could not be loaded.", "error", 8000);
  img.src = url;
  // Draw masks/markers against the right size even before the pixels arrive.
  viewer.photo = photo;
}

const STATUS_TEXT = {
  loading: "Loading…",
  encoding: "Encoding",
  reencoding: "Re-encoding",
  ready: "Ready",
  failed: "Encoding failed",
};

function setStatus(status, progress = 0, message = "") {
  const was = app.status;
  app.status = status;
  app.progress = Number.isFinite(progress) ? Math.max(0, Math.min(1, progress)) : 0;
  body.dataset.status = status;
  const working = isWorking(status);
  const pct = Math.round(app.progress * 100);
  $("status-text").textContent =
    working && app.progress > 0 ? `${STATUS_TEXT[status]} ${pct}%` : STATUS_TEXT[status] ?? status;
  const bar = $("progress");
  bar.classList.toggle("indeterminate", working && app.progress === 0);
  $("progress-bar").style.width = working ? `${pct}%` : "0%";

  const box = $("stage-message");
  box.hidden = !(working || status === "failed" || status === "loading");
  if (!box.hidden) {
    $("stage-message-title").innerHTML = "";
    if (working || status === "loading") {
      const spin = document.createElement("span");
      spin.className = "spinner";
      $("stage-message-title").append(spin);
    }
    const title =
      status === "encoding"
        ? "Analysing the photo…"
        : status === "reencoding"
          ? app.switchingModel ? "Re-encoding with the new model…" : "Re-encoding the photo…"
          : status === "failed"
            ? "The photo could not be analysed"
            : "Loading the session…";
    $("stage-message-title").append(document.createTextNode(title));
    $("stage-meter").hidden = !working;
    $("stage-meter-fill").style.width = `${pct}%`;
    // The server's message only where it says more than the title ("Analysing the photo."
    // under "Analysing the photo…" said the same thing twice).
    const said = message && !sameWords(message, title) ? message : "";
    $("stage-message-sub").textContent =
      said ||
      (working
        ? `${pct} % · you can look around meanwhile; prompts work once it is ready`
        : status === "failed"
          ? "Try another model or upload the photo again."
          : "");
  }
  if (status === "ready" && (was === "encoding" || was === "reencoding") && app.everConnected) {
    toast(app.switchingModel ? "Model switched: the mask was recomputed." : "Ready.", "good", 2500);
  }
  if (status === "ready" || status === "failed") app.switchingModel = false;
  if (status === "failed" && was !== "failed") toast(message || "Encoding failed.", "error", 8000);
  updateHint();
}

function setCurrent(current) {
  app.current = {
    prompts: Array.isArray(current.prompts) ? current.prompts : [],
    candidate: current.candidate ?? 0,
    scores: Array.isArray(current.scores) ? current.scores : [],
    can_undo: Boolean(current.can_undo),
    can_redo: Boolean(current.can_redo),
  };
  viewer.prompts = app.current.prompts;
  viewer.redraw();
  updateCurrentPanel();
}

function updateCurrentPanel() {
  const { prompts, candidate, scores, can_undo, can_redo } = app.current;
  const edit = canEdit();
  $("undo-btn").disabled = !edit || !can_undo;
  $("redo-btn").disabled = !edit || !can_redo;
  const hasPrompts = prompts.length > 0;
  $("clear-btn").disabled = !edit || !hasPrompts;
  $("clear-btn-2").disabled = !edit || !hasPrompts;
  $("apply-btn").disabled = !edit || !app.hasMask;
  $("candidate-btn").disabled = !edit || scores.length < 2 || !app.hasMask;
  $("candidate-btn").hidden = scores.length < 2;
  $("prompt-count").textContent = hasPrompts
    ? `${prompts.length} prompt${prompts.length === 1 ? "" : "s"}`
    : "";
  let label = "No mask yet";
  let score = "";
  let fill = 0;
  if (app.hasMask) {
    label = scores.length > 1 ? `Candidate ${candidate + 1} of ${scores.length}` : "Mask";
    const s = scores[candidate];
    if (Number.isFinite(s)) {
      score = s.toFixed(2);
      fill = Math.max(0, Math.min(1, s));
    }
  } else if (hasPrompts) {
    label = "Empty mask: try another click";
  }
  $("candidate-label").textContent = label;
  $("score-text").textContent = score;
  $("score-text").title = score ? "The model's own estimate of the mask quality (0 to 1)" : "";
  $("score-fill").style.width = `${fill * 100}%`;
  $("view-candidate-label").textContent = label;
  $("view-score-text").textContent = score;
  updateHint();
}

function setObjects(objects) {
  app.objects = objects;
  body.dataset.objects = String(objects.length);
  objectsPanel.render(objects, app.photo);
  refreshObjectMasks();
  viewer.loadEdges();
}

/** Fetch (once per version) the mask of every visible applied object, to draw it in colour. */
function refreshObjectMasks() {
  const ids = new Set();
  for (const obj of app.objects) {
    ids.add(obj.id);
    const key = `${obj.area}:${obj.updated ?? ""}:${obj.version ?? ""}`;
    const entry = app.objectMasks.get(obj.id);
    const colour = colourOf(obj);
    if (entry && entry.bits && String(entry.colour) !== String(colour)) {
      // A new colour: tint the mask we have again, nothing to fetch.
      entry.colour = colour;
      entry.mask = renderableMask(entry.bits, [...colour, 1]);
    }
    if (obj.visible === false || (entry && entry.key === key)) continue;
    const record = { key, mask: entry?.mask ?? null, bits: entry?.bits ?? null, colour };
    app.objectMasks.set(obj.id, record);
    loadObjectMask(obj, record);
  }
  for (const id of [...app.objectMasks.keys()]) if (!ids.has(id)) app.objectMasks.delete(id);
  syncViewerObjects();
}

async function loadObjectMask(obj, record, attempt = 0) {
  try {
    const url = obj.png_url || `${sp()}/objects/${encodeURIComponent(obj.id)}/mask.png`;
    const res = await fetch(url);
    if (!res.ok || !app.photo) throw new Error(`HTTP ${res.status}`);
    // Object downloads are upright at full resolution: scaled to the preview while decoding.
    const mask = await decodeMaskPng(await res.blob(), {
      width: app.photo.preview_width || app.photo.width,
      height: app.photo.preview_height || app.photo.height,
    });
    if (app.objectMasks.get(obj.id) !== record) return; // a newer version is on its way
    record.bits = mask;
    record.mask = renderableMask(mask, [...record.colour, 1]);
    syncViewerObjects();
  } catch {
    // Drawing applied objects is a nicety (the list and downloads work without it), but a
    // passing failure (a server restart, say) should not leave the object undrawn for good.
    if (attempt < 3 && app.objectMasks.get(obj.id) === record) {
      setTimeout(() => loadObjectMask(obj, record, attempt + 1), 1000 * 2 ** attempt);
    }
  }
}

function syncViewerObjects() {
  viewer.objects = app.objects.map((o) => ({
    id: o.id,
    visible: o.visible !== false,
    colour: colourOf(o),
    mask: app.objectMasks.get(o.id)?.mask ?? null,
  }));
  viewer.redraw();
}

function setShareLinks(state) {
  const edit = state.edit_url ? absoluteUrl(state.edit_url) : "";
  const view = state.view_url ? absoluteUrl(state.view_url) : "";
  $("edit-link").value = edit;
  $("edit-link-row").hidden = !edit;
  $("view-link").value = view || window.location.href;
  if (edit && app.photo) rememberSession({ url: state.edit_url, name: app.photo.name });
}

// ---------------------------------------------------------------- the websocket

function connect() {
  app.socket = new MaskSocket(socketUrl(app.token), {
    onOpen() {
      body.dataset.connection = "online";
      body.dataset.connects = String(Number(body.dataset.connects || 0) + 1);
      $("conn-text").textContent = "Live";
      if (app.everConnected) toast("Reconnected.", "good", 2500);
      app.everConnected = true;
    },
    onClose(willRetry, event) {
      if (event?.code === 4404) {
        fatal("Session not found", "The link is wrong or the session was deleted.");
        return;
      }
      body.dataset.connection = willRetry ? "connecting" : "offline";
      $("conn-text").textContent = willRetry ? "Reconnecting…" : "Offline";
      clearPending();
      if (app.everConnected) {
        toast(willRetry ? "Connection lost: reconnecting…" : "Disconnected.", "warn", 3000);
      }
    },
    onJson: handleMessage,
    onMask: handleMaskFrame,
    onBadFrame: () => toast("The server sent a message this page does not understand.", "warn"),
    onDropped: (id) => {
      settle(id);
      toast("The connection was down: that action was not sent. Try again.", "warn");
    },
  });
  app.socket.connect();
}

// The page learns of the photo's analysis by messages. One lost on the way (a Redis that lost
// its data empties the channel layer; a worker's send can fail) would leave it waiting for good, so a
// page that has heard nothing for a while asks; the server also queues the encode again when
// no worker is on it (services.encode_status).
const STATUS_ASK_MS = 5000;
const STATUS_ASK_ID = "status-ask";

function isWorking(status) {
  return status === "encoding" || status === "reencoding";
}

function askStatusWhenQuiet() {
  setInterval(() => {
    const quiet = Date.now() - (app.statusHeardAt ?? 0) >= STATUS_ASK_MS;
    if (quiet && isWorking(app.status) && app.socket?.connected) {
      app.socket.send({ type: "status", id: STATUS_ASK_ID });
    }
  }, STATUS_ASK_MS);
}

function handleMessage(msg) {
  switch (msg.type) {
    case "hello":
      // A fresh connection (first or after a drop): the state in hello replaces ours.
      app.lastSeq = -1;
      if (msg.role) setRole(msg.role);
      if (msg.state) applyState(msg.state);
      break;
    case "state":
      if (msg.state) applyState(msg.state);
      break;
    case "status":
      app.statusHeardAt = Date.now();
      if (msg.id === STATUS_ASK_ID && msg.status === "encoding" && isWorking(app.status)) {
        // The stored status answers our question: it says "encoding" for a re-encode too,
        // and may be older than a progress message that overtook it.
        setStatus(app.status, Math.max(app.progress, msg.progress ?? 0), msg.message ?? "");
        break;
      }
      setStatus(msg.status, msg.progress ?? 0, msg.message ?? "");
      if (msg.model) setModelValue(msg.model);
      break;
    case "objects":
      if (Array.isArray(msg.objects)) setObjects(msg.objects);
      break;
    case "error":
      handleError(msg);
      break;
    case "pong":
      break;
    case "preview":
      // Skipped (every decode core busy with clicks, or past the allowance): ask again a
      // little later if the pointer still rests there.
      if (msg.skipped && msg.id === hover.wanted && hover.at) {
        const { at, shift } = hover;
        body.dataset.hover = "skipped";
        hover.timer = setTimeout(() => hoverMoved(at, shift), 2 * HOVER_REST_MS);
      }
      break;
    case "behind":
      showBehind(msg);
      break;
    default:
      break;
  }
}

// The server is drawing slower than this page clicks (it is busy): every prompt is stored,
// and the next mask covers all of them. Said on the busy label until that mask comes.
function showBehind(msg) {
  if (!app.pending.size) return; // that mask came already
  body.dataset.behind = "1";
  const label = $("mask-busy");
  label.classList.add("behind");
  const waiting = msg.pending > 1 ? `${msg.pending} prompts` : "your prompt";
  $("mask-busy-text").textContent = `Server busy: ${waiting} saved, mask on its way…`;
  label.hidden = false;
}

function handleError(msg) {
  if (msg.code === "unavailable") {
    // Not refused: the prompt is stored and its mask follows once the server is whole again.
    toast(ERROR_TEXT.unavailable, "warn", 6000);
    return;
  }
  if (msg.id) settle(msg.id);
  else clearPending();
  const text = ERROR_TEXT[msg.code] ?? msg.message ?? `Error: ${msg.code}`;
  toast(text, msg.code === "internal" ? "error" : "warn");
  // The optimistic marker of a refused prompt must go: show the server's prompts again.
  viewer.prompts = app.current.prompts;
  viewer.redraw();
}

// ---------------------------------------------------------------- hover preview

const HOVER_KEY = "maskweb.hoverPreview";
// How long the pointer must rest before a preview is asked for; a move cancels it.
const HOVER_REST_MS = 180;
const hover = { enabled: true, timer: 0, seq: 0, wanted: null, at: null, shift: false };

function hoverAllowed() {
  return hover.enabled && canEdit() && app.status === "ready" && app.tool === "prompt"
    && !app.gesture && !app.pan && !app.spaceHeld && app.socket?.connected;
}

function clearHover() {
  clearTimeout(hover.timer);
  hover.wanted = null;
  if (viewer.hover) {
    viewer.hover = null;
    viewer.redraw();
  }
  body.dataset.hover = "";
}

/** The pointer moved to full-res point p: drop the shown preview, ask again once it rests. */
function hoverMoved(p, shift) {
  clearHover();
  if (!hoverAllowed() || !insidePhoto(app.photo, p.x, p.y)) return;
  hover.at = p;
  hover.shift = shift;
  hover.timer = setTimeout(() => {
    if (!hoverAllowed()) return;
    const id = `hover-${++hover.seq}`;
    hover.wanted = id;
    body.dataset.hover = "asked";
    // Straight to the socket, never queued through a reconnect: a stale preview is worthless.
    app.socket.send({ type: "preview", id, prompt: pointPrompt(p.x, p.y, !shift) });
  }, HOVER_REST_MS);
}

async function handlePreviewFrame({ header, png }) {
  if (header.id !== hover.wanted) return; // the pointer has moved on since
  let mask = null;
  if (png && png.length) {
    try {
      mask = await decodeMaskPng(png);
    } catch {
      return;
    }
  }
  if (header.id !== hover.wanted) return;
  viewer.hover = mask ? renderableMask(mask, [255, 214, 10, 1]) : null;
  body.dataset.hover = mask ? "shown" : "empty";
  viewer.redraw();
}

function setHoverEnabled(on, save = true) {
  hover.enabled = on;
  $("hover-btn").setAttribute("aria-pressed", String(on));
  if (!on) clearHover();
  if (save) {
    try {
      window.localStorage.setItem(HOVER_KEY, on ? "1" : "0");
    } catch {
      // no storage: on for this page
    }
  }
}

function loadHoverEnabled() {
  let saved = null;
  try {
    saved = window.localStorage.getItem(HOVER_KEY);
  } catch {
    // the default
  }
  setHoverEnabled(saved !== "0", false);
}

async function handleMaskFrame({ header, png }) {
  if (header.type === "preview") {
    handlePreviewFrame({ header, png });
    return;
  }
  if (Number.isFinite(header.seq)) {
    if (header.seq < app.lastSeq) return; // an older answer overtaken by a newer one
    app.lastSeq = header.seq;
  }
  if (header.id && app.pending.has(header.id)) settleUpTo(header.id);
  else if (!header.id) clearPending();
  const generation = ++app.maskGeneration;
  let mask = null;
  if (png && png.length) {
    try {
      mask = await decodeMaskPng(png);
    } catch {
      toast("A mask could not be decoded.", "warn");
      return;
    }
  }
  if (generation !== app.maskGeneration) return;
  app.hasMask = Boolean(mask && mask.area);
  app.currentObjectId = header.object_id ?? app.currentObjectId;
  viewer.current = mask ? renderableMask(mask, [...CURRENT_COLOUR, 1]) : null;
  viewer.loadEdges();
  setCurrent({
    prompts: header.prompts ?? app.current.prompts,
    candidate: header.candidate ?? 0,
    scores: header.scores ?? [],
    can_undo: header.can_undo ?? app.current.can_undo,
    can_redo: header.can_redo ?? app.current.can_redo,
  });
  viewer.drawNow();
  body.dataset.maskSeq = String(header.seq ?? app.maskGeneration);
  body.dataset.maskArea = String(mask ? mask.area : 0);
}

// ---------------------------------------------------------------- sending

function markPending(id) {
  const timer = setTimeout(() => settle(id), PENDING_TIMEOUT_MS);
  app.pending.set(id, timer);
  updateBusy();
}

function settle(id) {
  clearTimeout(app.pending.get(id));
  app.pending.delete(id);
  updateBusy();
}

// The server coalesces prompts sent while it decodes: one frame answers its own message and
// every one sent before it (the Map keeps the order they were sent in).
function settleUpTo(id) {
  for (const [pendingId, timer] of app.pending) {
    clearTimeout(timer);
    app.pending.delete(pendingId);
    if (pendingId === id) break;
  }
  updateBusy();
}

function clearPending() {
  for (const t of app.pending.values()) clearTimeout(t);
  app.pending.clear();
  updateBusy();
}

let busyTimer = 0;
function updateBusy() {
  const busy = app.pending.size > 0;
  body.classList.toggle("busy", busy);
  body.dataset.busy = busy ? "1" : "0";
  clearTimeout(busyTimer);
  // The label only after a short wait, so quick masks do not flicker it; the cursor at once.
  if (busy) {
    if (body.dataset.behind !== "1") {
      busyTimer = setTimeout(() => ($("mask-busy").hidden = false), 250);
    }
  } else {
    $("mask-busy").hidden = true;
    $("mask-busy").classList.remove("behind");
    $("mask-busy-text").textContent = "Computing mask…";
    body.dataset.behind = "0";
  }
}

function ensureCanSend() {
  if (!canEdit()) {
    toast("This is a view link: it cannot change the masks.", "warn");
    return false;
  }
  if (!app.socket?.connected && !app.socket?.reconnecting) {
    toast("Not connected to the server: reload the page.", "warn");
    return false;
  }
  return true;
}

function send(message) {
  if (!ensureCanSend()) return null;
  const id = app.socket.send(message);
  if (id) markPending(id);
  return id;
}

function sendPrompt(prompt) {
  // While encoding the server keeps prompts and answers once ready, so they are sent anyway.
  if (app.status === "failed" || app.status === "loading") {
    toast(app.status === "failed" ? "The photo could not be analysed." : "Still loading…", "warn");
    return;
  }
  if (send({ type: "prompt", prompt })) {
    // Show the marker at once; the mask frame's prompt list replaces it.
    viewer.prompts = [...viewer.prompts, prompt];
    viewer.redraw();
  }
}

function undo() {
  if (canEdit() && app.current.can_undo) send({ type: "undo" });
}
function redo() {
  if (canEdit() && app.current.can_redo) send({ type: "redo" });
}
function clearCurrent() {
  if (canEdit() && app.current.prompts.length) send({ type: "clear" });
}
function applyObject() {
  if (!canEdit()) return;
  if (!app.hasMask) {
    toast("Nothing to apply yet: click the object first.", "info", 2500);
    return;
  }
  send({ type: "apply" });
}
// Whether there is another candidate mask to show: with one (grabCut always, a model whose
// candidates are all the same mask) no key or button offers a choice that is not there.
function hasCandidates() {
  return canEdit() && app.hasMask && app.current.scores.length > 1;
}
function cycleCandidate(step) {
  if (!hasCandidates()) return;
  const n = app.current.scores.length;
  send({ type: "candidate", index: (((app.current.candidate + step) % n) + n) % n });
}

function reopenObject(id) {
  // The server applies the current object first when it has prompts: nothing is lost.
  if (canEdit()) send({ type: "reopen", object_id: id });
}

async function patchObject(id, fields) {
  try {
    const answer = await request("PATCH", `${sp()}/objects/${encodeURIComponent(id)}`, { json: fields });
    // The socket broadcasts the new list; apply the answer too in case this tab is offline.
    if (answer && Array.isArray(answer.objects)) setObjects(answer.objects);
    else if (answer && answer.id !== undefined) {
      setObjects(app.objects.map((o) => (o.id === answer.id ? { ...o, ...answer } : o)));
    }
  } catch (e) {
    toast(e.message, "error");
  }
}

const COMBINE_OPS = ["union", "difference", "intersection", "invert"];

/** The combine buttons for the ticked objects: two or more combine, exactly one inverts. */
function updateCombineBar(ids = objectsPanel.selected) {
  $("combine-bar").hidden = !canEdit() || ids.length === 0;
  for (const op of COMBINE_OPS) {
    $(`combine-${op}`).disabled = op === "invert" ? ids.length !== 1 : ids.length < 2;
  }
}

async function combineObjects(op) {
  const ids = [...objectsPanel.selected];
  try {
    const answer = await request("POST", `${sp()}/combine`, { json: { op, objects: ids } });
    objectsPanel.clearSelection();
    if (answer && Array.isArray(answer.objects)) setObjects(answer.objects);
    toast(`Made “${answer?.object?.name ?? "a new object"}”.`, "good", 2500);
  } catch (e) {
    toast(e.message, "error", 6000);
  }
}

async function deleteObject(id) {
  try {
    await request("DELETE", `${sp()}/objects/${encodeURIComponent(id)}`);
    setObjects(app.objects.filter((o) => o.id !== id));
  } catch (e) {
    toast(e.message, "error");
  }
}

// ---------------------------------------------------------------- downloads

const VECTOR_FIELDS = ["turdsize", "alphamax", "opttolerance", "feather"];

function vectorSettings() {
  return Object.fromEntries(VECTOR_FIELDS.map((n) => [n, Number($(n).value)]));
}

function downloadQuery(kind) {
  return vectorQuery(vectorSettings(), app.state?.vectorize, kind);
}

function baseName() {
  const name = app.photo?.name || "photo";
  return name.replace(/\.[^.]+$/, "");
}

async function runDownload(url, fallback) {
  try {
    const name = await download(url, fallback);
    toast(`Downloaded ${name}`, "good", 2500);
  } catch (e) {
    const msg = e.status === 404 ? `Not available yet on this server (${e.message})` : e.message;
    toast(msg, "error", 6000);
  }
}

function downloadAll(format) {
  const urls = app.state?.downloads ?? {};
  if (format === "png") runDownload(urls.png || `${sp()}/mask.png`, `${baseName()}-mask.png`);
  else if (format === "svg") {
    runDownload(`${urls.svg || `${sp()}/masks.svg`}${downloadQuery("svg")}`, `${baseName()}-masks.svg`);
  } else {
    runDownload(`${urls.xmp || `${sp()}/sidecar.xmp`}${downloadQuery("xmp")}`, `${app.photo?.name || "photo"}.xmp`);
  }
}

function downloadObject(id, format) {
  const obj = app.objects.find((o) => o.id === id);
  const safe = (obj?.name || `object-${id}`).replace(/[^\w.-]+/g, "_");
  const base = `${sp()}/objects/${encodeURIComponent(id)}`;
  if (format === "png") runDownload(obj?.png_url || `${base}/mask.png`, `${baseName()}-${safe}.png`);
  else if (format === "soft-png") {
    runDownload(`${obj?.png_url || `${base}/mask.png`}?soft=1`, `${baseName()}-${safe}-soft.png`);
  } else if (format === "raster-png") {
    // darktable's external raster masks: 16 bits, in the raw's sensor orientation.
    runDownload(`${obj?.png_url || `${base}/mask.png`}?grid=stored&depth=16`,
      `${baseName()}-${safe}-sensor-16bit.png`);
  }
  else if (format === "xmp") {
    // Named like the all-objects sidecar: darktable reads <photo name>.xmp and nothing else.
    runDownload(`${obj?.xmp_url || `${base}/sidecar.xmp`}${downloadQuery("xmp")}`, `${app.photo?.name || "photo"}.xmp`);
  }
  else runDownload(`${obj?.svg_url || `${base}/mask.svg`}${downloadQuery("svg")}`, `${baseName()}-${safe}.svg`);
}

/** The uploaded darktable sidecar the XMP downloads merge into ({name, bytes}), or none. */
function setSidecar(sidecar) {
  $("sidecar-label").textContent = sidecar
    ? `Merging into ${sidecar.name}`
    : "Merge into my darktable sidecar…";
  $("sidecar-remove").hidden = !sidecar || !canEdit();
}

async function uploadSidecar(file) {
  if (!file) return;
  const form = new FormData();
  form.append("sidecar", file, file.name);
  try {
    await request("POST", `${sp()}/sidecar`, { body: form });
    setSidecar({ name: file.name });
    toast(`XMP downloads will now add the masks to ${file.name}.`, "good");
  } catch (e) {
    toast(e.message, "error", 6000);
  }
}

// ---------------------------------------------------------------- overlay opacity (this page)

const OPACITY_KEY = "maskweb.maskOpacity";

function setOpacity(value, save = true) {
  const v = Number.isFinite(value) ? Math.max(0.1, Math.min(1, value)) : 0.45;
  viewer.opacity = v;
  $("mask-opacity").value = String(v);
  $("mask-opacity-out").textContent = `${Math.round(v * 100)} %`;
  if (save) {
    try {
      window.localStorage.setItem(OPACITY_KEY, String(v));
    } catch {
      // private mode: the slider still works for this page
    }
  }
  viewer.redraw();
}

function loadOpacity() {
  let saved = null;
  try {
    saved = window.localStorage.getItem(OPACITY_KEY);
  } catch {
    // no storage: the default
  }
  setOpacity(saved === null ? 0.45 : Number(saved), false);
}

async function removeSidecar() {
  try {
    await request("DELETE", `${sp()}/sidecar`);
    setSidecar(null);
    toast("Sidecar removed: XMP downloads start a new one.", "good", 3000);
  } catch (e) {
    toast(e.message, "error", 6000);
  }
}

/**
 * Saved settings win; otherwise the server's defaults (state.vectorize) fill the sliders.
 * A setting the server does not advertise gets no slider (it would not be sent anyway), and
 * the server's ranges (state.vectorize_bounds) narrow a slider's, so that no position of it
 * is a value the server refuses with 400.
 */
/**
 * While the vector settings are open with a feather above 0, the masks are drawn as the XMP
 * will have them: their edge fading outwards over the feather (full-resolution pixels,
 * turned into working-picture pixels here). Closed, the masks are drawn hard again (the PNG
 * and SVG downloads have no feather).
 */
function updateFeatherPreview() {
  const feather = Number($("feather").value);
  const open = $("vector-settings").open && !$("vector-settings").hidden;
  const scale = app.photo ? (app.photo.preview_width || app.photo.width) / app.photo.width : 1;
  viewer.feather = open && feather > 0 ? feather * scale : 0;
  body.dataset.featherPreview = viewer.feather > 0 ? "on" : "";
  viewer.redraw();
}

function loadVectorSettings(defaults = {}, bounds = {}) {
  let saved = {};
  try {
    saved = JSON.parse(window.localStorage.getItem(VECTOR_KEY) || "{}");
  } catch {
    saved = {};
  }
  for (const n of VECTOR_FIELDS) {
    const input = $(n);
    input.closest(".slider-row").hidden = !(n in defaults);
    const range = bounds?.[n];
    if (Number.isFinite(range?.min)) input.min = String(Math.max(Number(input.min), range.min));
    if (Number.isFinite(range?.max)) input.max = String(Math.min(Number(input.max), range.max));
    const v = Number.isFinite(saved[n]) ? saved[n] : defaults[n];
    if (Number.isFinite(v)) input.value = String(v);
  }
  updateVectorOutputs(false);
}

function updateVectorOutputs(save = true) {
  const v = vectorSettings();
  $("turdsize-out").textContent = `${v.turdsize} px`;
  $("alphamax-out").textContent = v.alphamax.toFixed(2);
  $("opttolerance-out").textContent = `${v.opttolerance.toFixed(2)} px`;
  $("feather-out").textContent = `${v.feather} px`;
  updateFeatherPreview();
  if (!save) return;
  try {
    window.localStorage.setItem(VECTOR_KEY, JSON.stringify(v));
  } catch {
    // not important
  }
}

// ---------------------------------------------------------------- models

async function loadModels() {
  if (app.models.length) return;
  try {
    setModels(normalizeModels(await request("GET", `${API}/models`)));
  } catch {
    // Without the list the picker just shows the session's model.
  }
}

function setModels({ models, defaultId }) {
  app.models = models;
  const select = $("model-select");
  select.innerHTML = "";
  for (const m of models) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = m.label;
    opt.title = [m.description, m.id === defaultId ? "the default model" : ""].filter(Boolean).join(" · ");
    if (m.available === false) opt.disabled = true;
    select.append(opt);
  }
  const model = app.state?.model;
  if (model) setModelValue(model);
  select.disabled = !canEdit() || models.length < 2;
}

function setModelValue(model) {
  const select = $("model-select");
  if (![...select.options].some((o) => o.value === model)) {
    const opt = document.createElement("option");
    opt.value = model;
    opt.textContent = model;
    select.append(opt);
  }
  select.value = model;
  select.dataset.current = model;
}

async function switchModel(model) {
  const select = $("model-select");
  const before = select.dataset.current;
  if (!canEdit() || model === before) return;
  try {
    await request("PUT", `${sp()}/model`, { json: { model } });
    select.dataset.current = model;
    app.switchingModel = true;
    const label = select.selectedOptions[0]?.textContent ?? model;
    toast(`Switching to ${label}: re-encoding the photo and replaying your prompts…`, "info");
    if (app.status === "ready") setStatus("reencoding", 0);
  } catch (e) {
    select.value = before;
    toast(e.message, "error", 6000);
  }
}

// ---------------------------------------------------------------- tools and hints

function setTool(tool) {
  app.tool = tool;
  body.dataset.tool = tool;
  $("tool-prompt").setAttribute("aria-pressed", String(tool === "prompt"));
  $("tool-brush").setAttribute("aria-pressed", String(tool === "brush"));
  $("tool-pan").setAttribute("aria-pressed", String(tool === "pan"));
  $("brush-row").hidden = tool !== "brush";
  $("tool-text").textContent =
    tool === "brush" ? "Brush" : tool === "pan" ? "Pan" : canEdit() ? "Click / box" : "";
  if (tool !== "brush") viewer.brushCursor = null;
  viewer.redraw();
  updateHint();
}

function brushRadius() {
  if (!app.photo) return 10;
  return (app.brushPercent / 100) * Math.max(app.photo.width, app.photo.height);
}

function updateBrushOutput() {
  $("brush-size").value = String(app.brushPercent);
  $("brush-size-out").textContent = app.photo ? `${Math.round(brushRadius())} px` : "";
}

function updateHint() {
  let hint = "";
  if (app.role === "view") hint = "View only: you see the masks live as the editor works.";
  else if (app.status !== "ready") hint = "";
  else if (app.tool === "brush") hint = "Paint over the object · Shift: paint background · [ ] brush size · V: click mode";
  else if (app.tool === "pan") hint = "Drag to pan · wheel to zoom · V: back to prompts";
  else if (!app.hasMask) hint = "Click the object · Shift+click: not the object · Drag: box · B: brush";
  else {
    hint = "Shift+click to remove a part · Enter or right-click: apply object";
    if (app.current.scores.length > 1) hint += " · Tab: other candidates";
  }
  $("stage-hint").textContent = hint;
  $("stage-hint").hidden = !hint;
}

function updateZoomText() {
  $("zoom-text").textContent = `${Math.round(viewer.zoomPercent())}%`;
}
viewer.onViewChange = updateZoomText;
viewer.cropLoader = loadCropImage;
viewer.edgeTargets = edgeTargets;
viewer.edgeLoader = loadEdge;

// ---------------------------------------------------------------- pointer input

const stage = $("stage");

function local(e) {
  const r = stage.getBoundingClientRect();
  return { x: e.clientX - r.left, y: e.clientY - r.top };
}

// Two fingers on a touch screen pinch-zoom and pan; a prompt started by the first finger is
// cancelled when the second lands, so zooming never drops a stray click.
const touches = new Map(); // pointerId → {x, y}

function pinchState() {
  const [a, b] = [...touches.values()];
  return { dist: Math.hypot(a.x - b.x, a.y - b.y), mid: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 } };
}

function touchDown(e) {
  if (e.pointerType !== "touch") return false;
  touches.set(e.pointerId, local(e));
  if (touches.size < 2) return false;
  app.gesture = null;
  viewer.gesture = null;
  app.pinch = pinchState();
  stage.setPointerCapture(e.pointerId);
  viewer.redraw();
  return true;
}

function touchMove(e) {
  if (e.pointerType !== "touch" || !touches.has(e.pointerId)) return false;
  touches.set(e.pointerId, local(e));
  if (!app.pinch || touches.size < 2) return false;
  const now = pinchState();
  if (app.pinch.dist > 0) viewer.zoomBy(now.dist / app.pinch.dist, now.mid.x, now.mid.y);
  viewer.panBy(now.mid.x - app.pinch.mid.x, now.mid.y - app.pinch.mid.y);
  app.pinch = now;
  return true;
}

function touchUp(e) {
  if (e.pointerType !== "touch") return false;
  touches.delete(e.pointerId);
  if (!app.pinch) return false;
  if (touches.size < 2) app.pinch = null;
  app.gesture = null; // the finger left over must not end in a click
  return true;
}

stage.addEventListener("pointerdown", (e) => {
  if (!app.photo) return;
  clearHover(); // a real click now: the preview has done its job
  if (touchDown(e) || app.pinch) return;
  const s = local(e);
  const wantsPan = e.button === 1 || (e.button === 0 && (app.spaceHeld || app.tool === "pan"));
  if (wantsPan) {
    e.preventDefault();
    app.pan = { x: s.x, y: s.y, pointer: e.pointerId };
    stage.classList.add("panning", "dragging");
    stage.setPointerCapture(e.pointerId);
    return;
  }
  if (e.button !== 0) return;
  if (!canEdit()) {
    toast("View only: this link cannot add prompts.", "info", 2500);
    return;
  }
  const p = viewer.screenToFull(s.x, s.y);
  if (app.tool === "brush") {
    if (!insidePhoto(app.photo, p.x, p.y)) return;
    app.gesture = { kind: "stroke", points: [[p.x, p.y]], radius: brushRadius(), positive: !e.shiftKey, last: s };
    viewer.gesture = app.gesture;
  } else {
    app.gesture = { kind: "press", start: p, startScreen: s, shift: e.shiftKey };
  }
  stage.setPointerCapture(e.pointerId);
  viewer.redraw();
});

stage.addEventListener("pointermove", (e) => {
  if (!app.photo) return;
  if (touchMove(e)) return;
  const s = local(e);
  const p = viewer.screenToFull(s.x, s.y);
  $("cursor-pos").textContent = insidePhoto(app.photo, p.x, p.y)
    ? `x ${Math.floor(p.x)}  y ${Math.floor(p.y)}`
    : "";
  if (app.pan) {
    viewer.panBy(s.x - app.pan.x, s.y - app.pan.y);
    app.pan.x = s.x;
    app.pan.y = s.y;
    return;
  }
  if (app.tool === "brush" && canEdit()) {
    viewer.brushCursor = { x: p.x, y: p.y, radius: brushRadius(), positive: !e.shiftKey };
  }
  if (e.buttons === 0 && e.pointerType !== "touch") hoverMoved(p, e.shiftKey);
  else clearHover();
  const g = app.gesture;
  if (g?.kind === "press") {
    if (Math.hypot(s.x - g.startScreen.x, s.y - g.startScreen.y) > CLICK_SLOP_PX) {
      app.gesture = { kind: "box", a: g.start, b: p };
      viewer.gesture = app.gesture;
    }
  } else if (g?.kind === "box") {
    g.b = p;
  } else if (g?.kind === "stroke") {
    if (Math.hypot(s.x - g.last.x, s.y - g.last.y) >= 2) {
      g.points.push([p.x, p.y]);
      g.last = s;
    }
  }
  viewer.redraw();
});

function endGesture(e, cancelled) {
  if (app.pan && (!e || e.pointerId === app.pan.pointer)) {
    app.pan = null;
    stage.classList.remove("dragging");
    if (!app.spaceHeld && app.tool !== "pan") stage.classList.remove("panning");
    return;
  }
  const g = app.gesture;
  app.gesture = null;
  viewer.gesture = null;
  viewer.redraw();
  if (!g || cancelled) return;
  if (g.kind === "press") {
    if (insidePhoto(app.photo, g.start.x, g.start.y)) {
      sendPrompt(pointPrompt(g.start.x, g.start.y, !(g.shift || e?.shiftKey)));
    }
  } else if (g.kind === "box") {
    const box = boxPrompt(app.photo, g.a, g.b);
    if (box.x1 - box.x0 >= 2 && box.y1 - box.y0 >= 2) sendPrompt(box);
  } else if (g.kind === "stroke") {
    sendPrompt(strokePrompt(app.photo, g.points, g.radius, g.positive));
  }
}

stage.addEventListener("pointerup", (e) => {
  if (!touchUp(e)) endGesture(e, false);
});
stage.addEventListener("pointercancel", (e) => {
  touchUp(e);
  endGesture(e, true);
});
stage.addEventListener("pointerleave", () => {
  clearHover();
  viewer.brushCursor = null;
  $("cursor-pos").textContent = "";
  viewer.redraw();
});
stage.addEventListener("contextmenu", (e) => {
  // Right-click applies the object, as in darktable's object mask tool.
  e.preventDefault();
  if (canEdit()) applyObject();
});
stage.addEventListener(
  "wheel",
  (e) => {
    e.preventDefault();
    const s = local(e);
    const lines = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    viewer.zoomBy(Math.exp(-e.deltaY * lines * 0.0015), s.x, s.y);
  },
  { passive: false },
);
stage.addEventListener("auxclick", (e) => e.button === 1 && e.preventDefault());

// ---------------------------------------------------------------- keyboard

/** Keys go to text fields and selects; sliders and buttons leave the shortcuts working. */
function typingInto(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || ["TEXTAREA", "SELECT"].includes(target.tagName)) return true;
  return target.tagName === "INPUT" && !["range", "checkbox", "file", "button"].includes(target.type);
}

function toggleHelp(show = $("help").hidden) {
  $("help").hidden = !show;
  if (show) $("help-close").focus();
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    if (!$("help").hidden) toggleHelp(false);
    else if (app.gesture) endGesture(null, true);
    objectsPanel.closeMenu();
    return;
  }
  if (typingInto(e.target)) return;
  if (!$("help").hidden) {
    if (e.key === "?") toggleHelp(false);
    return;
  }
  const ctrl = e.ctrlKey || e.metaKey;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (ctrl && key === "z") {
    e.preventDefault();
    if (e.shiftKey) redo();
    else undo();
    return;
  }
  if (ctrl && key === "y") {
    e.preventDefault();
    redo();
    return;
  }
  if (ctrl || e.altKey) return;
  switch (key) {
    case "?":
    case "F1":
      e.preventDefault();
      toggleHelp(true);
      break;
    case "Enter":
      // On a focused button Enter means "press the button"; elsewhere it applies.
      if (e.target instanceof HTMLButtonElement) return;
      e.preventDefault();
      applyObject();
      break;
    case "Tab":
      // Tab keeps moving the focus between controls; on the photo it cycles candidates,
      // where there are some (else it moves the focus as everywhere).
      if (e.target !== document.body && !stage.contains(e.target)) return;
      if (!hasCandidates()) return;
      e.preventDefault();
      cycleCandidate(e.shiftKey ? -1 : 1);
      break;
    case "c":
      cycleCandidate(1);
      break;
    case "b":
      if (canEdit()) setTool(app.tool === "brush" ? "prompt" : "brush");
      break;
    case "v":
      setTool("prompt");
      break;
    case "h":
      setTool(app.tool === "pan" ? "prompt" : "pan");
      break;
    case "[":
      app.brushPercent = Math.max(0.2, +(app.brushPercent / 1.2).toFixed(2));
      updateBrushOutput();
      refreshBrushCursor();
      break;
    case "]":
      app.brushPercent = Math.min(12, +(app.brushPercent * 1.2).toFixed(2));
      updateBrushOutput();
      refreshBrushCursor();
      break;
    case "Delete":
    case "Backspace":
      e.preventDefault();
      clearCurrent();
      break;
    case "m":
      toggleMasks();
      break;
    case "p":
      setHoverEnabled(!hover.enabled);
      toast(hover.enabled ? "Hover preview on." : "Hover preview off.", "info", 1500);
      break;
    case "f":
    case "0":
      viewer.fit();
      break;
    case "1":
      viewer.zoomTo(1);
      break;
    case "+":
    case "=":
      viewer.zoomBy(1.25);
      break;
    case "-":
    case "_":
      viewer.zoomBy(0.8);
      break;
    case " ":
      e.preventDefault();
      if (!app.spaceHeld) {
        app.spaceHeld = true;
        stage.classList.add("panning");
      }
      break;
    default:
      break;
  }
});

document.addEventListener("keyup", (e) => {
  if (e.key === " ") {
    app.spaceHeld = false;
    if (!app.pan && app.tool !== "pan") stage.classList.remove("panning");
  }
});

function refreshBrushCursor() {
  if (viewer.brushCursor) {
    viewer.brushCursor = { ...viewer.brushCursor, radius: brushRadius() };
    viewer.redraw();
  }
}

function toggleMasks() {
  viewer.showMasks = !viewer.showMasks;
  $("masks-btn").setAttribute("aria-pressed", String(viewer.showMasks));
  viewer.redraw();
}

// ---------------------------------------------------------------- buttons

function bindButtons() {
  $("tool-prompt").addEventListener("click", () => setTool("prompt"));
  $("tool-brush").addEventListener("click", () => setTool(app.tool === "brush" ? "prompt" : "brush"));
  $("tool-pan").addEventListener("click", () => setTool(app.tool === "pan" ? "prompt" : "pan"));
  $("undo-btn").addEventListener("click", undo);
  $("redo-btn").addEventListener("click", redo);
  $("clear-btn").addEventListener("click", clearCurrent);
  $("clear-btn-2").addEventListener("click", clearCurrent);
  $("apply-btn").addEventListener("click", applyObject);
  $("candidate-btn").addEventListener("click", () => cycleCandidate(1));
  $("fit-btn").addEventListener("click", () => viewer.fit());
  $("zoom100-btn").addEventListener("click", () => viewer.zoomTo(1));
  $("masks-btn").addEventListener("click", toggleMasks);
  $("hover-btn").addEventListener("click", () => setHoverEnabled(!hover.enabled));
  $("help-btn").addEventListener("click", () => toggleHelp(true));
  $("help-close").addEventListener("click", () => toggleHelp(false));
  $("help").addEventListener("click", (e) => e.target === $("help") && toggleHelp(false));
  $("dl-png").addEventListener("click", () => downloadAll("png"));
  $("dl-svg").addEventListener("click", () => downloadAll("svg"));
  $("dl-xmp").addEventListener("click", () => downloadAll("xmp"));
  for (const n of VECTOR_FIELDS) $(n).addEventListener("input", () => updateVectorOutputs());
  $("vector-settings").addEventListener("toggle", () => updateFeatherPreview());
  $("sidecar-remove").addEventListener("click", () => removeSidecar());
  $("mask-opacity").addEventListener("input", (e) => setOpacity(Number(e.target.value)));
  for (const op of COMBINE_OPS) $(`combine-${op}`).addEventListener("click", () => combineObjects(op));
  $("sidecar-input").addEventListener("change", (e) => {
    uploadSidecar(e.target.files[0]);
    e.target.value = "";
  });
  $("brush-size").addEventListener("input", (e) => {
    app.brushPercent = Number(e.target.value);
    updateBrushOutput();
  });
  $("model-select").addEventListener("change", (e) => {
    e.target.blur(); // give the keys back to the photo
    switchModel(e.target.value);
  });
  for (const [button, field] of [["copy-edit", "edit-link"], ["copy-view", "view-link"]]) {
    $(button).addEventListener("click", async () => {
      const ok = await copyText($(field).value);
      toast(ok ? "Link copied." : "Copy failed: select the link and copy it by hand.", ok ? "good" : "warn", 2000);
    });
  }
  for (const field of ["edit-link", "view-link"]) {
    $(field).addEventListener("focus", (e) => e.target.select());
  }
  $("delete-session").addEventListener("click", deleteSession);
  // Buttons keep no focus after a mouse click, so Space/Enter/Tab go to the photo tools.
  for (const b of document.querySelectorAll(".tool, .btn, .icon-btn")) {
    b.addEventListener("mouseup", () => b.blur());
  }
}

async function deleteSession() {
  if (!canEdit()) return;
  const sure = window.confirm(
    "Delete this session for good? Its objects go, and so does the photo unless someone " +
      "else uploaded it too. The edit and view links stop working.",
  );
  if (!sure) return;
  try {
    await request("DELETE", sp());
  } catch (e) {
    toast(e.message, "error", 6000);
    return;
  }
  forgetSession(app.state?.edit_url ?? window.location.pathname);
  app.socket?.close();
  window.location.assign("/");
}

// ---------------------------------------------------------------- start

function fatal(title, message) {
  const box = document.createElement("div");
  box.className = "fatal";
  box.innerHTML = `<div class="dialog"><h2></h2><p class="muted"></p>
    <p><a class="btn primary" href="/">Upload a photo</a></p></div>`;
  box.querySelector("h2").textContent = title;
  box.querySelector("p").textContent = message;
  document.body.append(box);
  body.dataset.status = "fatal";
}

async function start() {
  fillIcons();
  bindButtons();
  loadVectorSettings();
  loadOpacity();
  loadHoverEnabled();
  setTool("prompt");
  setStatus("loading");
  if (!app.token) {
    fatal("Not a session link", "This address does not name a maskweb session.");
    return;
  }
  try {
    applyState(await request("GET", sp()));
  } catch (e) {
    if (e.status === 404) {
      fatal("Session not found", "The link is wrong or the session was deleted.");
      return;
    }
    toast(e.message, "error", 8000);
  }
  loadModels();
  connect();
  askStatusWhenQuiet();
}

// A handle for the browser console and the end-to-end tests (view transform, state).
window.maskweb = { app, viewer };

start();
