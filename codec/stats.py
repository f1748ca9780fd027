"""Content statistics per GOP and per video: motion, residual, cuts, a content class, hybrid routing.

The class drives cost forecasts (tokens per minute by class) and the hybrid-routing flag marks
segments where the predictive code saves little and a VLM is better served by plain frames
(the seed article's advice). Rules, with motion measured in px per sampled frame scaled to a
512 px wide grid so they hold at every grid size:

* ``high-motion``: mean block motion >= 32 px per sampled frame, or prediction keeps failing
  (at least 30% of frames are cut anchors, "pcost" or "scene", that follow another anchor:
  motion beyond the search window);
* ``high-cut``: otherwise, at least 3 cut anchors per minute (a new scene every 20 s or more
  often), counted over at least a minute so that one GOP opened by a cut is not "high-cut";
* ``static``: mean motion < 0.5 px and under half a cell sent per P-frame;
* ``low-motion``: everything else.

``hybrid_flat`` is set when the adaptive plan spends at least half of what flat frames would
(a GOP of one or two frames, or P-frames full of changed cells), or the class is high-motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from videomemory.codec.config import Grid
from videomemory.codec.encoder import EncodedFrame
from videomemory.codec.gop import CUT_REASONS, I

CLASSES = ("static", "low-motion", "high-motion", "high-cut")
_HIGH_MOTION_PX = 32.0
_FAILING_SHARE = 0.3
_CUTS_PER_MIN = 3.0
_STATIC_PX = 0.5
_STATIC_CELLS = 0.5
_FLAT_SHARE = 0.5


@dataclass(frozen=True)
class ContentStats:
    """Statistics of a run of encoded frames (a GOP or a whole video)."""

    frames: int
    duration_s: float
    anchors: int
    pcost_anchors_per_min: float  # cut anchors ("pcost" or "scene") per minute
    motion_px: float  # mean block motion, px per sampled frame at 512 px width
    residual_rms: float  # mean RMS motion-compensated residual of P-frames, grey levels
    cells_per_p: float  # mean image tokens sent per P-frame by the adaptive plan
    tokens: int  # adaptive plan total
    tokens_per_min: float
    flat_share: float  # adaptive tokens / flat tokens
    content_class: str
    hybrid_flat: bool

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly record."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def content_stats(frames: Sequence[EncodedFrame], fps: float = 2.0) -> ContentStats:
    """Statistics and class of ``frames`` (consecutive encoded frames of one video)."""
    n = len(frames)
    if not n:
        raise ValueError("content statistics need at least one frame")
    height, width = frames[0].image.shape[:2]
    minutes = n / fps / 60.0
    roles = [f.code.role for f in frames]
    cut = [f.code.role == I and f.code.reason in CUT_REASONS for f in frames]
    failing = sum(1 for i in range(1, n) if cut[i] and roles[i - 1] == I)
    motion = [
        float(f.code.motion.vectors.to(torch.float32).norm(dim=-1).mean()) * 512.0 / width
        for f in frames
        if f.code.motion is not None and f.code.role != I
    ]
    rms = [float(np.sqrt(f.energy.mean())) for f in frames if f.energy is not None and f.code.role != I]
    p_plans = [f.plan for f in frames if f.plan.role != I]
    tokens = sum(f.plan.tokens for f in frames)
    flat = n * Grid(width, height).tokens_per_image
    motion_px = float(np.mean(motion)) if motion else 0.0
    cells = float(np.mean([p.image_tokens for p in p_plans])) if p_plans else 0.0
    cuts_per_min = sum(cut) / max(minutes, 1.0)
    if motion_px >= _HIGH_MOTION_PX or failing >= _FAILING_SHARE * n:
        cls = "high-motion"
    elif cuts_per_min >= _CUTS_PER_MIN and n > 1:
        cls = "high-cut"
    elif motion_px < _STATIC_PX and cells < _STATIC_CELLS:
        cls = "static"
    else:
        cls = "low-motion"
    share = tokens / flat if flat else 0.0
    return ContentStats(
        frames=n,
        duration_s=n / fps,
        anchors=roles.count(I),
        pcost_anchors_per_min=cuts_per_min,
        motion_px=motion_px,
        residual_rms=float(np.mean(rms)) if rms else 0.0,
        cells_per_p=cells,
        tokens=tokens,
        tokens_per_min=tokens / minutes,
        flat_share=share,
        content_class=cls,
        hybrid_flat=share >= _FLAT_SHARE or cls == "high-motion",
    )


def split_gops(frames: Sequence[EncodedFrame]) -> list[list[EncodedFrame]]:
    """Consecutive frames grouped by GOP (each list starts at its anchor)."""
    gops: list[list[EncodedFrame]] = []
    for f in frames:
        if f.code.role == I or not gops:
            gops.append([])
        gops[-1].append(f)
    return gops
