"""Frame IDs and cite tags back to source moments and images (DESIGN §5).

``resolve_frame`` takes a resource name or a cite tag, finds the video (within the caller's tenant
only: another tenant's video is NOT_FOUND, never visible), snaps the time to the nearest sampled
frame when it was not sampled (and says so), and returns where the moment is in the source, its
GOP, role and anchor, whether the stored plan sent it, and the image rebuilt from the code -- or
decoded from the source at full resolution when asked and the source is still there.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from lancedb.expr import col, lit

from videomemory.codec.decode import frame_at, is_uri
from videomemory.codec.tokens import SKIP
from videomemory.errors import DataLoss, InvalidArgument, NotFound, VideoMemoryError
from videomemory.memory import records
from videomemory.memory.ids import CiteTag, FrameId, check_tenant, find_tags, parse
from videomemory.memory.store import Store, Video

IMAGE_CODE = "code"  # rebuilt from the stored code, on the codec grid
IMAGE_SOURCE = "source"  # decoded from the source file at full resolution


@dataclass(frozen=True)
class Resolved:
    """Where a frame ID points: the sampled frame, its place in the code, and optionally its image."""

    requested: str  # the name or tag as asked
    requested_ms: int
    frame: FrameId  # the sampled frame it resolved to
    exact: bool  # requested_ms is a sampled instant
    video: Video = field(repr=False)
    time_s: float
    source_index: int
    sampled_index: int
    segment: int  # GOP number
    segment_start_ms: int
    segment_end_ms: int
    role: str  # I | P
    anchor: FrameId  # the anchor this frame is rebuilt from
    sent: bool  # the stored token plan spends tokens on this frame (False: collapsed or dropped by the budget)
    psnr: float  # of the rebuilt frame against the sampled frame, dB
    notes: tuple[str, ...] = ()
    image: np.ndarray | None = field(default=None, repr=False)  # (H, W, 3) uint8
    image_origin: str = ""  # code | source | "" (no image asked)

    @property
    def source_uri(self) -> str:
        """Where the video was read from."""
        return self.video.source_uri

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (no pixels)."""
        return {
            "requested": self.requested,
            "requested_ms": self.requested_ms,
            "frame": self.frame.name,
            "frame_tag": self.frame.tag,
            "exact": self.exact,
            "source_uri": self.source_uri,
            "time_s": self.time_s,
            "source_index": self.source_index,
            "sampled_index": self.sampled_index,
            "segment": self.segment,
            "segment_start_ms": self.segment_start_ms,
            "segment_end_ms": self.segment_end_ms,
            "role": self.role,
            "anchor": self.anchor.name,
            "sent": self.sent,
            "psnr": round(self.psnr, 2),
            "notes": list(self.notes),
            "image_origin": self.image_origin,
            "image_size": None if self.image is None else [int(self.image.shape[1]), int(self.image.shape[0])],
        }


@dataclass(frozen=True)
class Citation:
    """One cite tag found in a text: resolved, or the error that stopped it."""

    tag: str
    start: int  # offset in the text
    resolved: Resolved | None = None
    error: str = ""
    error_status: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        out: dict[str, Any] = {"tag": self.tag, "start": self.start}
        if self.resolved is not None:
            out = self.resolved.to_dict() | out
        else:
            out |= {"error": self.error, "error_status": self.error_status}
        return out


def _video_for(store: Store, tenant: str, ref: CiteTag | tuple[str | None, FrameId]) -> tuple[Video, int]:
    if isinstance(ref, CiteTag):
        videos = store.find_videos(tenant, ref.key_prefix)
        if not videos:
            raise NotFound(f"no video of tenant {tenant!r} has a key starting with {ref.key_prefix!r} (cite tag {ref.text})")
        if len(videos) > 1:
            names = ", ".join(v.key for v in videos[:5])
            raise InvalidArgument(
                f"cite tag {ref.text} is ambiguous: {len(videos)} videos start with {ref.key_prefix!r} ({names}); "
                "cite with more key digits or with the resource name videos/{key}/frames/{ms}"
            )
        return videos[0], ref.ms
    owner, fid = ref
    if owner is not None and owner != tenant:
        # Another tenant's name: the same answer as a missing video, so nothing leaks.
        raise NotFound(f"video {fid.key} is not in this store for tenant {tenant!r}")
    return store.get_video(tenant, fid.key), fid.ms


