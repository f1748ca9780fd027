"""Codec outputs <-> store rows: the one place that knows both ``codec`` types and ``memory.schema``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from videomemory.codec.config import CodecConfig
from videomemory.codec.encoder import EncodedFrame
from videomemory.codec.gop import I
from videomemory.codec.residual import AnchorCode, GopCode, PCode
from videomemory.codec.stats import ContentStats, content_stats
from videomemory.errors import DataLoss, InvalidArgument

PCODE = "pcode"

if TYPE_CHECKING:
    from videomemory.memory.store import Ingest


def frame_row(f: EncodedFrame) -> dict[str, Any]:
    """The ``frames`` row of one encoded frame (its code included)."""
    c = f.code
    summary = c.summary()
    fmt = f.anchor.format if f.anchor is not None else PCODE
    return {
        "ms": c.pts_ms,
        "time_s": float(c.pts_ms) / 1000.0,
        "sampled_index": c.sampled_index,
        "source_index": c.source_index,
        "role": c.role,
        "gop": c.gop,
        "pos": c.pos,
        "reason": c.reason,
        "pcost_per_block": c.pcost_per_block,
        "motion_mean_px": summary.get("motion_mean_px"),
        "moving_blocks": summary.get("moving_blocks"),
        "energy": None if f.energy is None else np.asarray(f.energy, np.float32).reshape(-1).tolist(),
        "plan_role": f.plan.role,
        "image_tokens": f.plan.image_tokens,
        "overhead_tokens": f.plan.overhead_tokens,
        "rects": [{"row": r.row, "col": r.col, "rows": r.rows, "cols": r.cols} for r in f.plan.rects],
        "psnr": f.psnr if math.isfinite(f.psnr) else 99.0,  # identical: cap so JSON stays valid
        "code_format": fmt,
        "code": f.data,
    }


def segment_row(gop: Sequence[EncodedFrame], end_ms: int, fps: float) -> dict[str, Any]:
    """The ``segments`` row of one GOP (its frames, anchor first); ``end_ms`` is exclusive."""
    stats = content_stats(gop, fps)
    pcosts = [f.code.pcost_per_block for f in gop[1:] if f.code.pcost_per_block is not None]
    anchor = gop[0]
    return {
        "gop": anchor.code.gop,
        "start_ms": anchor.code.pts_ms,
        "end_ms": end_ms,
        "frames": len(gop),
        "anchor_reason": anchor.code.reason,
        "pcost_mean": float(np.mean(pcosts)) if pcosts else None,
        "pcost_max": float(np.max(pcosts)) if pcosts else None,
        "motion_px": stats.motion_px,
        "residual_rms": stats.residual_rms,
        "tokens": sum(f.plan.tokens for f in gop),
        "anchor_tokens": anchor.plan.tokens,
        "p_tokens": sum(f.plan.tokens for f in gop[1:]),
        "stored_bytes": sum(f.nbytes for f in gop),
        "content_class": stats.content_class,
        "hybrid_flat": stats.hybrid_flat,
    }


def config_json(config: CodecConfig) -> str:
    """The codec settings of a video, as stored."""
    return json.dumps(asdict(config), sort_keys=True, default=str)


def video_row(stats: ContentStats, *, config: CodecConfig, duration_ms: int, segments: int, stored_bytes: int) -> dict[str, Any]:
    """The codec-derived part of a ``videos`` row (the ingest adds source facts)."""
    return {
        "duration_ms": duration_ms,
        "fps": config.fps,
        "grid_width": config.grid.width,
        "grid_height": config.grid.height,
        "frames": stats.frames,
        "segments": segments,
        "tokens": stats.tokens,
        "tokens_per_min": stats.tokens_per_min,
        "stored_bytes": stored_bytes,
        "content_class": stats.content_class,
        "hybrid_flat": stats.hybrid_flat,
        "codec_json": config_json(config),
        "stats_json": json.dumps(stats.to_dict(), sort_keys=True),
    }


def light(f: EncodedFrame) -> EncodedFrame:
    """The frame without its pixels and code (what statistics need), to keep long videos in memory."""
    return replace(f, image=np.broadcast_to(np.zeros((), np.uint8), f.image.shape), anchor=None, pcode=None, data=b"")


def gop_code(rows: Sequence[dict[str, Any]]) -> GopCode:
    """Rebuildable GOP from frame rows of one GOP in order (anchor first, ``code_format`` and ``code``)."""
    if not rows or rows[0]["code_format"] == PCODE:
        raise InvalidArgument("a GOP must start with its anchor row")
    anchor = AnchorCode(rows[0]["code_format"], rows[0]["code"])
    p_codes = []
    for r in rows[1:]:
        if r["code_format"] != PCODE:
            raise DataLoss(f"frame at {r.get('ms')} ms is an anchor inside a GOP: the stored rows are inconsistent")
        try:
            p_codes.append(PCode.from_bytes(r["code"]))
        except InvalidArgument as exc:
            raise DataLoss(f"stored code of the frame at {r.get('ms')} ms: {exc}") from None
    return GopCode(anchor, tuple(p_codes))


class RowBuffer:
    """A video's rows as its frames are coded: frame rows, the segment rows of closed GOPs, and statistics input.

    Shared by file ingest (flushed in batches) and live streams (flushed GOP by GOP); frames are
    kept without pixels or code (``light``) for the statistics.
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.rows: list[dict[str, Any]] = []  # frame rows not yet written
        self.segments: list[dict[str, Any]] = []  # segment rows not yet written
        self.gop: list[EncodedFrame] = []  # the open GOP
        self.kept: list[EncodedFrame] = []  # every frame so far
        self.stored = 0  # bytes of code so far

    def closes_gop(self, f: EncodedFrame) -> bool:
        """Whether ``f`` is an anchor that ends an open GOP."""
        return f.code.role == I and bool(self.gop)

    def close_gop(self, end_ms: int) -> list[EncodedFrame]:
        """Make the open GOP's segment row (``end_ms`` exclusive); returns its frames."""
        gop, self.gop = self.gop, []
        self.segments.append(segment_row(gop, end_ms, self.fps))
        return gop

    def add(self, f: EncodedFrame) -> None:
        """Buffer a coded frame's row and keep it for the statistics."""
        self.rows.append(frame_row(f))
        self.stored += f.nbytes
        kept = light(f)
        self.gop.append(kept)
        self.kept.append(kept)

    def flush(self, ingest: "Ingest") -> None:
        """Append the buffered frame and segment rows to an ingest (still invisible until it commits)."""
        ingest.add_frames(self.rows)
        ingest.add_segments(self.segments)
        self.rows, self.segments = [], []

    def stats(self) -> ContentStats:
        """Content statistics of every frame so far."""
        return content_stats(self.kept, self.fps)
