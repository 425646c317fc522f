// Recently opened sessions, kept in this browser only (localStorage), so a photographer can
// get back to an edit link without bookmarking it.

const KEY = "maskweb.recent";
const MAX = 8;

export function loadRecent(storage = window.localStorage) {
  try {
    const list = JSON.parse(storage.getItem(KEY) || "[]");
    return Array.isArray(list) ? list.filter((e) => e && typeof e.url === "string") : [];
  } catch {
    return [];
  }
}

/** Remember a session (newest first, one entry per url). */
export function rememberSession(entry, storage = window.localStorage) {
  try {
    const list = loadRecent(storage).filter((e) => e.url !== entry.url);
    list.unshift({ ...entry, at: Date.now() });
    storage.setItem(KEY, JSON.stringify(list.slice(0, MAX)));
  } catch {
    // Private mode or storage full: remembering is a nicety, never an error.
  }
}

/** Forget a session (it was deleted). */
export function forgetSession(url, storage = window.localStorage) {
  try {
    const list = loadRecent(storage).filter((e) => e.url !== url);
    storage.setItem(KEY, JSON.stringify(list));
  } catch {
    // as for rememberSession
  }
}

export function timeAgo(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
