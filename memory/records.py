"""Codec outputs <-> store rows: the one place that knows both ``codec`` types and ``memory.schema``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from videomemory.codec.config import CodecConfig
from videomemory.codec.encoder import EncodedFrame
from videomemory.codec.residual import AnchorCode, GopCode, PCode
from videomemory.codec.stats import ContentStats, content_stats
from videomemory.errors import DataLoss, InvalidArgument

PCODE = "pcode"


def frame_row(f: EncodedFrame) -> dict[str, Any]:
    """The ``frames`` row of one encoded frame (its code included)."""
    c = f.code
    summary = c.summary()
    if f.anchor is not None:
        fmt, code = f.anchor.format, f.anchor.data
    else:
        assert f.pcode is not None
        fmt, code = PCODE, f.pcode.to_bytes()
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
        "code": code,
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
    return replace(f, image=np.broadcast_to(np.zeros((), np.uint8), f.image.shape), anchor=None, pcode=None)


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
