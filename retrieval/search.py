"""Find moments: a text, an image or a frame ID in, ranked segments with frame IDs out.

The query becomes one vector (``retrieval.embed``); the tenant's FAISS index (``retrieval.index``,
brought up to date with the store first) returns the nearest stored vectors, restricted by the
filters (videos, a time range, content classes looked up in the store's ``segments`` table) with
FAISS ID selectors, so a filtered search still fills its page. Hits are de-duplicated to one per
segment (GOP): the best-scoring frame of the segment represents it, so one long event does not
fill the top-k. Pages are cut with ``page_size`` / ``page_token`` (AIP-158); a token only
continues the query that made it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from videomemory.codec.decode import MAX_SIDE, MIN_SIDE
from videomemory.errors import InvalidArgument
from videomemory.memory.ids import FrameId, check_key, check_tenant
from videomemory.memory.resolve import resolve_frame
from videomemory.memory.store import Store, Video
from videomemory.retrieval.embed import Embedder
from videomemory.retrieval.index import TenantIndex

MAX_PAGE = 100
MAX_TEXT = 1000  # characters of a text query
CLASSES = ("static", "low-motion", "high-motion", "high-cut")


@dataclass(frozen=True)
class SearchFilter:
    """Restrict a search: some videos, a source-time range (ms), some content classes."""

    videos: tuple[str, ...] = ()
    start_ms: int | None = None
    end_ms: int | None = None
    content_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in self.videos:
            check_key(key)
        if self.start_ms is not None and self.start_ms < 0:
            raise InvalidArgument(f"start_ms must be >= 0, got {self.start_ms}")
        if self.start_ms is not None and self.end_ms is not None and self.start_ms > self.end_ms:
            raise InvalidArgument(f"start_ms {self.start_ms} is after end_ms {self.end_ms}")
        bad = [c for c in self.content_classes if c not in CLASSES]
        if bad:
            raise InvalidArgument(f"unknown content class(es) {bad}: use {', '.join(CLASSES)}")

    @property
    def active(self) -> bool:
        """Whether anything is restricted."""
        return bool(self.videos or self.start_ms is not None or self.end_ms is not None or self.content_classes)


@dataclass(frozen=True)
class Hit:
    """One matching segment, represented by its best-matching frame."""

    video_key: str
    frame: FrameId
    score: float  # cosine similarity of the query and the frame's vector
    kind: str  # anchor | event: which vector matched
    segment: int  # GOP number
    start_ms: int  # the segment's time range, end exclusive
    end_ms: int
    content_class: str
    source_uri: str

    @property
    def tag(self) -> str:
        """Cite tag of the matching frame."""
        return self.frame.tag

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        out = asdict(self)
        out["frame"], out["tag"], out["score"] = self.frame.name, self.tag, round(self.score, 4)
        return out


@dataclass
class SearchPage:
    """One page of hits."""

    hits: list[Hit]
    next_page_token: str  # "" on the last page
    index_status: str  # how the index was found: fresh, updated, rebuilt, empty
    embedder: str
    notes: list[str] = field(default_factory=list)


def _query_vector(store: Store, tenant: str, embedder: Embedder, text: str | None, image: np.ndarray | None, frame: str | None) -> np.ndarray:
    given = [x is not None for x in (text, image, frame)]
    if sum(given) != 1:
        raise InvalidArgument("give exactly one query: a text, an image or a frame ID")
    if text is not None:
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise InvalidArgument(f"a text query must have 1..{MAX_TEXT} characters, got {len(text)}")
        return embedder.embed_texts([text])[0]
    if image is not None:
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise InvalidArgument(f"an image query must be (H, W, 3) uint8 RGB, got {arr.dtype} {arr.shape}")
        if not (MIN_SIDE <= min(arr.shape[:2]) and max(arr.shape[:2]) <= MAX_SIDE):
            raise InvalidArgument(f"an image query must be {MIN_SIDE}..{MAX_SIDE} px per side, got {arr.shape[1]}x{arr.shape[0]}")
        return embedder.embed_images([arr])[0]
    assert frame is not None
    resolved = resolve_frame(store, tenant, frame)
    assert resolved.image is not None
    return embedder.embed_images([resolved.image])[0]


def _token(offset: int, digest: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": digest}).encode()).decode().rstrip("=")


def _offset(token: str, digest: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset, owner = int(data["o"]), str(data["q"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token is malformed: pass the next_page_token of the previous page unchanged") from None
    if owner != digest or offset < 0:
        raise InvalidArgument("page_token belongs to another query or filter: start again without a token")
    return offset


def _allowed(index: TenantIndex, store: Store, tenant: str, flt: SearchFilter) -> np.ndarray | None:
    """Row ids of the index that pass the filter (None: no filter)."""
    if not flt.active:
        return None
    assert index.vectors is not None
    vi = index.vectors
    keep = np.ones(vi.ntotal, dtype=bool)
    keys = vi.column("video_key")
    if flt.videos:
        keep &= np.isin(keys, list(flt.videos))
    ms = vi.column("ms")
    if flt.start_ms is not None:
        keep &= ms >= flt.start_ms
    if flt.end_ms is not None:
        keep &= ms < flt.end_ms
    if flt.content_classes:
        allowed = store.segment_classes(tenant, list(flt.content_classes))
        gops = vi.column("gop")
        keep &= np.fromiter(((k, int(g)) in allowed for k, g in zip(keys, gops)), dtype=bool, count=len(keys))
    return np.flatnonzero(keep).astype(np.int64)


def search(
    store: Store,
    tenant: str,
    embedder: Embedder,
    *,
    text: str | None = None,
    image: np.ndarray | None = None,
    frame: str | None = None,
    filters: SearchFilter = SearchFilter(),
    page_size: int = 10,
    page_token: str = "",
) -> SearchPage:
    """Ranked segments of ``tenant``'s videos for one query (text, image or frame ID), one page."""
    check_tenant(tenant)
    if not 1 <= page_size <= MAX_PAGE:
        raise InvalidArgument(f"page_size must be within 1..{MAX_PAGE}, got {page_size}")
    query = _query_vector(store, tenant, embedder, text, image, frame)
    digest = hashlib.sha1(query.astype(np.float32).tobytes() + repr((asdict(filters), embedder.name)).encode()).hexdigest()[:16]
    offset = _offset(page_token, digest)
    index = TenantIndex.open(store, tenant, embedder.name)
    if index.vectors is None:
        return SearchPage([], "", index.status, embedder.name, [f"no vectors of {embedder.name!r} yet: index videos first"])
    allowed = _allowed(index, store, tenant, filters)
    pool = index.vectors.ntotal if allowed is None else len(allowed)
    need = offset + page_size
    k = min(pool, max(4 * need, 32))
    best: dict[tuple[str, int], tuple[float, int]] = {}
    while k > 0:
        scores, ids = index.vectors.search(query, k, allowed)
        best = {}
        meta = index.vectors.meta
        for score, i in zip(scores[0], ids[0]):
            if i < 0:
                continue
            key, gop = meta["video_key"][int(i)].as_py(), int(meta["gop"][int(i)].as_py())
            if (key, gop) not in best:
                best[(key, gop)] = (float(score), int(i))
        if len(best) >= need + 1 or k >= pool:
            break
        k = min(pool, 2 * k)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))
    page = ranked[offset:need]
    hits = _hits(store, tenant, index, page)
    more = len(ranked) > need
    return SearchPage(hits, _token(need, digest) if more else "", index.status, embedder.name)


def _hits(store: Store, tenant: str, index: TenantIndex, page: list[tuple[tuple[str, int], tuple[float, int]]]) -> list[Hit]:
    """Hits of a page: their videos and segments read in one query each."""
    assert index.vectors is not None
    meta = index.vectors.meta
    videos: dict[str, Video] = store.get_videos(tenant, sorted({key for (key, _), _ in page}))
    segments = store.segments_of(list(videos.values()), {kg for kg, _ in page})
    hits = []
    for (key, gop), (score, i) in page:
        seg = segments.get((key, gop))
        if key not in videos or seg is None:
            continue  # deleted since the index was opened
        hits.append(
            Hit(
                video_key=key,
                frame=FrameId(key, int(meta["ms"][i].as_py())),
                score=score,
                kind=meta["kind"][i].as_py(),
                segment=gop,
                start_ms=seg["start_ms"],
                end_ms=seg["end_ms"],
                content_class=seg["content_class"],
                source_uri=videos[key].source_uri,
            )
        )
    return hits
