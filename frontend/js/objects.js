// The objects panel: one row per applied object with rename, hide, reopen, downloads, delete.
// It only renders and reports what the user asked; session.js talks to the server.

import { icon } from "./icons.js";
import { colourOf, toHex } from "./maskrender.js";

/** Pure: the area (full-resolution pixels) as a share of the photo ("12.4 %", "< 0.1 %"). */
export function areaText(area, photo) {
  if (!Number.isFinite(area) || !photo || !photo.width || !photo.height) return "";
  const pct = (100 * area) / (photo.width * photo.height);
  if (pct > 0 && pct < 0.1) return "< 0.1 %";
  return `${pct.toFixed(pct < 10 ? 1 : 0)} %`;
}

export class ObjectsPanel {
  /**
   * actions: rename(id, name), toggle(id, visible), colour(id, "#rrggbb"), reopen(id), remove(id),
   * download(id, format), hover(id | null), select(ids): the objects ticked for combining,
   * in the order they were ticked (a difference takes the first less the others). canEdit() says whether write actions are shown.
   */
  constructor(list, countEl, actions, canEdit) {
    this.list = list;
    this.countEl = countEl;
    this.actions = actions;
    this.canEdit = canEdit;
    this.objects = [];
    this.photo = null;
    this.openMenu = null;
    this.renaming = false;
    this.deferred = false;
    this.selected = [];
    document.addEventListener("pointerdown", (e) => {
      if (this.openMenu && !this.openMenu.contains(e.target)) this.closeMenu();
    });
  }

  clearSelection() {
    this.selected = [];
    for (const tick of this.list.querySelectorAll(".select-object")) tick.checked = false;
    this.actions.select?.([]);
  }

  closeMenu() {
    this.openMenu?.querySelector(".menu")?.remove();
    this.openMenu = null;
  }

  render(objects, photo) {
    this.objects = objects;
    this.photo = photo;
    // A list update (another editor, a late broadcast) must not eat a rename being typed:
    // it is drawn when the rename ends.
    if (this.renaming) {
      this.deferred = true;
      return;
    }
    this.closeMenu();
    const present = new Set(objects.map((o) => o.id));
    const kept = this.selected.filter((id) => present.has(id));
    if (kept.length !== this.selected.length) {
      this.selected = kept;
      this.actions.select?.([...kept]);
    }
    this.list.innerHTML = "";
    this.countEl.textContent = objects.length ? String(objects.length) : "";
    if (!objects.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = this.canEdit()
        ? "None yet. Press Enter or right-click to apply the current mask as an object."
        : "No objects applied yet.";
      this.list.append(li);
      return;
    }
    for (const obj of objects) this.list.append(this.row(obj));
  }

  row(obj) {
    const li = document.createElement("li");
    li.className = "object" + (obj.visible === false ? " hidden-object" : "");
    li.dataset.id = String(obj.id);
    li.addEventListener("mouseenter", () => this.actions.hover(obj.id));
    li.addEventListener("mouseleave", () => this.actions.hover(null));

    // The swatch is the colour picker (the browser's own) for an editor.
    const swatch = document.createElement(this.canEdit() ? "label" : "span");
    swatch.className = "swatch";
    const hex = toHex(colourOf(obj));
    swatch.style.background = hex;
    if (this.canEdit()) {
      swatch.title = "Overlay colour";
      const picker = document.createElement("input");
      picker.type = "color";
      picker.className = "colour-input";
      picker.value = hex;
      picker.setAttribute("aria-label", `Overlay colour of ${obj.name || `Object ${obj.id}`}`);
      picker.addEventListener("change", () => {
        swatch.style.background = picker.value;
        if (picker.value !== hex) this.actions.colour(obj.id, picker.value);
      });
      swatch.append(picker);
    }

    const name = document.createElement("span");
    name.className = "name";
    name.textContent = obj.name || `Object ${obj.id}`;
    name.title = this.canEdit() ? "Double-click to rename" : name.textContent;
    if (this.canEdit()) name.addEventListener("dblclick", () => this.startRename(li, obj));

    const area = document.createElement("span");
    area.className = "area";
    area.textContent = areaText(obj.area, this.photo);

    if (this.canEdit()) {
      const tick = document.createElement("input");
      tick.type = "checkbox";
      tick.className = "select-object";
      tick.title = "Select to combine (union, subtract, intersect) or invert";
      tick.setAttribute("aria-label", `Select ${obj.name || `Object ${obj.id}`}`);
      tick.checked = this.selected.includes(obj.id);
      tick.addEventListener("change", () => {
        this.selected = tick.checked
          ? [...this.selected.filter((id) => id !== obj.id), obj.id]
          : this.selected.filter((id) => id !== obj.id);
        this.actions.select?.([...this.selected]);
      });
      li.append(tick);
    }
    if (obj.combination) li.classList.add("combined");
    li.append(swatch, name, area);

    if (this.canEdit()) {
      const eye = this.iconButton(obj.visible === false ? "eyeOff" : "eye",
        obj.visible === false ? "Show" : "Hide", () => this.actions.toggle(obj.id, obj.visible === false));
      eye.classList.add("toggle-visible");
      if (obj.visible === false) eye.classList.add("off");
      li.append(eye);
      // A combined object has no prompts of its own to refine.
      if (!obj.combination) {
        const reopen = this.iconButton("reopen", "Reopen for more prompts", () => this.actions.reopen(obj.id));
        reopen.classList.add("reopen");
        li.append(reopen);
      }
    }

    const wrap = document.createElement("span");
    wrap.className = "menu-wrap";
    const more = this.iconButton("more", "Downloads and more", () => this.toggleMenu(wrap, obj));
    more.classList.add("more");
    wrap.append(more);
    li.append(wrap);
    return li;
  }

