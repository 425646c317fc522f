// Turning mask PNGs into things the canvas draws: a translucent tint and a vector outline.
// The mask is kept as one byte per pixel (0/1) plus its bounding box so the outline and the
// area only walk the part of the picture that matters.

/** Decode a mask PNG (8-bit 0/255, or any image: > 127 in red counts as set). */
export async function decodeMaskPng(pngBytes, resize = null) {
  const blob = pngBytes instanceof Blob ? pngBytes : new Blob([pngBytes], { type: "image/png" });
  const options = { colorSpaceConversion: "none", premultiplyAlpha: "none" };
  if (resize) {
    options.resizeWidth = resize.width;
    options.resizeHeight = resize.height;
    options.resizeQuality = "medium";
  }
  const bitmap = await createImageBitmap(blob, options);
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close?.();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  return maskFromRgba(rgba, width, height);
}

/** Pure: RGBA bytes → {width, height, bits (Uint8Array 0/1), bbox [x0,y0,x1,y1)|null, area}. */
export function maskFromRgba(rgba, width, height) {
  const bits = new Uint8Array(width * height);
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  let area = 0;
  for (let y = 0, i = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1, i += 1) {
      // Alpha matters too: a mask written as a transparent PNG is "set" only where opaque.
      if (rgba[4 * i] > 127 && rgba[4 * i + 3] > 127) {
        bits[i] = 1;
        area += 1;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  const bbox = area ? [x0, y0, x1 + 1, y1 + 1] : null;
  return { width, height, bits, bbox, area };
}

/**
 * Pure: the boundary of the set pixels as axis-aligned segments [x0, y0, x1, y1] in pixel-edge
 * coordinates (pixel (c, r) spans [c, c+1) x [r, r+1)). Neighbouring unit edges are merged into
 * runs so a large mask gives thousands of segments, not millions. Holes get outlines too.
 */
export function outlineSegments(mask) {
  const { width: w, height: h, bits, bbox } = mask;
  const segs = [];
  if (!bbox) return segs;
  const [bx0, by0, bx1, by1] = bbox;
  const at = (x, y) => (x >= 0 && y >= 0 && x < w && y < h ? bits[y * w + x] : 0);
  // Horizontal edges: on line y, between row y-1 and row y.
  for (let y = by0; y <= by1; y += 1) {
    let start = -1;
    for (let x = bx0; x <= bx1; x += 1) {
      const edge = x < bx1 && at(x, y - 1) !== at(x, y);
      if (edge && start < 0) start = x;
      else if (!edge && start >= 0) {
        segs.push([start, y, x, y]);
        start = -1;
      }
    }
  }
  // Vertical edges: on line x, between column x-1 and column x.
  for (let x = bx0; x <= bx1; x += 1) {
    let start = -1;
    for (let y = by0; y <= by1; y += 1) {
      const edge = y < by1 && at(x - 1, y) !== at(x, y);
      if (edge && start < 0) start = y;
      else if (!edge && start >= 0) {
        segs.push([x, start, x, y]);
        start = -1;
      }
    }
  }
  return segs;
}

export function segmentsToPath(segs) {
  const path = new Path2D();
  for (const [x0, y0, x1, y1] of segs) {
    path.moveTo(x0, y0);
    path.lineTo(x1, y1);
  }
  return path;
}

/** A canvas holding the mask as a translucent colour (transparent elsewhere). */
export function tintCanvas(mask, [r, g, b, a]) {
  const { width, height, bits } = mask;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(width, height);
  const data = img.data;
  const alpha = Math.round(a * 255);
  for (let i = 0; i < bits.length; i += 1) {
    if (bits[i]) {
      const j = 4 * i;
      data[j] = r;
      data[j + 1] = g;
      data[j + 2] = b;
      data[j + 3] = alpha;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/**
 * Pure: each pixel's distance to the nearest set pixel (8-neighbour chamfer, steps 1 and √2),
 * 0 inside; only within `limit` pixels of the mask's bounding box (Infinity beyond it).
 */
export function outsideDistance(mask, limit) {
  const { width: w, height: h, bits, bbox } = mask;
  const d = new Float32Array(w * h).fill(Infinity);
  if (!bbox) return d;
  const pad = Math.ceil(limit) + 1;
  const x0 = Math.max(0, bbox[0] - pad);
  const y0 = Math.max(0, bbox[1] - pad);
  const x1 = Math.min(w, bbox[2] + pad);
  const y1 = Math.min(h, bbox[3] + pad);
  const r2 = Math.SQRT2;
  for (let y = y0; y < y1; y += 1) {
    for (let x = x0; x < x1; x += 1) if (bits[y * w + x]) d[y * w + x] = 0;
  }
  for (let y = y0; y < y1; y += 1) {
    for (let x = x0; x < x1; x += 1) {
      const i = y * w + x;
      let v = d[i];
      if (v === 0) continue;
      if (x > x0) v = Math.min(v, d[i - 1] + 1);
      if (y > y0) {
        v = Math.min(v, d[i - w] + 1);
        if (x > x0) v = Math.min(v, d[i - w - 1] + r2);
        if (x < x1 - 1) v = Math.min(v, d[i - w + 1] + r2);
      }
      d[i] = v;
    }
  }
  for (let y = y1 - 1; y >= y0; y -= 1) {
    for (let x = x1 - 1; x >= x0; x -= 1) {
      const i = y * w + x;
      let v = d[i];
      if (v === 0) continue;
      if (x < x1 - 1) v = Math.min(v, d[i + 1] + 1);
      if (y < y1 - 1) {
        v = Math.min(v, d[i + w] + 1);
        if (x < x1 - 1) v = Math.min(v, d[i + w + 1] + r2);
        if (x > x0) v = Math.min(v, d[i + w - 1] + r2);
      }
      d[i] = v;
    }
  }
  return d;
}

/** Pure: the feathered alpha (0..1) at `distance` pixels outside a mask whose edge fades over
 * `radius` pixels: linear from 1 at the edge to 0 at `radius`, as darktable draws a path's
 * border (measured with darktable-cli 4.2: 0.89 one pixel out, 0.04 nineteen out, of 20). */
export function featherAlpha(distance, radius) {
  if (distance <= 0) return 1;
  return radius > 0 ? Math.max(0, 1 - distance / radius) : 0;
}

/** A canvas of the mask in its colour, its edge fading outwards over `radius` pixels. */
export function featherTintCanvas(mask, [r, g, b], radius) {
  const { width, height } = mask;
  const d = outsideDistance(mask, radius);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(width, height);
  const data = img.data;
  for (let i = 0; i < d.length; i += 1) {
    const a = featherAlpha(d[i], radius);
    if (a > 0) {
      const j = 4 * i;
      data[j] = r;
      data[j + 1] = g;
      data[j + 2] = b;
      data[j + 3] = Math.round(255 * a);
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/** Everything the viewer needs to draw one mask: tint canvas + outline path + size. */
export function renderableMask(mask, colour) {
  return {
    width: mask.width,
    height: mask.height,
    area: mask.area,
    bbox: mask.bbox,
    source: mask, // for a feathered tint, made when the feather preview asks for one
    colour,
    tint: mask.area ? tintCanvas(mask, colour) : null,
    outline: mask.area ? segmentsToPath(outlineSegments(mask)) : null,
  };
}

/** Distinct colours for applied objects (the current object uses the accent colour). */
const PALETTE = [
  [255, 176, 59],
  [99, 214, 138],
  [232, 104, 176],
  [174, 134, 255],
  [72, 214, 214],
  [240, 228, 96],
  [255, 120, 96],
  // No blue: blue is the current object's, which must stand out from the applied ones.
  [190, 235, 80],
];

export function objectColour(id) {
  const n = Number(id);
  const i = Number.isFinite(n) ? Math.abs(Math.trunc(n)) : [...String(id)].length;
  return PALETTE[i % PALETTE.length];
}

/** "#rrggbb" → [r, g, b], or null for anything else. */
export function parseHex(hex) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(String(hex ?? ""));
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : null;
}

export function toHex([r, g, b]) {
  return `#${[r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

/** The colour an object is drawn in: the one its user chose (shared), else the palette's. */
export function colourOf(obj) {
  return parseHex(obj?.colour) ?? objectColour(obj?.id);
}

export const CURRENT_COLOUR = [64, 156, 255];
