"""Codec outputs <-> store rows: the one place that knows both ``codec`` types and ``memory.schema``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import zstandard

from videomemory.codec.config import CodecConfig, Grid
from videomemory.codec.encoder import EncodedFrame, reported_psnr
from videomemory.codec.gop import I
from videomemory.codec.residual import AnchorCode, GopCode, PCode
from videomemory.codec.stats import ContentStats, content_stats
from videomemory.codec.tokens import Rect
from videomemory.errors import DataLoss, InvalidArgument

PCODE = "pcode"
# Crops of a frame: each crop (the frame row's rects in order, (rows, cols, 3) uint8 as rebuilt) as
# its difference to the pixel row above (uint8, wrapping; the first row as it is), concatenated,
# zstd level 3. Lossless; on the generated footage a third smaller than raw and decoded in a
# fifth of a millisecond per frame (PNG is smaller still but takes 1.6 ms).
CROPS_FORMAT = "zstd-up1"

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
        "psnr": reported_psnr(f.psnr),
        "code_format": fmt,
        "code": f.data,
    }


def sends_crops(role: str, plan_role: str | None) -> bool:
    """Whether a frame that is not a clip's first is sent as crops of its changed cells (not as a full image)."""
    return not (role == I and plan_role == I)


def crop_row(f: EncodedFrame) -> dict[str, Any] | None:
    """The ``crops`` row of a frame whose plan sends changed cells (its pixels as rebuilt), or None."""
    c = f.code
    if not f.plan.rects or not sends_crops(c.role, f.plan.role):
        return None
    h, w = f.image.shape[:2]
    return {"ms": c.pts_ms, "gop": c.gop, "pos": c.pos, "format": CROPS_FORMAT, "crops": pack_crops(f.image, f.plan.rects, Grid(w, h))}


def pack_crops(image: np.ndarray, rects: Sequence[Rect], grid: Grid) -> bytes:
    """The cells ``rects`` of ``image`` (H, W, 3) uint8, packed as ``CROPS_FORMAT``."""
    parts = []
    for r in rects:
        x0, y0, x1, y1 = r.to_px(grid)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        diff = crop.copy()
        diff[1:] -= crop[:-1]
        parts.append(diff.tobytes())
    return zstandard.ZstdCompressor(level=3).compress(b"".join(parts))


def unpack_crops(row: dict[str, Any], rects: Sequence[Rect], grid: Grid) -> list[np.ndarray]:
    """The crops (one (rows, cols, 3) uint8 array per rect) of a ``crops`` row; DataLoss when damaged."""
    if row["format"] != CROPS_FORMAT:
        raise DataLoss(f"crops of the frame at {row.get('ms')} ms are in an unknown format {row['format']!r}")
    shapes = []
    for r in rects:
        x0, y0, x1, y1 = r.to_px(grid)
        shapes.append((y1 - y0, x1 - x0, 3))
    try:
        body = zstandard.ZstdDecompressor().decompress(row["crops"])
    except zstandard.ZstdError as exc:
        raise DataLoss(f"crops of the frame at {row.get('ms')} ms are damaged: {exc}") from None
    if len(body) != sum(int(np.prod(s)) for s in shapes):
        raise DataLoss(f"crops of the frame at {row.get('ms')} ms do not match its changed cells")
    out, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(np.cumsum(np.frombuffer(body, np.uint8, n, offset).reshape(shape), axis=0, dtype=np.uint8))
        offset += n
    return out


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
        self.crops: list[dict[str, Any]] = []  # crop rows not yet written
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
        crops = crop_row(f)
        if crops is not None:
            self.crops.append(crops)
        self.stored += f.nbytes
        kept = light(f)
        self.gop.append(kept)
        self.kept.append(kept)

    def flush(self, ingest: "Ingest") -> None:
        """Append the buffered frame, crop and segment rows to an ingest (still invisible until it commits)."""
        ingest.add_crops(self.crops)  # rows of this ingest: dropped with it like its frames (schema.PER_INGEST)
        ingest.add_frames(self.rows)
        ingest.add_segments(self.segments)
        self.rows, self.segments, self.crops = [], [], []

    def stats(self) -> ContentStats:
        """Content statistics of every frame so far."""
        return content_stats(self.kept, self.fps)
