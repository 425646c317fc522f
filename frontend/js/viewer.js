// The picture area: two stacked canvases sized to the stage at device resolution.
//   #photo-canvas   the preview photo and the applied objects (each in its own colour)
//   #overlay-canvas the current object's mask (tint + outline), prompt markers, and what the
//                   pointer is doing (box being dragged, brush stroke, brush cursor)
// Everything is drawn in preview pixels through one view transform (geometry.js).

import {
  fitView,
  fullToPreview,
  MAX_SCREEN_PER_FULL_PIXEL,
  MIN_SCALE_FACTOR,
  photoScale,
  previewToFull,
  screenToPreview,
  zoomAt,
} from "./geometry.js";
import { CURRENT_COLOUR, featherTintCanvas, objectColour } from "./maskrender.js";

const rgb = ([r, g, b], a = 1) => `rgba(${r}, ${g}, ${b}, ${a})`;

// The true 100 % view's crops (maskweb.photos.crops has the same limit).
const CROP_MAX_SIDE = 2048;
const CROP_DELAY_MS = 150;
const CROP_MARGIN = 128;

export class Viewer {
  constructor(stage) {
    this.stage = stage;
    this.photoCanvas = stage.querySelector("#photo-canvas");
    this.overlayCanvas = stage.querySelector("#overlay-canvas");
    this.photoCtx = this.photoCanvas.getContext("2d");
    this.overlayCtx = this.overlayCanvas.getContext("2d");
    this.image = null; // HTMLImageElement of the preview
    this.photo = null; // session state's photo
    this.view = { scale: 1, tx: 0, ty: 0 };
    this.fitted = true; // keep fitting on resize until the user zooms or pans
    this.current = null; // renderable mask of the current object
    this.objects = []; // [{id, visible, mask: renderable}]
    this.prompts = [];
    this.gesture = null; // {kind: "box", a, b} | {kind: "stroke", points, radius, positive}
    this.brushCursor = null; // {x, y, radius} in full-res pixels
    this.showMasks = true;
    // How strongly mask tints cover the photo (the overlay opacity slider); the tints are
    // made opaque and drawn with this alpha.
    this.opacity = 0.45;
    this.highlightObject = null;
    // The true 100 % view: zoomed in past the working picture's own scale, the visible region
    // of the full-resolution photo ({x, y, w, h, image}, upright full-res pixels), drawn over
    // the enlarged working picture. cropLoader(region) → Promise<image> is set by the page.
    this.fullCrop = null;
    this.cropLoader = null;
    // The hover preview: the mask a click under the pointer would give (renderable), drawn
    // as an outline only, so it never looks like a mask that was made.
    this.hover = null;
    // The feather preview: the XMP's feather in working-picture pixels (0: off). Tints then
    // fade outwards over it, as darktable draws the sidecar's path border.
    this.feather = 0;
    this.cropTimer = 0;
    this.cropWanted = null;
    // In the crop, the masks' edges as the downloads will have them: id ("current" or an
    // object's) → {key, crop, mask}; edgeTargets() → [{id, key}] and edgeLoader(id, region)
    // → Promise<mask> are set by the page.
    this.fullEdges = new Map();
    this.edgeTargets = null;
    this.edgeLoader = null;
    this.cssW = 0;
    this.cssH = 0;
    this.dpr = 1;
    this.frame = 0;
    this.onViewChange = null;
    new ResizeObserver(() => this.resize()).observe(stage);
    this.resize();
  }

  resize() {
    const rect = this.stage.getBoundingClientRect();
    this.cssW = Math.max(1, rect.width);
    this.cssH = Math.max(1, rect.height);
    this.dpr = window.devicePixelRatio || 1;
    for (const c of [this.photoCanvas, this.overlayCanvas]) {
      c.width = Math.round(this.cssW * this.dpr);
      c.height = Math.round(this.cssH * this.dpr);
    }
    if (this.fitted) this.fit();
    else this.redraw();
  }

  setPhoto(image, photo) {
    this.fullCrop = null;
    this.cropWanted = null;
    this.image = image;
    this.photo = photo;
    this.fit();
  }

