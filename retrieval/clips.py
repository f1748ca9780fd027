"""Self-contained clips for a reasoning model: a time range in, a prompt package that fits a budget out.

``get_clip`` takes the sampled frames of ``[start_ms, end_ms)`` (starting with the frame on screen
at ``start_ms``). The first frame becomes the clip's anchor: when it is a P-frame it is
**re-synthesised** (its GOP rebuilt from the code up to it; ``GopCode.reanchor`` stores that image
losslessly, so the later P-codes of its GOP still apply unchanged). The clip carries that code
(``Clip.gops``), so it can be decoded without the store.

What the package shows is what the code rebuilds, byte for byte, but a cold clip does not rebuild
every frame: P-frames' changed cells come from the crops stored at ingest (``crops`` table, cut
from the encoder's own reconstruction), later anchors only decode their image, and only the first
GOP's chain up to the clip start is rebuilt. As soon as the clip's frames are known (one read of
their times), that chain, the read of the other GOPs' code and the read of their stored crops
start beside the read of the frame rows; the other GOPs' work then runs in a thread pool. A video
without stored crops (schema version 1) has the frames its package needs rebuilt, up to the last
one needed per GOP. What was read and rebuilt stays in ``GOPS`` for the next clip of the same
moments.

The **prompt package** has one part per frame that the token plan sends: the anchor's full image;
per P-frame the changed cells as image crops with their boxes and a motion summary; a later anchor
(a scene cut) as a full image; frames that did not change (a collapsed static run) are covered by
the part before them. Every part carries its frame's cite tag, and the token count is exact under
the token model (``codec.tokens.TokenModel``): image tokens plus the text overhead of each part.

To fit ``token_budget`` the clip keeps its anchor (a budget below one anchor is refused with the
minimum in the message), then keeps later anchors in time order, then P-frames by how much they
changed per token (residual energy of the cells they send); the first P-frame that does not fit
is trimmed to its most changed rectangles. ``coverage`` is the share of the time range whose
frames are in the package (or unchanged since one that is).
"""

from __future__ import annotations

import base64
import bisect
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import av
import numpy as np
from lancedb.expr import col, lit
from PIL import Image

from videomemory.codec.config import Grid
from videomemory.codec.gop import I
from videomemory.codec.residual import GopCode, decode_pframe, encode_anchor
from videomemory.codec.tokens import Rect, TokenModel
from videomemory.errors import BudgetTooSmall, Cancelled, DataLoss, InvalidArgument
from videomemory.memory import records
from videomemory.memory.ids import FrameId
from videomemory.memory.store import Store, Video

K = TypeVar("K")
V = TypeVar("V")
MAX_CLIP_MS = 10 * 60 * 1000  # a longer range is almost surely a mistake (and a huge response)
PLANS = ("adaptive", "flat")
ANCHOR = "anchor"
PFRAME = "P"


@dataclass(frozen=True)
class Crop:
    """Changed cells of a P-frame: a box on the model grid (px, end exclusive) and its pixels."""

    box: tuple[int, int, int, int]  # (x0, y0, x1, y1)
    cells: int  # image tokens
    image: np.ndarray = field(repr=False)  # (y1 - y0, x1 - x0, 3) uint8


