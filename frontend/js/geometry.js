// Coordinate spaces, kept apart on purpose:
//   screen  : CSS pixels relative to the canvas element (mouse events)
//   preview : pixels of the displayed preview image (what the canvas draws, masks arrive in it)
//   full    : continuous pixels of the FULL-RESOLUTION upright photo (what the server wants)
// A view is {scale, tx, ty}: screen = preview * scale + t.

export const MIN_SCALE_FACTOR = 0.25; // relative to "fit"
export const MAX_SCREEN_PER_FULL_PIXEL = 16; // deepest zoom: one full-res pixel = 16 CSS px

/** The view that shows the whole image centred in the container with a margin. */
export function fitView(containerW, containerH, imageW, imageH, margin = 16) {
  const availW = Math.max(1, containerW - 2 * margin);
  const availH = Math.max(1, containerH - 2 * margin);
  const scale = Math.max(1e-6, Math.min(availW / imageW, availH / imageH));
  return {
    scale,
    tx: (containerW - imageW * scale) / 2,
    ty: (containerH - imageH * scale) / 2,
  };
}

export function screenToPreview(view, sx, sy) {
  return { x: (sx - view.tx) / view.scale, y: (sy - view.ty) / view.scale };
}

export function previewToScreen(view, px, py) {
  return { x: px * view.scale + view.tx, y: py * view.scale + view.ty };
}

/** Zoom by `factor` keeping the preview point under (sx, sy) fixed; scale clamped to [min, max]. */
export function zoomAt(view, factor, sx, sy, minScale = 0, maxScale = Infinity) {
  const scale = Math.min(maxScale, Math.max(minScale, view.scale * factor));
  const k = scale / view.scale;
  return { scale, tx: sx - (sx - view.tx) * k, ty: sy - (sy - view.ty) * k };
}

/** Scale factors between preview pixels and full-resolution pixels for a session's photo. */
export function photoScale(photo) {
  const pw = photo.preview_width || photo.width;
  const ph = photo.preview_height || photo.height;
  return { sx: photo.width / pw, sy: photo.height / ph };
}

export function previewToFull(photo, x, y) {
  const { sx, sy } = photoScale(photo);
  return { x: x * sx, y: y * sy };
}

export function fullToPreview(photo, x, y) {
  const { sx, sy } = photoScale(photo);
  return { x: x / sx, y: y / sy };
}

/** Is a full-resolution point on the photo? (continuous pixels: [0, w) x [0, h)) */
export function insidePhoto(photo, x, y) {
  return x >= 0 && y >= 0 && x < photo.width && y < photo.height;
}

/**
 * Clamp a full-resolution point onto the photo, rounded to 2 decimals, staying strictly below
 * the far edge (rounding first, so 999.999 cannot round up onto the edge of a 1000 px photo).
 */
export function clampToPhoto(photo, x, y) {
  const eps = 0.01;
  return {
    x: Math.min(photo.width - eps, Math.max(0, round2(x))),
    y: Math.min(photo.height - eps, Math.max(0, round2(y))),
  };
}

/** Round to 2 decimals: keeps messages short without losing anything a model could use. */
export function round2(v) {
  return Math.round(v * 100) / 100;
}

/** A box prompt from two full-resolution corners, clamped and ordered. */
export function boxPrompt(photo, a, b) {
  const p = clampToPhoto(photo, a.x, a.y);
  const q = clampToPhoto(photo, b.x, b.y);
  return {
    kind: "box",
    x0: round2(Math.min(p.x, q.x)),
    y0: round2(Math.min(p.y, q.y)),
    x1: round2(Math.max(p.x, q.x)),
    y1: round2(Math.max(p.y, q.y)),
  };
}

export function pointPrompt(x, y, positive) {
  return { kind: "point", x: round2(x), y: round2(y), positive: Boolean(positive) };
}

/**
 * Thin a brush polyline: drop points closer than minDist to the last kept one and cap the count
 * (the server resamples by arc length anyway and refuses huge messages). Always keeps the ends.
 */
export function thinStroke(points, minDist, maxPoints = 400) {
  if (points.length <= 2) return points.slice();
  const kept = [points[0]];
  for (let i = 1; i < points.length - 1; i += 1) {
    const last = kept[kept.length - 1];
    if (Math.hypot(points[i][0] - last[0], points[i][1] - last[1]) >= minDist) kept.push(points[i]);
  }
  kept.push(points[points.length - 1]);
  if (kept.length <= maxPoints) return kept;
  const out = [];
  const step = (kept.length - 1) / (maxPoints - 1);
  for (let i = 0; i < maxPoints; i += 1) out.push(kept[Math.round(i * step)]);
  return out;
}

export function strokePrompt(photo, points, radius, positive) {
  const clamped = points.map(([x, y]) => {
    const c = clampToPhoto(photo, x, y);
    return [round2(c.x), round2(c.y)];
  });
  return {
    kind: "stroke",
    points: thinStroke(clamped, Math.max(1, radius / 3)),
    radius: round2(radius),
    positive: Boolean(positive),
  };
}
