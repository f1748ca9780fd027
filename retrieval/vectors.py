"""Which frames of a stored video get a search vector, and writing those vectors to the store.

Every segment's anchor gets one. A P-frame gets its own when the image tokens the plan sent since
the last vector of its GOP reach ``EVENT_FRACTION`` of an anchor: an object that enters or a
label that changes inside a GOP is then findable at its own frame ID, while a static GOP costs one
vector however long it is. Images are rebuilt from the stored code (what a model is shown), so
indexing needs no access to the source file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from lancedb.expr import col, lit

from videomemory.codec.config import Grid
from videomemory.codec.gop import I
from videomemory.memory import records
from videomemory.memory.store import Store, Video
from videomemory.retrieval.embed import Embedder

EVENT_FRACTION = 0.25  # of an anchor's image tokens, sent since the last vector of the GOP
GOP_CHUNK = 64  # GOPs whose code is read at once
ANCHOR, EVENT = "anchor", "event"


@dataclass(frozen=True)
class Pick:
    """A frame chosen for a vector."""

    ms: int
    gop: int
    pos: int
    kind: str  # anchor | event


def select_frames(frames: list[dict[str, Any]], anchor_tokens: int) -> list[Pick]:
    """Frames to embed, from rows with ``ms``, ``gop``, ``pos``, ``role`` and ``image_tokens`` in time order."""
    picks: list[Pick] = []
    since = 0
    for f in frames:
        if f["role"] == I or f["pos"] == 0:
            picks.append(Pick(f["ms"], f["gop"], f["pos"], ANCHOR))
            since = 0
            continue
        since += f["image_tokens"] or 0
        if since >= EVENT_FRACTION * anchor_tokens:
            picks.append(Pick(f["ms"], f["gop"], f["pos"], EVENT))
            since = 0
    return picks


def _images(store: Store, video: Video, picks: list[Pick]) -> list[np.ndarray]:
    """Rebuilt images of the picked frames, in the order of ``picks`` (GOP by GOP, one pass each)."""
    by_gop: dict[int, list[Pick]] = {}
    for p in picks:
        by_gop.setdefault(p.gop, []).append(p)
    out: dict[tuple[int, int], np.ndarray] = {}
    gops = sorted(by_gop)
    for start in range(0, len(gops), GOP_CHUNK):
        chunk = gops[start : start + GOP_CHUNK]
        where = (col("gop") >= lit(chunk[0])) & (col("gop") <= lit(chunk[-1]))
        rows = store.frames(video, where, ["gop", "pos", "ms", "code_format", "code"]).to_pylist()
        for g in chunk:
            need = max(p.pos for p in by_gop[g])
            gop_rows = sorted((r for r in rows if r["gop"] == g and r["pos"] <= need), key=lambda r: r["pos"])
            frames = records.gop_code(gop_rows).frames()
            for p in by_gop[g]:
                out[(g, p.pos)] = frames[p.pos]
    return [out[(p.gop, p.pos)] for p in picks]


def embed_video(store: Store, video: Video, embedder: Embedder, *, batch: int = 32) -> int:
    """Compute and store the vectors of one video (replacing any half-written ones); returns how many."""
    frames = store.frame_times(video).to_pylist()
    anchor_tokens = Grid(video.grid_width, video.grid_height).tokens_per_image
    picks = select_frames(frames, anchor_tokens)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(picks), batch):
        part = picks[start : start + batch]
        vectors = embedder.embed_images(_images(store, video, part))
        rows += [
            {"ms": p.ms, "gop": p.gop, "kind": p.kind, "vector": v.astype(np.float32).tolist()}
            for p, v in zip(part, vectors)
        ]
    store.add_embeddings(video, embedder.name, embedder.dim, rows)
    return len(rows)


def embed_gops(store: Store, video: Video, embedder: Embedder, gops: set[int]) -> int:
    """Append the vectors of some GOPs of a (live) video, e.g. each GOP as its stream publishes it; returns how many."""
    frames = [f for f in store.frame_times(video).to_pylist() if f["gop"] in gops]
    picks = select_frames(frames, Grid(video.grid_width, video.grid_height).tokens_per_image)
    vectors = embedder.embed_images(_images(store, video, picks)) if picks else []
    rows = [{"ms": p.ms, "gop": p.gop, "kind": p.kind, "vector": v.astype(np.float32).tolist()} for p, v in zip(picks, vectors)]
    store.append_embeddings(video, embedder.name, embedder.dim, rows)
    return len(rows)


def embed_missing(
    store: Store, tenant: str, embedder: Embedder, *, on_video: Callable[[Video, int], None] | None = None
) -> int:
    """Embed every ready video of ``tenant`` that has no complete vectors of ``embedder``; returns how many videos."""
    done = 0
    for video in store.all_videos(tenant):
        if not store.has_embeddings(video, embedder.name):
            n = embed_video(store, video, embedder)
            done += 1
            if on_video:
                on_video(video, n)
    return done