  iconButton(iconName, title, onClick) {
    const b = document.createElement("button");
    b.className = "icon-btn";
    b.type = "button";
    b.title = title;
    b.setAttribute("aria-label", title);
    b.innerHTML = icon(iconName);
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      onClick();
    });
    return b;
  }

  toggleMenu(wrap, obj) {
    if (this.openMenu === wrap) {
      this.closeMenu();
      return;
    }
    this.closeMenu();
    const menu = document.createElement("div");
    menu.className = "menu";
    const item = (iconName, label, fn, cls = "") => {
      const b = document.createElement("button");
      b.type = "button";
      if (cls) b.className = cls;
      b.innerHTML = `${icon(iconName)}<span></span>`;
      b.querySelector("span").textContent = label;
      b.addEventListener("click", (e) => {
        e.stopPropagation();
        this.closeMenu();
        fn();
      });
      menu.append(b);
    };
    item("download", "Download PNG mask", () => this.actions.download(obj.id, "png"), "dl-object-png");
    item("download", "Download PNG, soft edge", () => this.actions.download(obj.id, "soft-png"),
      "dl-object-soft-png");
    item("download", "Download PNG for darktable raster masks (16-bit, sensor orientation)",
      () => this.actions.download(obj.id, "raster-png"), "dl-object-raster-png");
    item("download", "Download SVG paths", () => this.actions.download(obj.id, "svg"), "dl-object-svg");
    item("download", "Download darktable XMP", () => this.actions.download(obj.id, "xmp"), "dl-object-xmp");
    if (this.canEdit()) {
      const li = wrap.closest(".object");
      item("edit", "Rename", () => this.startRename(li, obj));
      item("trash", "Delete", () => {
        if (window.confirm(`Delete “${obj.name || `Object ${obj.id}`}”?`)) this.actions.remove(obj.id);
      }, "delete-object");
    }
    wrap.append(menu);
    this.openMenu = wrap;
  }

  startRename(li, obj) {
    const name = li.querySelector(".name");
    if (!name) return;
    this.renaming = true;
    const input = document.createElement("input");
    input.className = "name-input";
    input.value = obj.name || "";
    input.maxLength = 120;
    name.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      this.renaming = false;
      const value = input.value.trim();
      input.replaceWith(name);
      if (save && value && value !== obj.name) {
        name.textContent = value;
        // Until the server's answer, the list shows the new name (also after a deferred draw).
        this.objects = this.objects.map((o) => (o.id === obj.id ? { ...o, name: value } : o));
        this.actions.rename(obj.id, value);
      }
      if (this.deferred) {
        this.deferred = false;
        this.render(this.objects, this.photo);
      }
    };
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") finish(true);
      else if (e.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
  }
}
