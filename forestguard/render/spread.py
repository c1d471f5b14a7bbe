"""datashader's ``dynspread`` (circle mask, ``over`` compositing) on packed RGBA, in numpy.

The same pixels as ``datashader.transfer_functions.dynspread(img, threshold, max_px)``
(the tests compare them bit for bit), without importing datashader at run time: its import
pulls in dask.dataframe, ~2 s of every report kernel's start for two small image helpers.
"""

from __future__ import annotations

import numpy as np


def dynspread(rgba: np.ndarray, threshold: float = 0.5, max_px: int = 3) -> np.ndarray:
    """Spread isolated pixels of a packed uint32 RGBA image by up to ``max_px``, as datashader does.

    Spreading grows one pixel at a time while the share of non-empty pixels that have a
    neighbour within twice that distance stays at or under ``threshold``.
    """
    px_ = 0
    for px in range(1, max_px + 1):
        px_ = px
        if _density(rgba, 2 * px) > threshold:
            px_ = px - 1
            break
    return spread(rgba, px_) if px_ >= 1 else rgba


def _density(rgba: np.ndarray, px: int) -> float:
    """Share of non-empty pixels with another non-empty pixel in the (2px+1)² square around them."""
    filled = (rgba >> 24) & 255 != 0
    count = int(filled.sum())
    if count == 0:
        return np.inf
    padded = np.pad(filled.astype(np.int64), px)
    window = 2 * px + 1
    summed = np.cumsum(np.cumsum(np.pad(padded, ((1, 0), (1, 0))), axis=0), axis=1)
    height, width = filled.shape
    box = (summed[window:window + height, window:window + width] - summed[:height, window:window + width]
           - summed[window:window + height, :width] + summed[:height, :width])
    return int((filled & (box > 1)).sum()) / count


def circle_mask(px: int) -> np.ndarray:
    x = np.arange(-px, px + 1)
    return np.sqrt(x**2 + x[:, None] ** 2) <= px + 0.5


def spread(rgba: np.ndarray, px: int) -> np.ndarray:
    """Every non-empty pixel painted over its circle of radius ``px``, later pixels (row-major) on top."""
    mask = circle_mask(px)
    height, width = rgba.shape
    out = np.zeros((height + 2 * px, width + 2 * px), dtype=np.uint32)
    filled = (rgba >> 24) & 255 != 0
    # A destination receives its sources in their row-major order: the mask offset whose source
    # comes first is the one with the largest (row, column) offset.
    for i, j in sorted(zip(*np.nonzero(mask)), reverse=True):
        window = out[i:i + height, j:j + width]
        empty = window == 0
        window[filled & empty] = rgba[filled & empty]
        both = filled & ~empty
        if both.any():
            window[both] = _over(rgba[both], window[both])
    return out[px:px + height, px:px + width]


def _over(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """datashader.composite.over, element-wise: the same float64 steps, truncated to bytes."""
    sr, sg, sb, sa = _scaled(src)
    dr, dg, db, da = _scaled(dst)
    factor = 1 - sa
    a = sa + da * factor
    safe = np.where(a == 0, 1.0, a)
    r = (sr * sa + dr * da * factor) / safe
    g = (sg * sa + dg * da * factor) / safe
    b = (sb * sa + db * da * factor) / safe
    out = _combined(r, g, b, a)
    return np.where(a == 0, np.uint32(0), out)


def _scaled(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple((((x >> shift) & 255) / 255).astype(np.float64) for shift in (0, 8, 16, 24))


def _combined(r: np.ndarray, g: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    r2, g2, b2, a2 = (np.minimum(255, (c * 255).astype(np.uint32)) for c in (r, g, b, a))
    return (a2 << 24) | (b2 << 16) | (g2 << 8) | r2