def _gop_rows(store: Store, video: Video, gop: int, upto: int) -> list[dict[str, Any]]:
    where = (col("gop") == lit(gop)) & (col("pos") <= lit(upto))
    rows = store.frames(video, where, ["pos", "ms", "code_format", "code"]).sort_by("pos").to_pylist()
    if len(rows) != upto + 1 or [r["pos"] for r in rows] != list(range(upto + 1)):
        raise DataLoss(f"video {video.key}: GOP {gop} is missing frames in the store (re-ingest it with --replace)")
    return rows


def _source_image(video: Video, time_s: float) -> tuple[np.ndarray | None, str]:
    """Full-resolution source frame, or None and why not."""
    uri = video.source_uri
    if not is_uri(uri):
        path = Path(uri)
        if not path.is_file():
            return None, f"source {uri} is not reachable; image rebuilt from the code instead"
        if video.source_bytes and path.stat().st_size != video.source_bytes:
            return None, f"source {uri} changed since it was indexed; image rebuilt from the code instead"
    try:
        return frame_at(uri, time_s), ""
    except VideoMemoryError as exc:
        return None, f"source could not be decoded ({exc}); image rebuilt from the code instead"


def resolve_frame(
    store: Store, tenant: str, ref: str | FrameId, *, image: bool = True, full_resolution: bool = False
) -> Resolved:
    """Resolve a resource name, cite tag or ``FrameId`` of ``tenant`` (image rebuilt unless ``image`` is False)."""
    check_tenant(tenant)
    text = ref.name if isinstance(ref, FrameId) else str(ref)
    parsed = (None, ref) if isinstance(ref, FrameId) else parse(text)
    video, ms = _video_for(store, tenant, parsed)
    if ms > video.duration_ms:
        raise NotFound(f"{text}: {ms} ms is past the end of video {video.key} ({video.duration_ms / 1000:.3f} s long)")
    times: pa.Table = store.frames(
        video,
        columns=["ms", "time_s", "gop", "pos", "role", "plan_role", "image_tokens", "overhead_tokens", "source_index",
                 "sampled_index", "psnr"],
    )
    ms_list = times["ms"].to_pylist()
    i = bisect.bisect_left(ms_list, ms)
    if i == len(ms_list) or (i > 0 and ms - ms_list[i - 1] <= ms_list[i] - ms):
        i -= 1
    row = times.slice(i, 1).to_pylist()[0]
    notes: list[str] = []
    exact = row["ms"] == ms
    if not exact:
        delta = row["ms"] - ms
        notes.append(
            f"{ms} ms was not sampled (sampling at {video.fps:g} fps); resolved to the nearest sampled frame, "
            f"{abs(delta)} ms {'later' if delta > 0 else 'earlier'}"
        )
    sent = row["plan_role"] != SKIP and row["image_tokens"] + row["overhead_tokens"] > 0
    if not sent:
        notes.append("the token plan did not send this frame (nothing changed since the frame before, or the "
                     "budget ran out); it is stored, and rebuilt here")
    segments = store.segments(video).to_pylist()
    seg = next(s for s in segments if s["gop"] == row["gop"])
    pixels, origin = None, ""
    if image and full_resolution:
        pixels, why = _source_image(video, row["time_s"])
        origin = IMAGE_SOURCE
        if pixels is None:
            notes.append(why)
    if image and pixels is None:
        pixels = records.gop_code(_gop_rows(store, video, row["gop"], row["pos"])).frame(row["pos"])
        origin = IMAGE_CODE
    return Resolved(
        requested=text,
        requested_ms=ms,
        frame=FrameId(video.key, row["ms"]),
        exact=exact,
        video=video,
        time_s=row["time_s"],
        source_index=row["source_index"],
        sampled_index=row["sampled_index"],
        segment=row["gop"],
        segment_start_ms=seg["start_ms"],
        segment_end_ms=seg["end_ms"],
        role=row["role"],
        anchor=FrameId(video.key, seg["start_ms"]),
        sent=sent,
        psnr=float(row["psnr"]),
        notes=tuple(notes),
        image=pixels,
        image_origin=origin,
    )


def resolve_citations(
    store: Store, tenant: str, text: str, *, image: bool = False, full_resolution: bool = False
) -> list[Citation]:
    """Every cite tag in ``text`` (a model's answer), each resolved or with the error that stopped it."""
    check_tenant(tenant)
    out: list[Citation] = []
    pos = 0
    for tag in find_tags(text):
        start = text.index(tag, pos)
        pos = start + len(tag)
        try:
            out.append(Citation(tag, start, resolve_frame(store, tenant, tag, image=image, full_resolution=full_resolution)))
        except VideoMemoryError as exc:
            out.append(Citation(tag, start, error=str(exc), error_status=exc.status))
    return out