@dataclass(frozen=True)
class Part:
    """What the package holds for one frame."""

    frame: FrameId
    time_s: float
    role: str  # anchor | P
    resynthesised: bool  # an anchor rebuilt from the code at the clip start (the frame was a P-frame)
    image_tokens: int
    text_tokens: int
    image: np.ndarray | None = field(default=None, repr=False)  # the full image of an anchor
    crops: tuple[Crop, ...] = ()
    motion: dict[str, float] = field(default_factory=dict)
    trimmed: bool = False  # some of its changed cells were left out for the budget

    @property
    def tokens(self) -> int:
        """Tokens this part costs."""
        return self.image_tokens + self.text_tokens

    @property
    def tag(self) -> str:
        """Cite tag of the frame."""
        return self.frame.tag

    def text(self) -> str:
        """The line that introduces this part in a prompt."""
        if self.role == ANCHOR:
            how = " (re-synthesised from the code at the clip start)" if self.resynthesised else ""
            return f"{self.tag} t={self.time_s:.3f}s full frame{how}"
        boxes = " ".join(f"[{x0},{y0},{x1},{y1}]" for x0, y0, x1, y1 in (c.box for c in self.crops))
        move = self.motion.get("mean_px", 0.0)
        return f"{self.tag} t={self.time_s:.3f}s changed regions {boxes} (x0,y0,x1,y1 px); mean motion {move:.1f} px"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (no pixels)."""
        return {
            "frame": self.frame.name,
            "tag": self.tag,
            "time_s": self.time_s,
            "role": self.role,
            "resynthesised": self.resynthesised,
            "tokens": self.tokens,
            "image_tokens": self.image_tokens,
            "text_tokens": self.text_tokens,
            "boxes": [list(c.box) for c in self.crops],
            "motion": self.motion,
            "trimmed": self.trimmed,
            "text": self.text(),
        }


@dataclass
class Clip:
    """A self-contained clip: its code, and a prompt package that fits the budget."""

    video: Video
    start_ms: int
    end_ms: int
    plan: str
    token_budget: int
    parts: list[Part]
    dropped: list[FrameId]  # frames left out for the budget
    coverage: float  # share of [start_ms, end_ms) whose frames are in the package
    stored: list[tuple[_Gop, int, int]] = field(repr=False)  # each stored GOP (its code), the positions the clip enters and leaves it
    grid: Grid = field(default_factory=Grid)

    @property
    def codes(self) -> list[tuple[GopCode, int, int]]:
        """Each GOP's stored code with the positions the clip enters and leaves it (parsed on first use)."""
        return [(gop.code, enter, last) for gop, enter, last in self.stored]

    @property
    def gops(self) -> list[GopCode]:
        """The clip's own code: each GOP cut to the clip, the first re-anchored at the clip start (made on first use)."""
        if not hasattr(self, "_gops"):
            self._gops = [self._cut(gop, enter, last) for gop, enter, last in self.stored]
        return self._gops

    @staticmethod
    def _cut(gop: _Gop, enter: int, last: int) -> GopCode:
        """One stored GOP cut to positions ``enter..last``; entered mid-GOP, the frame the clip
        already rebuilt becomes its lossless anchor (``GopCode.reanchor``, without rebuilding it again)."""
        code = gop.code
        if enter == 0:
            return GopCode(code.anchor, code.p_codes[:last])
        gop.rebuild(enter)
        return GopCode(encode_anchor(gop.frames[enter], lossless=True), code.p_codes[enter:last])

    def pngs(self, compress_level: int = 1) -> list[tuple[bytes, list[bytes]]]:
        """Per part, its full image (b"" when it has none) and its crops as PNG; encoded side by side, kept in ``PNGS``."""
        v = self.video
        wanted = [((v.key, v.ingest_id, p.frame.ms, box, compress_level), image) for p in self.parts
                  for box, image in ([(None, p.image)] if p.image is not None else []) + [(c.box, c.image) for c in p.crops]]
        got = [PNGS.get(key) for key, _ in wanted]
        missing = [i for i, data in enumerate(got) if data is None]
        for i, data in zip(missing, png_all([wanted[i][1] for i in missing], compress_level)):
            PNGS.put(wanted[i][0], data)
            got[i] = data
        it = iter(got)
        return [(next(it) if p.image is not None else b"", [next(it) for _ in p.crops]) for p in self.parts]  # type: ignore[misc]

    @property
    def tokens(self) -> int:
        """Exact token count of the package (sum over its parts)."""
        return sum(p.tokens for p in self.parts)

    def header(self) -> str:
        """The line that opens the package in a prompt."""
        return (
            f"Video {self.video.key} from {self.start_ms / 1000:.3f}s to {self.end_ms / 1000:.3f}s, frames on a "
            f"{self.grid.width}x{self.grid.height} grid. Cite a frame by the tag that introduces it."
        )

    def to_dict(self) -> dict[str, Any]:
        """The package as JSON (no pixels)."""
        return {
            "video": self.video.name,
            "video_key": self.video.key,
            "source_uri": self.video.source_uri,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "plan": self.plan,
            "token_budget": self.token_budget,
            "tokens": self.tokens,
            "coverage": round(self.coverage, 4),
            "grid": [self.grid.width, self.grid.height],
            "header": self.header(),
            "parts": [p.to_dict() for p in self.parts],
            "dropped": [f.name for f in self.dropped],
        }

    def save(self, folder: str | Path) -> Path:
        """Write the package (PNG images + ``clip.json``) and the code (``code/``) into ``folder``."""
        folder = Path(folder)
        (folder / "code").mkdir(parents=True, exist_ok=True)
        meta = self.to_dict()
        for part, rec in zip(self.parts, meta["parts"]):
            stem = f"{part.frame.ms:09d}"
            if part.image is not None:
                rec["image"] = f"{stem}_full.png"
                Image.fromarray(part.image).save(folder / rec["image"])
            rec["crops"] = []
            for i, crop in enumerate(part.crops):
                name = f"{stem}_crop{i}.png"
                Image.fromarray(crop.image).save(folder / name)
                rec["crops"].append({"image": name, "box": list(crop.box)})
        for g, gop in enumerate(self.gops):
            (folder / "code" / f"gop{g:03d}_anchor.{gop.anchor.format}").write_bytes(gop.anchor.data)
            for k, pcode in enumerate(gop.p_codes, start=1):
                (folder / "code" / f"gop{g:03d}_p{k:03d}.pcode").write_bytes(pcode.to_bytes())
        (folder / "clip.json").write_text(json.dumps(meta, indent=1))
        return folder / "clip.json"

    def to_messages(self, instruction: str = "") -> list[dict[str, Any]]:
        """An OpenAI-style multimodal message list (text parts and PNG data URLs), ready for a VLM prompt."""
        content: list[dict[str, Any]] = [{"type": "text", "text": (instruction + "\n" if instruction else "") + self.header()}]
        for part in self.parts:
            content.append({"type": "text", "text": part.text()})
            images = [part.image] if part.image is not None else [c.image for c in part.crops]
            for img in images:
                content.append({"type": "image_url", "image_url": {"url": _data_url(img)}})
        return [{"role": "user", "content": content}]


