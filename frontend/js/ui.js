// Small page helpers: toasts, clipboard, downloads that report the server's error message.

import { errorFromBody } from "./api.js";

const recentToasts = new Map();

/** Show a short message in the corner; the same text within 2 s is not repeated (floods). */
export function toast(message, kind = "info", ms = 4000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const now = Date.now();
  if (recentToasts.has(message) && now - recentToasts.get(message) < 2000) return;
  recentToasts.set(message, now);
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.textContent = message;
  box.append(el);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => {
    el.classList.add("leaving");
    setTimeout(() => el.remove(), 300);
  }, ms);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API needs a secure context; fall back to a temporary selection.
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.append(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

/** Pure: the file name in a Content-Disposition header, or null. */
export function filenameFromDisposition(header) {
  if (!header) return null;
  const star = header.match(/filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
    } catch {
      // fall through to the plain form
    }
  }
  const plain = header.match(/filename\s*=\s*("([^"]*)"|[^;]+)/);
  if (plain) return (plain[2] ?? plain[1]).trim();
  return null;
}

/**
 * Download a URL as a file. Fetches first so a 404 (export not available yet) or any server
 * error becomes a readable message instead of a broken download. Resolves to the file name.
 */
export async function download(url, fallbackName) {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) throw errorFromBody(res.status, await res.text());
  const blob = await res.blob();
  const name = filenameFromDisposition(res.headers.get("Content-Disposition")) || fallbackName;
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
  return name;
}

export function absoluteUrl(path) {
  return path ? new URL(path, window.location.origin).href : "";
}

/** Whether two texts say the same words (case, spaces and punctuation aside). */
export function sameWords(a, b) {
  const words = (s) => String(s).toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim();
  return words(a) === words(b);
}
