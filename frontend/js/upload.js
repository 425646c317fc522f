// Upload page: pick or drop one photo, show upload progress, show the server's error message,
// go to the session page (the edit link) on success.

import { API, formatBytes, normalizeModels, request, uploadPhoto } from "./api.js";
import { fillIcons } from "./icons.js";
import { loadRecent, rememberSession, timeAgo } from "./recent.js";

fillIcons();

const zone = document.getElementById("dropzone");
const input = document.getElementById("file-input");
const title = document.getElementById("drop-title");
const thumb = document.getElementById("thumb");
const progress = document.getElementById("upload-progress");
const fill = document.getElementById("upload-fill");
const progressText = document.getElementById("upload-text");
const errorBox = document.getElementById("upload-error");
const modelSelect = document.getElementById("model-select");

const ACCEPTED_EXT = /\.(jpe?g|png|webp|tiff?)$/i;
const ACCEPTED_TYPES = new Set(["image/jpeg", "image/png", "image/webp", "image/tiff"]);
let uploading = false;

function showError(message, code) {
  errorBox.innerHTML = "";
  const strong = document.createElement("strong");
  strong.textContent = "Upload failed: ";
  errorBox.append(strong, document.createTextNode(message));
  if (code) errorBox.dataset.code = code;
  else delete errorBox.dataset.code;
  errorBox.hidden = false;
}

function resetZone() {
  uploading = false;
  fill.parentElement.classList.remove("indeterminate");
  zone.classList.remove("uploading");
  progress.hidden = true;
  title.textContent = "Drop a photo here or click to choose";
}

// The thumbnail is drawn on a canvas from the file itself: an <img> would need a blob: URL,
// which the page's Content-Security-Policy (images from this site only) does not allow.
async function showThumb(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return; // the browser cannot decode it: the server says what is wrong with it
  }
  const scale = Math.min(1, 440 / bitmap.width, 280 / bitmap.height);
  thumb.width = Math.max(1, Math.round(bitmap.width * scale));
  thumb.height = Math.max(1, Math.round(bitmap.height * scale));
  thumb.getContext("2d").drawImage(bitmap, 0, 0, thumb.width, thumb.height);
  bitmap.close();
  if (uploading) thumb.hidden = false;
}

async function start(file) {
  if (uploading || !file) return;
  errorBox.hidden = true;
  // A quick local check for the obvious mistake; the server has the final word on content.
  if (!ACCEPTED_TYPES.has(file.type) && !ACCEPTED_EXT.test(file.name)) {
    showError(`“${file.name}” is not a JPEG, PNG, WebP or TIFF photo.`, "unsupported_type");
    return;
  }
  if (file.size === 0) {
    showError(`“${file.name}” is empty (0 bytes).`, "invalid_image");
    return;
  }
  uploading = true;
  zone.classList.add("uploading");
  title.textContent = file.name;
  thumb.hidden = true;
  if (file.type !== "image/tiff" && file.size < 60e6) showThumb(file);
  progress.hidden = false;
  fill.style.width = "0%";
  progressText.textContent = `Uploading… 0 of ${formatBytes(file.size)}`;
  try {
    const state = await uploadPhoto(file, {
      model: modelSelect.value || undefined,
      onProgress: (f, loaded, total) => {
        fill.style.width = `${(100 * f).toFixed(1)}%`;
        // Sent: the server now decodes and checks it, which takes a moment for 50 MP.
        fill.parentElement.classList.toggle("indeterminate", f >= 1);
        progressText.textContent =
          f < 1
            ? `Uploading… ${formatBytes(loaded)} of ${formatBytes(total)}`
            : "Checking the photo…";
      },
    });
    progressText.textContent = "Opening the editor…";
    fill.style.width = "100%";
    const editUrl = state.edit_url;
    rememberSession({ url: editUrl, name: state.photo?.name ?? file.name });
    window.location.assign(editUrl);
  } catch (err) {
    resetZone();
    thumb.hidden = true;
    showError(err.message, err.code);
  }
}

zone.addEventListener("click", () => {
  if (!uploading) input.click();
});
zone.addEventListener("keydown", (e) => {
  if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    if (!uploading) input.click();
  }
});
input.addEventListener("change", () => {
  start(input.files[0]);
  input.value = "";
});
for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) {
  zone.addEventListener(type, () => zone.classList.remove("over"));
}
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  const files = [...(e.dataTransfer?.files ?? [])];
  if (files.length > 1) {
    showError("Drop one photo at a time.", "too_many_files");
    return;
  }
  start(files[0]);
});
// A photo dropped anywhere on the page is meant for the drop zone, not for the browser to open.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => {
  if (!zone.contains(e.target)) {
    e.preventDefault();
    start(e.dataTransfer?.files?.[0]);
  }
});
// Pasting a copied image works too.
window.addEventListener("paste", (e) => {
  const file = [...(e.clipboardData?.files ?? [])][0];
  if (file) start(file);
});

async function loadModels() {
  try {
    const { models, defaultId } = normalizeModels(await request("GET", `${API}/models`));
    if (!models.length) return;
    modelSelect.innerHTML = "";
    for (const m of models) {
      const opt = document.createElement("option");
      opt.value = m.id;
      opt.textContent = m.id === defaultId ? `${m.label} (default)` : m.label;
      if (m.description) opt.title = m.description;
      if (m.available === false) opt.disabled = true;
      modelSelect.append(opt);
    }
    if (defaultId) modelSelect.value = defaultId;
    modelSelect.disabled = false;
  } catch {
    // The server picks its default model; the picker is only a convenience here.
  }
}

function showRecent() {
  const list = loadRecent();
  if (!list.length) return;
  const ul = document.getElementById("recent-list");
  for (const entry of list) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = entry.url;
    const name = document.createElement("span");
    name.textContent = entry.name || entry.url;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = entry.at ? timeAgo(entry.at) : "";
    a.append(name, when);
    li.append(a);
    ul.append(li);
  }
  document.getElementById("recent").hidden = false;
}

loadModels();
showRecent();