def png_bytes(image: np.ndarray, compress_level: int = 6) -> bytes:
    """An (H, W, 3) uint8 image as PNG bytes (level 1 trades size for speed where latency counts).

    FFmpeg's PNG encoder through PyAV with the "up" row filter: a 512x512 frame at level 1 takes
    12.9 ms and 474 KB against Pillow's 23.8 ms and 466 KB (Pillow tries every filter on every
    row), a small crop 0.19 against 0.55 ms; any PNG reader gets the same pixels.
    """
    h, w = image.shape[:2]
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, "rgb24"
    codec.options = {"pred": "up", "compression_level": str(compress_level)}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return b"".join(bytes(p) for p in codec.encode(frame))


def png_all(images: list[np.ndarray], compress_level: int = 1) -> list[bytes]:
    """``png_bytes`` of many images, side by side in the clip pool (the encoder releases the GIL)."""
    return list(_POOL.map(lambda image: png_bytes(image, compress_level), images))


def _data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


@dataclass
class _Frame:
    row: dict[str, Any]
    image: np.ndarray | None  # the full rebuilt frame, when it was rebuilt
    crops: list[np.ndarray] | None = None  # else the stored pixels of its ``rects``, in their order
    part: Part | None = None  # None: sends nothing (unchanged)
    value: float = 0.0  # residual energy per token of what it sends
    rect_energy: list[tuple[Rect, float]] = field(default_factory=list)

    def crop(self, rect: Rect, index: int, grid: Grid) -> np.ndarray:
        """Pixels of the frame's ``index``-th rect ``rect``: cut from the rebuilt frame or the stored crop."""
        if self.image is not None:
            x0, y0, x1, y1 = rect.to_px(grid)
            return np.ascontiguousarray(self.image[y0:y1, x0:x1])
        assert self.crops is not None
        return self.crops[index]


