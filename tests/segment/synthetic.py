"""Synthetic photos with known objects, for engine tests (no dataset needed)."""

from __future__ import annotations

import cv2
import numpy as np

H, W = 240, 360


def textured_background(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """Blotchy grey-green-blue texture: not flat, so a colour model has to work for it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 140, size=(h // 12 + 1, w // 12 + 1, 3)).astype(np.uint8)
    small[..., 0] //= 2  # keep red low so a red object stands out
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    noise = rng.integers(-12, 13, size=img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def disc_mask(cx: float, cy: float, r: float, h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def paint(img: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int],
          seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.copy()
    noise = rng.integers(-10, 11, size=(int(mask.sum()), 3))
    out[mask] = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
