"""Metrics of the evaluation suite: fidelity of what a model perceives, event recall, cut P/R.

* ``psnr``: of a video, from its mean squared error over all instants (RGB, uint8 scale):
  ``10 log10(255^2 / mean_t MSE_t)``. Averaging per-frame PSNR instead would let the instants
  where a baseline holds the exact frame it just sent (infinite PSNR) dominate; the mean error
  does not. ``psnr_min_frame`` is the worst instant.
* ``ssim``: SSIM on luma (BT.601), first box-downsampled by Wang et al.'s automatic factor
  ``max(1, round(min side / 256))`` (2 at 512x512, as the reference ``ssim.m`` does), then
  scikit-image's ``structural_similarity`` defaults (7x7 uniform window, sample covariance,
  K1 0.01, K2 0.03, data range 255, the 3-pixel border left out). Computed with cumulative sums on
  a batch of frames; equal to scikit-image's on the same luma to float precision (tested). Full
  resolution RGB SSIM cost ~0.25 s a frame here, too much for 15 packages x 1,600 instants.
* ``event_recall``: an event counts as seen when some send in ``[t, t + window]`` covers at least
  ``COVER`` of the event's box at the send's time (the box from the ground truth at that time).
  A whole-frame send covers everything, also at thumbnail resolution (the ``paper`` P-frames: the
  fidelity figures show what the resolution costs).
* ``cut_pr``: claimed cut times against true cuts, one-to-one, a claim matching a cut when it
  falls within ``[cut - before, cut + after]`` (default -0.1/+0.55 s: the codec can only react
  at the first 2 fps sample of the new shot, at most 0.5 s after the cut).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

PSNR_CAP = 100.0
COVER = 0.5
_EPS = 1e-6


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (``PSNR_CAP`` when identical)."""
    return float(psnr_batch(a[None], b[None])[0])


def mse_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared error per pair of two (N, H, W, 3) uint8 stacks."""
    d = a.astype(np.float32) - b.astype(np.float32)
    return np.einsum("nhwc,nhwc->n", d, d, dtype=np.float64) / (d[0].size if len(d) else 1)


def psnr_of_mse(mse: np.ndarray | float) -> np.ndarray:
    """PSNR in dB of mean squared errors (``PSNR_CAP`` for 0)."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(np.where(mse == 0, PSNR_CAP, out), PSNR_CAP)


def psnr_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR per pair of two (N, H, W, 3) uint8 stacks (``PSNR_CAP`` for identical pairs)."""
    return psnr_of_mse(mse_batch(a, b))


def _box_mean(x: np.ndarray, win: int) -> np.ndarray:
    """Mean over every ``win`` x ``win`` window fully inside the last two axes ("valid"), by cumulative sums."""
    c = np.cumsum(np.cumsum(x, axis=-2, dtype=np.float64), axis=-1)
    c = np.pad(c, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    s = c[..., win:, win:] - c[..., :-win, win:] - c[..., win:, :-win] + c[..., :-win, :-win]
    return s / float(win * win)


def luma(a: np.ndarray, factor: int = 1) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H/f, W/f) float64 luma (BT.601 weights), ``factor`` x ``factor`` box-averaged."""
    y = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if factor > 1:
        n, h, w = y.shape
        y = y[:, : h - h % factor, : w - w % factor]
        y = sum(y[:, i::factor, j::factor] for i in range(factor) for j in range(factor)) / float(factor * factor)
    return y.astype(np.float64)


def ssim_factor(height: int, width: int) -> int:
    """Wang et al.'s automatic downsampling factor for SSIM: ``max(1, round(min side / 256))``."""
    return max(1, round(min(height, width) / 256))


_WIN, _C1, _C2 = 7, (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
_COV = _WIN * _WIN / (_WIN * _WIN - 1)


class Reference:
    """The true frames of a video, with their SSIM statistics computed once for every package."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames
        self.factor = ssim_factor(*frames.shape[1:3])
        self.y = luma(frames, self.factor)
        self.uy = _box_mean(self.y, _WIN)
        self.vy = _COV * (_box_mean(self.y * self.y, _WIN) - self.uy * self.uy)

    def fidelity(self, perceived: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(MSE, SSIM) per instant of ``perceived`` (N, H, W, 3) against the true frames."""
        x = luma(perceived, self.factor)
        ux = _box_mean(x, _WIN)
        vx = _COV * (_box_mean(x * x, _WIN) - ux * ux)
        vxy = _COV * (_box_mean(x * self.y, _WIN) - ux * self.uy)
        s_map = ((2 * ux * self.uy + _C1) * (2 * vxy + _C2)) / ((ux * ux + self.uy * self.uy + _C1) * (vx + self.vy + _C2))
        return mse_batch(perceived, self.frames), s_map.mean(axis=(1, 2))


def ssim_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM per pair of two (N, H, W, 3) uint8 stacks, on luma downsampled by ``ssim_factor`` (module doc)."""
    return Reference(b).fidelity(a)[1]


def coverage(cells: np.ndarray | None, box: tuple[int, int, int, int], cell: int) -> float:
    """Fraction of the pixel box (x, y, w, h) inside the sent cells (None: the whole frame)."""
    if cells is None:
        return 1.0
    x, y, w, h = box
    px = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)
    region = px[y : y + h, x : x + w]
    return float(region.mean()) if region.size else 0.0


def event_hits(events: Sequence[object], sends: Sequence[object], box_at: Callable[[object, float], tuple | None],
               cell: int, window: float = 0.5) -> list[bool]:
    """Per event, whether a send within ``window`` s after it covers at least ``COVER`` of its box."""
    hits = []
    for e in events:
        t0 = e.time_s  # type: ignore[attr-defined]
        ok = False
        for s in sends:
            if t0 - _EPS <= s.time_s <= t0 + window + _EPS:  # type: ignore[attr-defined]
                box = box_at(e, s.time_s)  # type: ignore[attr-defined]
                if box is not None and coverage(s.cells, box, cell) >= COVER:  # type: ignore[attr-defined]
                    ok = True
                    break
        hits.append(ok)
    return hits


def cut_pr(claims: Sequence[float], cuts: Sequence[float], before: float = 0.1, after: float = 0.55) -> dict[str, float | int]:
    """Precision, recall and counts of claimed cut times against true ones (one-to-one, in time order)."""
    used = [False] * len(claims)
    matched = 0
    for c in cuts:
        for j, t in enumerate(claims):
            if not used[j] and c - before - _EPS <= t <= c + after + _EPS:
                used[j] = True
                matched += 1
                break
    return {
        "claims": len(claims),
        "cuts": len(cuts),
        "matched": matched,
        "precision": matched / len(claims) if claims else 1.0,
        "recall": matched / len(cuts) if cuts else 1.0,
    }


def cosine_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)