def _rects(row: dict[str, Any]) -> list[Rect]:
    return [Rect(r["row"], r["col"], r["rows"], r["cols"]) for r in row["rects"] or []]


def _motion(row: dict[str, Any]) -> dict[str, float]:
    return {"mean_px": round(float(row["motion_mean_px"] or 0.0), 2), "moving_blocks": round(float(row["moving_blocks"] or 0.0), 3)}


def _p_part(frame: _Frame, rects: list[Rect], model: TokenModel, trimmed: bool = False) -> Part:
    """The part of a P-frame sending ``rects`` (a subset of the frame's, in its order)."""
    row = frame.row
    index = {r: i for i, r in enumerate(_rects(row))}
    crops = [Crop(r.to_px(model.grid), r.cells, frame.crop(r, index[r], model.grid)) for r in rects]
    return Part(
        frame=FrameId(row["video_key"], row["ms"]),
        time_s=row["time_s"],
        role=PFRAME,
        resynthesised=False,
        image_tokens=sum(r.cells for r in rects),
        text_tokens=model.p_overhead + model.rect_overhead * len(rects),
        crops=tuple(crops),
        motion=_motion(row),
        trimmed=trimmed,
    )


def _anchor_part(row: dict[str, Any], image: np.ndarray, model: TokenModel, resynthesised: bool) -> Part:
    return Part(
        frame=FrameId(row["video_key"], row["ms"]),
        time_s=row["time_s"],
        role=ANCHOR,
        resynthesised=resynthesised,
        image_tokens=model.anchor_tokens,
        text_tokens=0,
        image=image,
        motion=_motion(row),
    )


class _Gop:
    """What clips have taken from one stored GOP: its code rows, the frames rebuilt so far, stored crops decoded.

    ``frames`` is a prefix of the GOP (positions 0..m), rebuilt exactly as ``GopCode.frames()`` does
    and extended when a clip needs a later frame; ``crops`` holds decoded stored crops by position.
    """

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        if not rows or [r["pos"] for r in rows] != list(range(len(rows))):
            raise DataLoss(f"stored GOP {rows[0]['gop'] if rows else '?'} does not hold one row per position from its anchor on")
        self.rows = rows  # gop, pos, ms, code_format, code; one per position
        self.frames: list[np.ndarray] = []  # (H, W, 3) uint8, as GopCode.frames() gives them
        self.crops: dict[int, list[np.ndarray]] = {}
        self._code: GopCode | None = None
        self._lock = threading.Lock()

    @property
    def code(self) -> GopCode:
        """The whole GOP's code (parsed on first use)."""
        with self._lock:
            if self._code is None:
                self._code = records.gop_code(self.rows)
            return self._code

    def rebuild(self, upto: int) -> None:
        """Rebuild the frames up to position ``upto``, continuing the chain from the last one rebuilt."""
        with self._lock:
            have = len(self.frames)
            if have > upto:
                return
            # only the P-codes still to apply are parsed
            code = records.gop_code([self.rows[0], *self.rows[max(have, 1) : upto + 1]])
            if not self.frames:
                self.frames.append(code.anchor.decode())
            for pcode in code.p_codes:
                self.frames.append(decode_pframe(self.frames[-1], pcode))

    @property
    def nbytes(self) -> int:
        """Memory held: code, rebuilt frames, decoded crops."""
        return (sum(len(r["code"]) for r in self.rows) + sum(f.nbytes for f in self.frames)
                + sum(c.nbytes for crops in self.crops.values() for c in crops))


