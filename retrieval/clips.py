"""Self-contained clips for a reasoning model: a time range in, a prompt package that fits a budget out.

``get_clip`` takes the sampled frames of ``[start_ms, end_ms)`` (starting with the frame on screen
at ``start_ms``) and rebuilds them from the stored code. The first frame becomes the clip's
anchor: when it is a P-frame it is **re-synthesised** (``GopCode.reanchor``: its rebuilt image is
stored losslessly, so the later P-codes of its GOP still apply unchanged). The clip carries that
code (``Clip.gops``), so it can be decoded without the store.

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
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lancedb.expr import col, lit
from PIL import Image

from videomemory.codec.config import Grid
from videomemory.codec.gop import I
from videomemory.codec.residual import GopCode
from videomemory.codec.tokens import Rect, TokenModel
from videomemory.errors import BudgetTooSmall, Cancelled, InvalidArgument
from videomemory.memory import records
from videomemory.memory import schema as S
from videomemory.memory.ids import FrameId
from videomemory.memory.store import Store, Video

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
    codes: list[tuple[GopCode, int, int]] = field(repr=False)  # each GOP's stored code, the positions the clip enters and leaves it
    grid: Grid = field(default_factory=Grid)

    @property
    def gops(self) -> list[GopCode]:
        """The clip's own code: each GOP cut to the clip, the first re-anchored at the clip start (made on first use)."""
        if not hasattr(self, "_gops"):
            self._gops = [GopCode(code.anchor, code.p_codes[:last]).reanchor(enter) for code, enter, last in self.codes]
        return self._gops

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
    """An (H, W, 3) uint8 image as PNG bytes (level 1 trades size for speed where latency counts)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


def _data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


@dataclass
class _Frame:
    row: dict[str, Any]
    image: np.ndarray
    part: Part | None = None  # None: sends nothing (unchanged)
    value: float = 0.0  # residual energy per token of what it sends
    rect_energy: list[tuple[Rect, float]] = field(default_factory=list)


def _rects(row: dict[str, Any]) -> list[Rect]:
    return [Rect(r["row"], r["col"], r["rows"], r["cols"]) for r in row["rects"] or []]


def _motion(row: dict[str, Any]) -> dict[str, float]:
    return {"mean_px": round(float(row["motion_mean_px"] or 0.0), 2), "moving_blocks": round(float(row["moving_blocks"] or 0.0), 3)}


def _p_part(row: dict[str, Any], image: np.ndarray, rects: list[Rect], model: TokenModel, trimmed: bool = False) -> Part:
    crops = []
    for r in rects:
        x0, y0, x1, y1 = r.to_px(model.grid)
        crops.append(Crop((x0, y0, x1, y1), r.cells, np.ascontiguousarray(image[y0:y1, x0:x1])))
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


class GopCache:
    """Rebuilt GOPs kept in memory, least recently used out first, up to ``max_bytes`` of pixels.

    Agents ask for overlapping clips of the same moments; a GOP rebuilt once serves them all. Keys
    include the ingest, so a re-coded video never serves stale frames.
    """

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, int], tuple[GopCode, list[np.ndarray], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int]) -> tuple[GopCode, list[np.ndarray]] | None:
        """The cached (code, frames) of a GOP, or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0], item[1]

    def put(self, key: tuple[str, str, int], code: GopCode, frames: list[np.ndarray]) -> None:
        """Keep a rebuilt GOP, evicting the least recently used beyond the budget."""
        size = sum(f.nbytes for f in frames)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (code, frames, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, old) = self._items.popitem(last=False)
                self._bytes -= old

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


GOPS = GopCache()


def _load(store: Store, video: Video, first_ms: int, end_ms: int, cancelled: Callable[[], bool] | None = None
          ) -> tuple[list[dict[str, Any]], list[tuple[GopCode, int, int]], list[np.ndarray]]:
    """Rows of the frames in [first_ms, end_ms), their GOPs' code (with where the clip enters and leaves each), images."""
    columns = [f.name for f in S.FRAMES if f.name != "code"]
    rows = store.frames(video, (col("ms") >= lit(first_ms)) & (col("ms") < lit(end_ms)), columns).to_pylist()
    gops = sorted({r["gop"] for r in rows})
    rebuilt = {g: GOPS.get((video.key, video.ingest_id, g)) for g in gops}
    missing = [g for g, hit in rebuilt.items() if hit is None]
    if missing:  # the whole of each missing GOP, code included, in one query
        code_rows = store.frames(video, col("gop").isin(missing), ["gop", "pos", "ms", "code_format", "code"]).to_pylist()
        for g in missing:
            if cancelled is not None and cancelled():
                raise Cancelled(f"the clip request was cancelled after {len(missing)} GOPs were asked for; nothing was changed")
            code = records.gop_code(sorted((r for r in code_rows if r["gop"] == g), key=lambda r: r["pos"]))
            frames = code.frames()
            GOPS.put((video.key, video.ingest_id, g), code, frames)
            rebuilt[g] = (code, frames)
    codes: list[tuple[GopCode, int, int]] = []
    images: list[np.ndarray] = []
    for g in gops:
        code, frames = rebuilt[g]  # type: ignore[misc]
        positions = [r["pos"] for r in rows if r["gop"] == g]
        codes.append((code, positions[0], positions[-1]))
        images += [frames[p] for p in positions]
    return rows, codes, images


def get_clip(
    store: Store,
    tenant: str,
    key: str,
    start_ms: int,
    end_ms: int,
    token_budget: int,
    plan: str = "adaptive",
    cancelled: Callable[[], bool] | None = None,
) -> Clip:
    """A self-contained clip of ``[start_ms, end_ms)`` whose prompt package fits ``token_budget``.

    ``cancelled`` is asked between GOP rebuilds; when it says so the work stops with ``Cancelled``.
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
    times = store.frames(video, col("ms") <= lit(start_ms), ["ms"])["ms"].to_pylist()
    first_ms = max(times) if times else 0
    rows, codes, images = _load(store, video, first_ms, end_ms, cancelled)
    frames = [_Frame(r, img) for r, img in zip(rows, images)]
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
        energy = np.asarray(r["energy"] or [0.0] * (model_cells[0] * model_cells[1]), np.float32).reshape(model_cells)
        f.rect_energy = [(rc, float(energy[rc.row : rc.row + rc.rows, rc.col : rc.col + rc.cols].sum())) for rc in rects]
        f.part = _p_part(r, f.image, rects, model)
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
                frames[i].part = _p_part(frames[i].row, frames[i].image, chosen, model, trimmed=True)
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