  get previewSize() {
    if (!this.photo) return { w: 1, h: 1 };
    return {
      w: this.photo.preview_width || this.image?.naturalWidth || this.photo.width,
      h: this.photo.preview_height || this.image?.naturalHeight || this.photo.height,
    };
  }

  fitScale() {
    const { w, h } = this.previewSize;
    return fitView(this.cssW, this.cssH, w, h).scale;
  }

  fit() {
    const { w, h } = this.previewSize;
    this.view = fitView(this.cssW, this.cssH, w, h);
    this.fitted = true;
    this.viewChanged();
  }

  /** Zoom so one full-resolution pixel is `cssPerPixel` CSS pixels, centred on a screen point. */
  zoomTo(cssPerPixel, sx = this.cssW / 2, sy = this.cssH / 2) {
    const target = cssPerPixel * photoScale(this.photo).sx;
    this.zoomBy(target / this.view.scale, sx, sy);
  }

  zoomBy(factor, sx = this.cssW / 2, sy = this.cssH / 2) {
    if (!this.photo) return;
    const minScale = this.fitScale() * MIN_SCALE_FACTOR;
    const maxScale = MAX_SCREEN_PER_FULL_PIXEL * photoScale(this.photo).sx;
    this.view = zoomAt(this.view, factor, sx, sy, minScale, maxScale);
    this.fitted = false;
    this.viewChanged();
  }

  panBy(dx, dy) {
    this.view = { ...this.view, tx: this.view.tx + dx, ty: this.view.ty + dy };
    this.fitted = false;
    this.viewChanged();
  }

  /** Percentage of full-resolution pixels per CSS pixel (100% = one photo pixel per CSS px). */
  zoomPercent() {
    if (!this.photo) return 100;
    return (100 * this.view.scale) / photoScale(this.photo).sx;
  }

  viewChanged() {
    this.redraw();
    this.onViewChange?.();
    this.scheduleCrop();
  }

  /** The visible region in upright full-resolution pixels (clamped to the photo, whole). */
  visibleFullRegion() {
    const a = this.screenToFull(0, 0);
    const b = this.screenToFull(this.cssW, this.cssH);
    const x0 = Math.max(0, Math.floor(Math.min(a.x, b.x)));
    const y0 = Math.max(0, Math.floor(Math.min(a.y, b.y)));
    const x1 = Math.min(this.photo.width, Math.ceil(Math.max(a.x, b.x)));
    const y1 = Math.min(this.photo.height, Math.ceil(Math.max(a.y, b.y)));
    return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
  }

  /**
   * Asks for the visible region at full resolution once the view has stopped moving for a
   * moment, when that shows more than the working picture: the photo is larger than it,
   * one of its pixels covers more than one screen pixel, and the region is at most
   * CROP_MAX_SIDE (the server's limit) a side. A crop that still covers the view is kept.
   */
  scheduleCrop() {
    clearTimeout(this.cropTimer);
    if (!this.photo || !this.cropLoader) return;
    const { w } = this.previewSize;
    const region = this.visibleFullRegion();
    const useful = this.photo.width > w * 1.01 && this.view.scale * this.dpr > 1
      && region.w > 0 && region.h > 0
      && region.w <= CROP_MAX_SIDE && region.h <= CROP_MAX_SIDE;
    if (!useful) {
      this.cropWanted = null;
      if (this.fullCrop) {
        this.fullCrop = null;
        this.fullEdges.clear();
        this.redraw();
      }
      return;
    }
    const c = this.fullCrop;
    if (c && c.x <= region.x && c.y <= region.y && c.x + c.w >= region.x + region.w
        && c.y + c.h >= region.y + region.h) return;
    this.cropTimer = setTimeout(() => this.loadCrop(region), CROP_DELAY_MS);
  }