class SizedLru(Generic[K, V]):
    """Values by key, least recently used out first, up to ``max_bytes`` as ``size`` counts them."""

    def __init__(self, size: Callable[[V], int], max_bytes: int) -> None:
        self.size, self.max_bytes = size, max_bytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The cached value, or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V) -> None:
        """Keep a value (or account for what it gained since), evicting the least recently used beyond the budget."""
        size = self.size(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


# What clips took from stored GOPs. Agents ask for overlapping clips of the same moments; a GOP
# read and rebuilt once serves them all. Keys (video, ingest, GOP) include the ingest, so a
# re-coded video never serves stale frames.
GOPS: SizedLru[tuple[str, str, int], _Gop] = SizedLru(lambda gop: gop.nbytes, 512 * 1024 * 1024)
# The PNGs the API sent, by (video, ingest, frame ms, box or None for the full frame, level): the
# same moments' images are not encoded again for the next clip.
PNGS: SizedLru[tuple[str, str, int, tuple[int, int, int, int] | None, int], bytes] = SizedLru(len, 64 * 1024 * 1024)
# GOP rebuilds, crop decoding and the store reads of one clip run side by side (numpy, Pillow,
# zstd and LanceDB release the GIL); shared by all requests.
_POOL = ThreadPoolExecutor(max_workers=max(4, min(8, os.cpu_count() or 1)), thread_name_prefix="videomemory-clip")  # some wait on reads
CODE_COLUMNS = ["gop", "pos", "ms", "code_format", "code"]
# what a package is built from: place, role and token plan of each frame (not its code)
ROW_COLUMNS = ["video_key", "ms", "time_s", "gop", "pos", "role", "plan_role", "rects", "energy", "motion_mean_px", "moving_blocks"]


def _frame_rows(table: Any) -> list[dict[str, Any]]:
    """Frame rows as dicts, each ``energy`` a float32 array view (empty when none), not a list of floats."""
    energy = table.column("energy").combine_chunks()
    values = energy.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    offsets = energy.offsets.to_numpy()
    null = energy.is_null().to_numpy(zero_copy_only=False)
    rows = table.drop_columns(["energy"]).to_pylist()
    for i, r in enumerate(rows):
        r["energy"] = values[offsets[i] : offsets[i] if null[i] else offsets[i + 1]]
    return rows


def _decode_crops(gop: _Gop, jobs: list[tuple[int, dict[str, Any], dict[str, Any]]], grid: Grid) -> None:
    """Decode stored crops (position, frame row, crop row) into ``gop.crops``; damaged ones are rebuilt from the code."""
    for pos, row, stored in jobs:
        try:
            gop.crops[pos] = records.unpack_crops(stored, _rects(row), grid)
        except DataLoss:
            gop.rebuild(pos)  # the code is the record: crops are only derived from it


def _head(store: Store, video: Video, gop: int, pos: int) -> _Gop:
    """The clip's first GOP (cached, or its code read) rebuilt up to the clip's first frame."""
    entry = GOPS.get((video.key, video.ingest_id, gop))
    if entry is None:
        entry = _Gop(sorted(store.frames(video, col("gop") == lit(gop), CODE_COLUMNS).to_pylist(), key=lambda r: r["pos"]))
    entry.rebuild(pos)
    return entry


@dataclass
class _Reads:
    """What a clip reads once it knows its frames, started together: cached GOPs, the others' code, stored crops."""

    entries: dict[int, _Gop | None]  # per GOP of the clip: the cached one, else None
    code: Future[dict[int, _Gop]] | None  # the uncached GOPs after the first (the first is ``_head``'s)
    crops: Future[Any] | None  # stored crops of the frames after the first that the cache cannot serve
    stored_crops: bool  # False: P-frames are rebuilt, never served from crops (stored or cached)


def _read_gops(store: Store, video: Video, gops: list[int]) -> dict[int, _Gop]:
    """The stored code of ``gops``, one ``_Gop`` each."""
    by_gop: dict[int, list[dict[str, Any]]] = {g: [] for g in gops}
    for r in store.frames(video, col("gop").isin(gops), CODE_COLUMNS).to_pylist():
        by_gop[r["gop"]].append(r)
    return {g: _Gop(sorted(rows, key=lambda r: r["pos"])) for g, rows in by_gop.items()}


def _serves(entry: _Gop | None, pos: int, crops: bool) -> bool:
    """Whether a cached GOP holds frame ``pos`` rebuilt, or (with ``crops``) its decoded crops."""
    return entry is not None and (pos < len(entry.frames) or (crops and pos in entry.crops))


def _start_reads(store: Store, video: Video, span: list[dict[str, Any]], stored_crops: bool) -> _Reads:
    """Start the reads of a clip whose frames are ``span`` (ms, gop, pos; the first frame first)."""
    gops = sorted({r["gop"] for r in span})
    entries: dict[int, _Gop | None] = {g: GOPS.get((video.key, video.ingest_id, g)) for g in gops}
    missing = [g for g in gops[1:] if entries[g] is None]

    # frames without crops return none
    crop_ms = [r["ms"] for r in span[1:] if stored_crops and not _serves(entries[r["gop"]], r["pos"], True)]
    code = _POOL.submit(_read_gops, store, video, missing) if missing else None
    crops = _POOL.submit(store.crops, video, col("ms").isin(crop_ms), ["ms", "gop", "pos", "format", "crops"]) if crop_ms else None
    return _Reads(entries, code, crops, stored_crops)


def _load(video: Video, rows: list[dict[str, Any]], plan: str, grid: Grid, head: Future[_Gop], reads: _Reads,
          cancelled: Callable[[], bool] | None = None) -> tuple[list[_Frame], list[tuple[_Gop, int, int]]]:
    """The frames of ``rows`` with what their parts need, and each GOP with where the clip enters and leaves it.

    A frame sent as a full image (the clip's first, a planned anchor, every frame of a flat clip)
    is rebuilt (an anchor only decodes its image); a P-frame sent as changed cells takes its
    stored crops, or, without them (a video ingested by schema version 1), is rebuilt too. Only
    frames up to the last one that must be rebuilt are; each GOP's code rows are read whole (the
    clip carries its code).
    """
    gops = sorted({r["gop"] for r in rows})
    full: dict[int, int] = {g: -1 for g in gops}  # the last position rebuilt per GOP
    wants: dict[int, list[tuple[int, dict[str, Any]]]] = {g: [] for g in gops}  # (position, row) sent as crops
    for i, r in enumerate(rows):
        if i == 0 or plan == "flat" or not records.sends_crops(r["role"], r["plan_role"]):
            full[r["gop"]] = max(full[r["gop"]], r["pos"])
        elif r["rects"]:
            wants[r["gop"]].append((r["pos"], r))
    keys = {g: (video.key, video.ingest_id, g) for g in gops}
    entries = reads.entries  # the first GOP comes from ``head``
    if reads.code is not None:
        entries.update(reads.code.result())
    stored = {(r["gop"], r["pos"]): r for r in reads.crops.result().to_pylist()} if reads.crops is not None else {}
    decode: dict[int, list[tuple[int, dict[str, Any], dict[str, Any]]]] = {g: [] for g in gops}

    def ready(g: int, pos: int) -> bool:  # served without stored crops
        return pos <= full[g] or _serves(entries[g], pos, reads.stored_crops)

    def jobs_of(gs: list[int]) -> list[tuple[Callable[..., None], tuple[Any, ...]]]:
        """Rebuilds (longest first) and crop decodes still to do in GOPs ``gs``."""
        for g in gs:
            for pos, r in wants[g]:
                if ready(g, pos):
                    continue
                if (g, pos) in stored:
                    decode[g].append((pos, r, stored[(g, pos)]))
                else:
                    full[g] = max(full[g], pos)  # no stored crops: rebuild it
        out: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        for g in sorted(gs, key=lambda g: len(entries[g].frames) - full[g]):  # type: ignore[union-attr]
            if full[g] >= len(entries[g].frames):  # type: ignore[union-attr]
                out.append((entries[g].rebuild, (full[g],)))  # type: ignore[union-attr]
        return out + [(_decode_crops, (entries[g], decode[g], grid)) for g in gs if decode[g]]

    if cancelled is not None and cancelled():
        raise Cancelled("the clip request was cancelled before its GOP rebuilds and crop decodes; nothing was changed")
    # The other GOPs' work goes beside the first GOP's chain; then what the first GOP still needs.
    jobs = jobs_of(gops[1:])
    futures = [_POOL.submit(fn, *args) for fn, args in jobs]
    try:
        entries[gops[0]] = head.result()
        more = jobs_of(gops[:1])
        futures += [_POOL.submit(fn, *args) for fn, args in more]
        for k, fut in enumerate(futures):
            if k and cancelled is not None and cancelled():
                raise Cancelled(f"the clip request was cancelled after {k} of {len(futures)} GOP rebuilds and crop decodes; "
                                "nothing was changed")
            fut.result()
    finally:
        for fut in futures:
            fut.cancel()  # those not started yet (after an error or a cancellation)
    got: dict[int, _Gop] = {g: e for g, e in entries.items() if e is not None}
    frames: list[_Frame] = []
    codes: list[tuple[_Gop, int, int]] = []
    for g in gops:
        e = got[g]
        positions = [r["pos"] for r in rows if r["gop"] == g]
        codes.append((e, positions[0], positions[-1]))
        GOPS.put(keys[g], e)
    for r in rows:
        e = got[r["gop"]]
        pos = r["pos"]
        image = e.frames[pos] if pos < len(e.frames) else None
        frames.append(_Frame(r, image, None if image is not None else e.crops.get(pos)))
    return frames, codes


def get_clip(
    store: Store,
    tenant: str,
    key: str,
    start_ms: int,
    end_ms: int,
    token_budget: int,
    plan: str = "adaptive",
    cancelled: Callable[[], bool] | None = None,
    stored_crops: bool = True,
) -> Clip:
    """A self-contained clip of ``[start_ms, end_ms)`` whose prompt package fits ``token_budget``.

    ``cancelled`` is asked between GOP rebuilds; when it says so the work stops with ``Cancelled``.
    ``stored_crops`` False rebuilds the P-frames whose crops were stored at ingest instead (the same
    bytes; what a video ingested without them gets).
    """
    if plan not in PLANS:
        raise InvalidArgument(
            f"plan {plan!r} is not one of {', '.join(PLANS)} (the paper's 16-token P-frames need a trained "
            "P-tokenizer, so they cannot be sent as images)"
        )
    if start_ms < 0 or end_ms <= start_ms:
        raise InvalidArgument(f"the clip range must have 0 <= start < end, got start {start_ms} ms, end {end_ms} ms")
    if end_ms - start_ms > MAX_CLIP_MS:
        raise InvalidArgument(f"a clip may span at most {MAX_CLIP_MS // 60000} minutes, asked {(end_ms - start_ms) / 60000:.1f}")
    if token_budget <= 0:
        raise InvalidArgument(f"token_budget must be > 0, got {token_budget}")
    video = store.get_video(tenant, key)
    if start_ms >= video.duration_ms:
        raise InvalidArgument(f"the clip starts at {start_ms} ms, past the end of video {key} ({video.duration_ms} ms)")
    end_ms = min(end_ms, video.duration_ms)
    grid = Grid(video.grid_width, video.grid_height)
    model = TokenModel(grid=grid)
    if token_budget < model.anchor_tokens:
        raise BudgetTooSmall(
            f"token_budget {token_budget} cannot hold the clip's anchor: the minimum is {model.anchor_tokens} "
            f"tokens (one full {grid.width}x{grid.height} frame)"
        )
    upto = store.frames(video, col("ms") < lit(end_ms), ["ms", "gop", "pos"]).to_pylist()  # sorted by time
    at = bisect.bisect_right([r["ms"] for r in upto], start_ms) - 1  # the frame on screen at the start
    span = upto[max(at, 0) :]
    first = span[0] if span else {"ms": 0, "gop": 0, "pos": 0}
    if cancelled is not None and cancelled():
        raise Cancelled("the clip request was cancelled before any frame was rebuilt; nothing was changed")
    # The clip's first frame ends the longest chain of work (its GOP rebuilt up to it): start it
    # now, and the reads of the other GOPs' code and of the stored crops, beside the frame rows.
    head = _POOL.submit(_head, store, video, first["gop"], first["pos"])
    reads = _start_reads(store, video, span, stored_crops)
    rows = _frame_rows(store.frames(video, (col("ms") >= lit(first["ms"])) & (col("ms") < lit(end_ms)), ROW_COLUMNS))
    frames, codes = _load(video, rows, plan, grid, head, reads, cancelled)
    model_cells = model.cells
    for i, f in enumerate(frames):
        r = f.row
        if i == 0 or (plan == "flat") or (r["role"] == I and r["plan_role"] == I):
            f.part = _anchor_part(r, f.image, model, resynthesised=(i == 0 and r["role"] != I))
            f.value = float("inf")
            continue
        rects = _rects(r)
        if not rects:
            continue  # unchanged: covered by the frame before
        energy = r["energy"].reshape(model_cells) if len(r["energy"]) else np.zeros(model_cells, np.float32)
        f.rect_energy = [(rc, float(energy[rc.row : rc.row + rc.rows, rc.col : rc.col + rc.cols].sum())) for rc in rects]
        f.part = _p_part(f, rects, model)
        f.value = sum(e for _, e in f.rect_energy) / max(f.part.tokens, 1)
    kept, dropped = _fit(frames, token_budget, model)
    coverage = _coverage(frames, kept, start_ms, end_ms)
    parts = [f.part for i, f in enumerate(frames) if i in kept and f.part is not None]
    return Clip(video, start_ms, end_ms, plan, token_budget, parts, [FrameId(video.key, frames[i].row["ms"]) for i in dropped],
                coverage, codes, grid)


def _fit(frames: list[_Frame], budget: int, model: TokenModel) -> tuple[set[int], list[int]]:
    """Indices of frames kept (parts possibly trimmed in place) and of frames dropped, for ``budget``."""
    sending = [i for i, f in enumerate(frames) if f.part is not None]
    left = budget - frames[0].part.tokens  # type: ignore[union-attr]
    kept = {0}
    anchors = [i for i in sending[1:] if frames[i].part.role == ANCHOR]  # type: ignore[union-attr]
    p_frames = sorted((i for i in sending[1:] if frames[i].part.role == PFRAME), key=lambda i: (-frames[i].value, i))  # type: ignore[union-attr]
    dropped = []
    trimmed_one = False
    for i in anchors + p_frames:
        part = frames[i].part
        assert part is not None
        if part.tokens <= left:
            kept.add(i)
            left -= part.tokens
            continue
        if part.role == PFRAME and not trimmed_one:
            best = sorted(frames[i].rect_energy, key=lambda re: -re[1] / re[0].cells)
            chosen: list[Rect] = []
            cost = model.p_overhead
            for rect, _ in best:
                if cost + rect.cells + model.rect_overhead <= left:
                    chosen.append(rect)
                    cost += rect.cells + model.rect_overhead
            if chosen:
                chosen.sort(key=lambda r: (r.row, r.col))
                frames[i].part = _p_part(frames[i], chosen, model, trimmed=True)
                kept.add(i)
                left -= frames[i].part.tokens  # type: ignore[union-attr]
                trimmed_one = True
                continue
        dropped.append(i)
    return kept, sorted(dropped)


def _coverage(frames: list[_Frame], kept: set[int], start_ms: int, end_ms: int) -> float:
    """Share of [start_ms, end_ms) on screen in a kept frame or in an unchanged one after a kept frame."""
    covered = 0
    shown = False
    for i, f in enumerate(frames):
        t0 = max(start_ms, f.row["ms"])
        t1 = frames[i + 1].row["ms"] if i + 1 < len(frames) else end_ms
        if f.part is not None:
            shown = i in kept
        if shown:
            covered += max(0, t1 - t0)
    return covered / (end_ms - start_ms)
