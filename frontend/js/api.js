// HTTP side of the maskweb protocol (docs/protocol.md). Every request goes through here so the
// error shape ({"error": {"code", "message"}}) is turned into one readable message in one place.

export const API = "/api/v1";

/** An HTTP failure with the server's error code and message (or a generic one). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

const FALLBACK_MESSAGES = {
  400: "The server could not read this request.",
  403: "This link is read-only.",
  404: "Not found: the link may be wrong or the session was deleted.",
  413: "The file is too large.",
  415: "This file type is not supported.",
  429: "Too many requests: slow down a little.",
  500: "The server failed. Try again in a moment.",
  502: "The server is not reachable.",
  503: "The server is busy or restarting. Try again in a moment.",
};

/**
 * Turn a response body (text, maybe JSON) and status into an ApiError.
 * Pure, so it can be unit-tested without a server.
 */
export function errorFromBody(status, bodyText) {
  let code = `http_${status}`;
  let message = "";
  try {
    const body = JSON.parse(bodyText);
    const err = body && typeof body === "object" ? body.error ?? body : null;
    if (err && typeof err === "object") {
      if (typeof err.code === "string") code = err.code;
      if (typeof err.message === "string") message = err.message;
      else if (typeof err.detail === "string") message = err.detail;
    } else if (typeof err === "string") {
      message = err;
    }
  } catch {
    // Not JSON (a proxy's HTML error page, say): fall through to the generic message.
  }
  if (!message) {
    message = FALLBACK_MESSAGES[status] ?? `Request failed (HTTP ${status}).`;
  }
  return new ApiError(status, code, message);
}

/** Django's CSRF cookie, if the server set one (API views may be exempt; sending it is harmless). */
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

/** fetch() wrapper: JSON in/out, throws ApiError with the server's message on non-2xx. */
export async function request(method, path, { json, body, headers = {}, raw = false } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") {
    const csrf = csrfToken();
    if (csrf) init.headers["X-CSRFToken"] = csrf;
  }
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", "The server is not reachable. Check your connection.");
  }
  if (!res.ok) {
    throw errorFromBody(res.status, await res.text());
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function sessionPath(token) {
  return `${API}/sessions/${encodeURIComponent(token)}`;
}

/** The models answer may be a list or {models: [...], default: id}; items strings or objects. */
export function normalizeModels(answer) {
  const list = Array.isArray(answer) ? answer : answer?.models ?? [];
  let defaultId = Array.isArray(answer) ? null : answer?.default ?? null;
  const models = list.map((m) => {
    if (typeof m === "string") return { id: m, label: m, description: "" };
    const id = String(m.id ?? m.model ?? m.name);
    if (m.default === true && !defaultId) defaultId = id;
    return {
      id,
      label: String(m.label ?? m.title ?? m.display_name ?? m.name ?? id),
      description: String(m.description ?? m.licence ?? m.license ?? ""),
      available: m.available !== false && m.installed !== false,
    };
  });
  return { models, defaultId };
}

/**
 * Upload with progress (fetch has no upload progress, XMLHttpRequest does).
 * onProgress(fraction 0..1, loadedBytes, totalBytes). Resolves with the session state.
 */
export function uploadPhoto(file, { model, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("photo", file, file.name);
    if (model) form.append("model", model);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${API}/sessions`);
    const csrf = csrfToken();
    if (csrf) xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.responseType = "text";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total, e.loaded, e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, "bad_response", "The server sent an unreadable answer."));
        }
      } else {
        reject(errorFromBody(xhr.status, xhr.responseText));
      }
    };
    xhr.onerror = () =>
      reject(new ApiError(0, "network", "The upload failed: the server is not reachable."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled."));
    xhr.send(form);
  });
}

export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${units[i]}`;
}

/** The session token in a page path /s/<token>/ (null when the path is not a session page). */
export function tokenFromPath(pathname) {
  const m = /\/s\/([^/]+)\/?$/.exec(pathname);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

/**
 * Query string for the SVG / XMP downloads' vectorization settings (potrace's names, as
 * maskweb.segment.vectorize.VectorizeOptions): only the ones the server advertises in
 * state.vectorize, so a server without them gets plain URLs. `feather` is for the XMP only.
 */
export function vectorQuery(values, advertised, kind) {
  if (!advertised || typeof advertised !== "object") return "";
  const names = ["turdsize", "alphamax", "opttolerance"];
  if (kind === "xmp") names.push("feather");
  const parts = names
    .filter((n) => n in advertised && Number.isFinite(values[n]))
    .map((n) => `${n}=${encodeURIComponent(values[n])}`);
  return parts.length ? `?${parts.join("&")}` : "";
}