  async loadCrop(region) {
    // A margin, so a small pan stays covered without asking again.
    const m = CROP_MARGIN;
    const x = Math.max(0, region.x - m);
    const y = Math.max(0, region.y - m);
    const wanted = {
      x, y,
      w: Math.min(this.photo.width, region.x + region.w + m, x + CROP_MAX_SIDE) - x,
      h: Math.min(this.photo.height, region.y + region.h + m, y + CROP_MAX_SIDE) - y,
    };
    this.cropWanted = wanted;
    try {
      const image = await this.cropLoader(wanted);
      if (this.cropWanted !== wanted) return; // the view moved on meanwhile
      this.fullCrop = { ...wanted, image };
      this.redraw();
      this.loadEdges();
    } catch {
      // The enlarged working picture stays: a nicety missing, nothing broken.
    }
  }

  /** Screen (CSS px relative to the stage) → full-resolution upright photo pixels. */
  screenToFull(sx, sy) {
    const p = screenToPreview(this.view, sx, sy);
    return previewToFull(this.photo, p.x, p.y);
  }

  redraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.drawPhoto();
      this.drawOverlay();
    });
  }

  /** Draw now (tests and screenshots want the canvas settled, not a frame later). */
  drawNow() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.drawPhoto();
    this.drawOverlay();
  }

  applyTransform(ctx) {
    const { scale, tx, ty } = this.view;
    const d = this.dpr;
    ctx.setTransform(d * scale, 0, 0, d * scale, d * tx, d * ty);
  }

  /** Line width in preview pixels for a wanted width in CSS pixels. */
  px(css) {
    return css / this.view.scale;
  }

  drawPhoto() {
    const ctx = this.photoCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.photoCanvas.width, this.photoCanvas.height);
    if (!this.image || !this.photo) return;
    const { w, h } = this.previewSize;
    this.applyTransform(ctx);
    // Crisp pixels once zoomed past 1:1 on the preview, smooth when zoomed out.
    ctx.imageSmoothingEnabled = this.view.scale * this.dpr < 2;
    ctx.imageSmoothingQuality = "high";
    ctx.shadowColor = "rgba(0,0,0,0.6)";
    ctx.shadowBlur = 24 * this.dpr;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, h);
    ctx.shadowBlur = 0;
    ctx.drawImage(this.image, 0, 0, w, h);
    if (this.fullCrop) {
      const c = this.fullCrop;
      const kx = this.photo.width / w;
      const ky = this.photo.height / h;
      // Crisp full-resolution pixels once each covers two screen pixels or more.
      ctx.imageSmoothingEnabled = (this.view.scale * this.dpr) / kx < 2;
      ctx.drawImage(c.image, c.x / kx, c.y / ky, c.w / kx, c.h / ky);
    }
    if (!this.showMasks) return;
    for (const obj of this.objects) {
      if (!obj.visible || !obj.mask || !obj.mask.area) continue;
      const colour = obj.colour ?? objectColour(obj.id);
      const strong = this.highlightObject === obj.id;
      // Applied objects: their own colour, a solid outline on a dark halo (seen on light and
      // dark photos alike); the one hovered in the list stronger.
      ctx.globalAlpha = Math.min(1, this.opacity * (strong ? 1.5 : 1));
      ctx.drawImage(this.tintOf(obj.mask), 0, 0, w, h);
      ctx.globalAlpha = 1;
      this.strokeEdge(ctx, obj.id, obj.mask, "rgba(0, 0, 0, 0.5)", strong ? 4.5 : 3.5);
      this.strokeEdge(ctx, obj.id, obj.mask, rgb(colour, 1), strong ? 2.5 : 1.75);
    }
  }

  /** Asks for the full-resolution edge of every mask shown, in the crop, unless it has it. */
  loadEdges() {
    const crop = this.fullCrop;
    if (!crop || !this.edgeTargets || !this.edgeLoader) return;
    const wanted = this.edgeTargets();
    const ids = new Set(wanted.map((t) => t.id));
    for (const id of [...this.fullEdges.keys()]) if (!ids.has(id)) this.fullEdges.delete(id);
    for (const { id, key } of wanted) {
      const have = this.fullEdges.get(id);
      if (have && have.key === key && have.crop === crop) continue;
      const entry = { key, crop, mask: null };
      this.fullEdges.set(id, entry);
      const { x, y, w, h } = crop;
      this.edgeLoader(id, { x, y, w, h }).then((mask) => {
        if (this.fullEdges.get(id) !== entry) return; // superseded meanwhile
        entry.mask = mask;
        this.redraw();
      }).catch(() => {
        // the working mask's outline stays
      });
    }
  }

  /**
   * The outline of a mask: inside the full-resolution crop, the edge the downloads have
   * (when loaded), the working mask's outside it.
   */
  strokeEdge(ctx, id, mask, colour, cssWidth, dash = null) {
    const edge = this.fullEdges.get(id);
    const c = this.fullCrop;
    if (!c || !edge || edge.crop !== c || !edge.mask) {
      this.strokeOutline(ctx, mask, colour, cssWidth, dash);
      return;
    }
    const { w, h } = this.previewSize;
    const rect = { x: (c.x * w) / this.photo.width, y: (c.y * h) / this.photo.height,
                   w: (c.w * w) / this.photo.width, h: (c.h * h) / this.photo.height };
    ctx.save();
    const outside = new Path2D();
    outside.rect(-w, -h, 3 * w, 3 * h);
    outside.rect(rect.x, rect.y, rect.w, rect.h);
    ctx.clip(outside, "evenodd");
    this.strokeOutline(ctx, mask, colour, cssWidth, dash);
    ctx.restore();
    ctx.save();
    const inside = new Path2D();
    inside.rect(rect.x, rect.y, rect.w, rect.h);
    ctx.clip(inside);
    this.strokeOutline(ctx, edge.mask, colour, cssWidth, dash, rect);
    ctx.restore();
  }

  /** The mask's tint, feathered while the feather preview is on (made once per radius). */
  tintOf(mask) {
    if (!(this.feather > 0) || !mask.source) return mask.tint;
    // The radius in the mask's own pixels (a mask may come at another size than the preview).
    const radius = (this.feather * mask.width) / this.previewSize.w;
    if (mask.feathered?.radius !== radius) {
      mask.feathered = { radius, canvas: featherTintCanvas(mask.source, mask.colour, radius) };
    }
    return mask.feathered.canvas;
  }

  /** `rect`: where the mask lies in preview pixels (default: the whole preview). */
  strokeOutline(ctx, mask, colour, cssWidth, dash = null, rect = null) {
    if (!mask.outline) return;
    const { w, h } = this.previewSize;
    const r = rect ?? { x: 0, y: 0, w, h };
    ctx.save();
    // Masks may come at another size than the preview (a full-res download): scale them.
    ctx.translate(r.x, r.y);
    ctx.scale(r.w / mask.width, r.h / mask.height);
    ctx.lineWidth = this.px(cssWidth) * (mask.width / r.w);
    ctx.strokeStyle = colour;
    ctx.lineCap = "square";
    if (dash) ctx.setLineDash(dash.map((d) => this.px(d) * (mask.width / r.w)));
    ctx.stroke(mask.outline);
    ctx.restore();
  }

  drawOverlay() {
    const ctx = this.overlayCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlayCanvas.width, this.overlayCanvas.height);
    if (!this.photo) return;
    const { w, h } = this.previewSize;
    this.applyTransform(ctx);
    if (this.showMasks && this.current && this.current.area) {
      ctx.imageSmoothingEnabled = false;
      ctx.globalAlpha = Math.min(1, this.opacity);
      ctx.drawImage(this.tintOf(this.current), 0, 0, w, h);
      ctx.globalAlpha = 1;
      // A dark halo under the bright line keeps the outline visible on light and dark photos;
      // white dashes over the blue mark the object being edited, as a selection's "marching
      // ants" do, apart from the applied ones.
      this.strokeEdge(ctx, "current", this.current, "rgba(0, 0, 0, 0.55)", 4);
      this.strokeEdge(ctx, "current", this.current, rgb(CURRENT_COLOUR, 1), 2.25);
      this.strokeEdge(ctx, "current", this.current, "rgba(255, 255, 255, 0.9)", 1, [4, 4]);
    }
    if (this.hover && this.hover.area) {
      this.strokeOutline(ctx, this.hover, "rgba(0, 0, 0, 0.6)", 3);
      this.strokeOutline(ctx, this.hover, "rgba(255, 214, 10, 0.95)", 1.5, [6, 4]);
    }
    this.drawPrompts(ctx);
    this.drawGesture(ctx);
    this.drawBrushCursor(ctx);
  }

  toPreview(x, y) {
    return fullToPreview(this.photo, x, y);
  }

  drawPrompts(ctx) {
    for (const p of this.prompts) {
      if (p.kind === "point") this.drawPoint(ctx, p);
      else if (p.kind === "box") this.drawBox(ctx, p, false);
      else if (p.kind === "stroke") this.drawStroke(ctx, p, 0.35);
    }
  }

  drawPoint(ctx, p) {
    const c = this.toPreview(p.x, p.y);
    const r = this.px(7);
    ctx.beginPath();
    ctx.arc(c.x, c.y, r, 0, 2 * Math.PI);
    ctx.fillStyle = p.positive === false ? "#e5484d" : "#30a46c";
    ctx.fill();
    ctx.lineWidth = this.px(2);
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    // + for foreground, − for background: readable without colour vision.
    ctx.beginPath();
    const k = r * 0.5;
    ctx.moveTo(c.x - k, c.y);
    ctx.lineTo(c.x + k, c.y);
    if (p.positive !== false) {
      ctx.moveTo(c.x, c.y - k);
      ctx.lineTo(c.x, c.y + k);
    }
    ctx.lineWidth = this.px(1.75);
    ctx.stroke();
  }

  drawBox(ctx, b, live) {
    const a = this.toPreview(b.x0, b.y0);
    const z = this.toPreview(b.x1, b.y1);
    ctx.save();
    ctx.lineWidth = this.px(live ? 1.5 : 2);
    ctx.strokeStyle = "rgba(0,0,0,0.6)";
    ctx.strokeRect(a.x, a.y, z.x - a.x, z.y - a.y);
    ctx.setLineDash([this.px(6), this.px(4)]);
    ctx.strokeStyle = live ? "#ffd166" : "#f5f5f5";
    ctx.strokeRect(a.x, a.y, z.x - a.x, z.y - a.y);
    ctx.restore();
  }

  drawStroke(ctx, s, alpha) {
    if (!s.points || !s.points.length) return;
    const pts = s.points.map(([x, y]) => this.toPreview(x, y));
    const radius = fullToPreview(this.photo, s.radius, 0).x;
    ctx.save();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = Math.max(this.px(2), 2 * radius);
    ctx.strokeStyle = s.positive === false ? `rgba(229,72,77,${alpha})` : `rgba(48,164,108,${alpha})`;
    ctx.beginPath();
    ctx.moveTo(pts[0].x, pts[0].y);
    for (const p of pts.slice(1)) ctx.lineTo(p.x, p.y);
    if (pts.length === 1) ctx.lineTo(pts[0].x + 0.01, pts[0].y);
    ctx.stroke();
    ctx.restore();
  }

  drawGesture(ctx) {
    const g = this.gesture;
    if (!g) return;
    if (g.kind === "box") {
      this.drawBox(
        ctx,
        {
          x0: Math.min(g.a.x, g.b.x),
          y0: Math.min(g.a.y, g.b.y),
          x1: Math.max(g.a.x, g.b.x),
          y1: Math.max(g.a.y, g.b.y),
        },
        true,
      );
    } else if (g.kind === "stroke") {
      this.drawStroke(ctx, g, 0.55);
    }
  }

  drawBrushCursor(ctx) {
    const b = this.brushCursor;
    if (!b) return;
    const c = this.toPreview(b.x, b.y);
    const r = fullToPreview(this.photo, b.radius, 0).x;
    ctx.beginPath();
    ctx.arc(c.x, c.y, r, 0, 2 * Math.PI);
    ctx.lineWidth = this.px(3);
    ctx.strokeStyle = "rgba(0,0,0,0.5)";
    ctx.stroke();
    ctx.lineWidth = this.px(1.25);
    ctx.strokeStyle = b.positive === false ? "#ff8a8d" : "#fff";
    ctx.stroke();
  }
}
