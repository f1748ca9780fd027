"""The compared methods: each turns a video's sampled frames into a ``Package`` at a token budget.

A package is what a video model could know at every sampled instant (2 fps) from what the method
sent up to then (``perceived``, one image per instant), what was sent when (``sends``: times and
the token cells covered, for event recall), and the tokens it spent. The budget is tokens per
minute, ``flat_tpm / ratio`` with ``flat_tpm`` every 2 fps sample as a full image (256 tokens at
512x512: 30,720 per minute); ``budget_tokens = budget_tpm x minutes``, minutes = N / 2 fps / 60 as
in ``codec.tokens.summarise``. How each method meets it, and what the model perceives:

* ``flat``: every frame it takes is a full image, at a sampling rate lowered by ``ratio``
  (2/ratio fps, decoded from the source on its own clock, so the instants need not be 2 fps
  samples); frames that would push the spend over the budget are dropped from the end. The model
  holds the last frame it saw.
* ``uniform``: ``floor(budget_tokens / 256)`` full images evenly spaced among the 2 fps samples
  (``codec.tokens.plan_uniform``), the last one held. ``flat`` and ``uniform`` are both "fewer
  full frames"; they differ only in where the frames fall.
* ``evs``: vLLM's Efficient Video Sampling, on pixels: frame 0 is sent whole; every other token
  cell (32x32 px) scores its mean absolute pixel difference to the same cell of the previous
  sampled frame, and the highest-scoring cells over the whole video are kept up to the budget (a
  global top-k, as vLLM's retention mask; no motion compensation, no text overhead). The model
  keeps each cell's last sent pixels.
* ``paper``: AdaCodec's layout (PAPER §1.4): the codec's own GOPs (no budget: the gamma rule and
  K_max), each costing 256 + 16 K tokens; whole GOPs are sampled uniformly over time (the most
  GOPs, evenly spaced by index, that fit the budget; when not even one GOP fits, the first GOP cut
  to the P-frames that do). The 16 P-tokens need a trained tokenizer, so
  the training-free stand-in is PAPER §5's "Thumbnail-P": each P-frame is a 16-token thumbnail
  (128x128 at 512x512). The model sees the GOP's anchor, and for each P-frame takes, per token
  cell, the anchor where the upsampled thumbnail agrees with the anchor's own thumbnail (mean
  absolute difference <= ``THUMB_AGREE`` grey levels) and the upsampled thumbnail elsewhere.
  Frames of GOPs not sent hold the last perceived image.
* ``adaptive`` (ours): the codec under its own rate control (``codec.rate.Planner`` with
  ``PlanConfig(budget_per_min=budget)``). A full image replaces what the model holds (the image as
  sampled frame, or as rebuilt from the stored code: ``pixels`` below). A P-frame's text overhead carries one
  motion vector ("mv=(dx,dy)"), so the model warps what it holds by that vector, the median of
  the frame's block vectors, with ``codec.residual.compensate`` (edges replicated), then the sent
  cells are pasted from the rebuilt frame. We assume only that one vector reaches the model, not
  the per-block field (``motion="blocks"`` warps by the whole field: an upper bound for a richer
  motion summary). A P-frame that costs nothing ("unchanged") leaves the image as it was.

Anchors and full frames of the other methods are the sampled frames themselves. By default
(``pixels="source"``) so are ``adaptive``'s, so every method sends the same pixels and only the
choice of what to send differs: a paired comparison of token plans. ``pixels="code"`` sends
``adaptive``'s as rebuilt from the stored code (the product's path): its figures then also carry
the codec's loss, which the baselines, sending raw frames, do not pay.

The codec runs once per budget (rate control changes the anchors and so the code), but the motion
search, the expensive part, depends only on the sampled frames: ``run_codec`` records the fields
of the unbudgeted run and replays them to the budgeted runs (``MotionCache``), which gives the
same code (tested) at about half the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
import torch
from PIL import Image

from videomemory.codec import gop as gop_module
from videomemory.codec.config import CodecConfig, PlanConfig
from videomemory.codec.decode import SampledFrame, sample_frames
from videomemory.codec.encoder import EncodedFrame, Encoder
from videomemory.codec.motion import MotionField
from videomemory.codec.residual import compensate
from videomemory.codec.tokens import I, SKIP, FramePlan, TokenModel, plan_uniform, rects_mask

#: Method names, in table order.
METHODS: tuple[str, ...] = ("flat", "uniform", "evs", "paper", "adaptive")
PIXELS: tuple[str, ...] = ("source", "code")  # what adaptive's sent pixels are (adaptive_package)
THUMB_AGREE = 6.0  # grey levels: a thumbnail cell this close to the anchor's keeps the anchor's detail


@dataclass(frozen=True)
class Send:
    """Something sent at one instant: ``cells`` (rows, cols) bool, or None for the whole frame."""

    time_s: float
    cells: np.ndarray | None = field(default=None, repr=False)
    full_res: bool = True  # False: the whole frame at thumbnail resolution (paper's P-frames)


@dataclass
class Package:
    """What a model receives from one method at one budget, per 2 fps sampled instant."""

    method: str
    ratio: float
    budget_tpm: float
    tokens: int
    minutes: float
    perceived: np.ndarray = field(repr=False)  # (N, H, W, 3) uint8
    sends: list[Send] = field(default_factory=list, repr=False)

    @property
    def tokens_per_min(self) -> float:
        """Tokens actually spent per minute of video."""
        return self.tokens / self.minutes if self.minutes > 0 else 0.0


@dataclass
class CodecRun:
    """One pass of the codec over a video's sampled frames."""

    plans: list[FramePlan]
    roles: list[str]
    reasons: list[str]
    images: np.ndarray = field(repr=False)  # (N, H, W, 3) uint8 as rebuilt
    vectors: list[np.ndarray | None] = field(repr=False)  # (By, Bx, 2) int16 per frame, None for frame 0
    psnr: list[float] = field(default_factory=list)
    fields: list[MotionField | None] = field(default_factory=list, repr=False)
    encoded: list[EncodedFrame] = field(default_factory=list, repr=False)  # kept only with ``keep``

    @property
    def tokens(self) -> int:
        """Tokens the adaptive plan spent."""
        return sum(p.tokens for p in self.plans)


class MotionCache:
    """Replays recorded motion fields in call order in place of ``estimate_motion``."""

    def __init__(self, fields: Sequence[MotionField | None]) -> None:
        self.fields = [f for f in fields if f is not None]
        self.calls = 0

    def __call__(self, cur: torch.Tensor, ref: torch.Tensor, config: object = None, prior: object = None,
                 anchor_above: object = None) -> MotionField:
        """The next recorded field (same frames, same order as the recording run)."""
        out = self.fields[self.calls]
        self.calls += 1
        return out


def budget_tpm(model: TokenModel, ratio: float, fps: float = 2.0) -> float:
    """Tokens per minute of ``1/ratio`` of flat (every sample a full image)."""
    return model.anchor_tokens * fps * 60.0 / ratio


def run_codec(frames: Sequence[SampledFrame], config: CodecConfig, budget: float | None = None,
              motion: Sequence[MotionField | None] | None = None, device: str = "cpu", keep: bool = False,
              live: bool = False) -> CodecRun:
    """Code the frames (under rate control when ``budget``), replaying ``motion`` fields if given.

    As a file (rate control knows its length), or with ``live`` as a live stream (it does not).
    """
    cfg = config.with_(plan=PlanConfig(budget_per_min=budget)) if budget is not None else config
    enc = Encoder(cfg, device, None if live else len(frames))
    cache = MotionCache(motion) if motion is not None else None
    plans, roles, reasons, images, vectors, psnrs, fields, kept = [], [], [], [], [], [], [], []
    ctx = mock.patch.object(gop_module, "estimate_motion", cache) if cache is not None else _null()
    with ctx:
        for f in frames:
            e = enc.push(f)
            plans.append(e.plan)
            roles.append(e.code.role)
            reasons.append(e.code.reason)
            images.append(e.image)
            m = e.code.motion
            vectors.append(None if m is None else m.vectors.to(torch.int16).cpu().numpy())
            psnrs.append(e.psnr)
            fields.append(m)
            if keep:
                kept.append(e)
    if cache is not None and cache.calls != len(cache.fields):
        raise RuntimeError(f"motion cache replayed {cache.calls} of {len(cache.fields)} fields; codec.gop changed?")
    return CodecRun(plans, roles, reasons, np.stack(images), vectors, psnrs, fields, kept)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _cells_to_px(cells: np.ndarray, cell: int) -> np.ndarray:
    """(rows, cols) bool -> (rows*cell, cols*cell) bool."""
    return np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)


def _hold(n: int, sent: dict[int, np.ndarray], first: np.ndarray) -> np.ndarray:
    """Per instant 0..n-1, the last image sent at or before it (``first`` before anything)."""
    out = np.empty((n,) + first.shape, dtype=np.uint8)
    cur = first
    for i in range(n):
        cur = sent.get(i, cur)
        out[i] = cur
    return out


def uniform_package(frames: Sequence[SampledFrame], model: TokenModel, ratio: float, fps: float = 2.0) -> Package:
    """Evenly spaced full images among the samples, as many as the budget pays for."""
    n = len(frames)
    minutes = n / fps / 60.0
    budget = budget_tpm(model, ratio, fps)
    plans = plan_uniform(n, int(math.floor(budget * minutes + 1e-9)), model)
    sent = {i: frames[i].image for i, p in enumerate(plans) if p.role == I}
    black = np.zeros_like(frames[0].image)
    return Package("uniform", ratio, budget, sum(p.tokens for p in plans), minutes, _hold(n, sent, black),
                   [Send(frames[i].time_s) for i in sorted(sent)])


def flat_package(path: str, frames: Sequence[SampledFrame], config: CodecConfig, model: TokenModel, ratio: float) -> Package:
    """Every frame full at a sampling rate lowered by ``ratio``, capped at the budget."""
    fps = config.fps
    n = len(frames)
    minutes = n / fps / 60.0
    budget = budget_tpm(model, ratio, fps)
    cap = int(math.floor(budget * minutes / model.anchor_tokens + 1e-9))
    low = list(sample_frames(path, fps=fps / ratio, grid=config.grid))[:cap]
    times = [f.time_s for f in low]
    out = np.empty((n,) + frames[0].image.shape, dtype=np.uint8)
    j = -1
    for i, f in enumerate(frames):
        while j + 1 < len(low) and times[j + 1] <= f.time_s + 1e-6:
            j += 1
        out[i] = low[j].image if j >= 0 else 0
    return Package("flat", ratio, budget, len(low) * model.anchor_tokens, minutes, out, [Send(t) for t in times])


def cell_diff(a: np.ndarray, b: np.ndarray, cell: int) -> np.ndarray:
    """Mean absolute pixel difference per ``cell`` x ``cell`` cell of two (H, W, 3) uint8 images."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(axis=2)
    h, w = d.shape
    return d.reshape(h // cell, cell, w // cell, cell).sum(axis=(1, 3)) / (3.0 * cell * cell)


def evs_package(frames: Sequence[SampledFrame], model: TokenModel, ratio: float, fps: float = 2.0) -> Package:
    """Frame 0 whole, then the globally highest pixel-difference cells up to the budget."""
    n = len(frames)
    minutes = n / fps / 60.0
    budget = budget_tpm(model, ratio, fps)
    cell = model.grid.token_px
    rows, cols = model.cells
    per = rows * cols
    scores = np.full((n, rows, cols), -1.0)
    for i in range(1, n):
        scores[i] = cell_diff(frames[i].image, frames[i - 1].image, cell)
    keep_total = int(min(n * per, max(per, math.floor(budget * minutes + 1e-9))))
    flat_scores = scores[1:].reshape(-1)
    k = keep_total - per
    keep = np.zeros(flat_scores.size, dtype=bool)
    if k > 0:
        keep[np.argsort(-flat_scores, kind="stable")[:k]] = True
    keep = np.concatenate([np.ones(per, dtype=bool), keep]).reshape(n, rows, cols)
    out = np.empty((n,) + frames[0].image.shape, dtype=np.uint8)
    cur = frames[0].image.copy()
    sends = []
    for i in range(n):
        m = keep[i]
        if m.any():
            px = _cells_to_px(m, cell)
            cur = np.where(px[..., None], frames[i].image, cur)
            sends.append(Send(frames[i].time_s, m.copy() if i else None))
        out[i] = cur
    return Package("evs", ratio, budget, int(keep.sum()), minutes, out, sends)


def _thumb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-averaged thumbnail of an (H, W, 3) uint8 image, as float32 (h, w, 3)."""
    return np.asarray(Image.fromarray(img).resize(size, Image.BOX), dtype=np.float32)


def _upsample(thumb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a float thumbnail back to (W, H) = ``size``, uint8."""
    t = np.clip(thumb + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(t).resize(size, Image.BILINEAR))


def thumbnail_p(anchor: np.ndarray, frame: np.ndarray, model: TokenModel) -> np.ndarray:
    """What a 16-token thumbnail of ``frame`` tells a model that holds ``anchor`` (see module doc)."""
    h, w = frame.shape[:2]
    f = math.sqrt(model.paper_p_tokens / model.anchor_tokens)
    tw, th = max(1, round(w * f)), max(1, round(h * f))
    tf, ta = _thumb(frame, (tw, th)), _thumb(anchor, (tw, th))
    up = _upsample(tf, (w, h))
    rows, cols = model.cells
    # Per token cell, how far the thumbnail moved from the anchor's thumbnail.
    diff = np.abs(tf - ta).mean(axis=2)
    cy, cx = max(1, th // rows), max(1, tw // cols)
    if th % rows == 0 and tw % cols == 0:
        cd = diff.reshape(rows, cy, cols, cx).mean(axis=(1, 3))
    else:  # thumbnail smaller than the cell grid: compare cells at full size instead
        cd = cell_diff(up, _upsample(ta, (w, h)), model.grid.token_px)
    same = _cells_to_px(cd <= THUMB_AGREE, model.grid.token_px)
    return np.where(same[..., None], anchor, up)


def paper_package(frames: Sequence[SampledFrame], run: CodecRun, model: TokenModel, ratio: float, fps: float = 2.0) -> Package:
    """AdaCodec's GOPs (256 + 16K each) sampled uniformly over time to fit the budget; Thumbnail-P."""
    n = len(frames)
    minutes = n / fps / 60.0
    budget = budget_tpm(model, ratio, fps)
    starts = [i for i, r in enumerate(run.roles) if r == I]
    gops = [list(range(s, e)) for s, e in zip(starts, starts[1:] + [n])]
    cost = [model.anchor_tokens + model.paper_p_tokens * (len(g) - 1) for g in gops]
    allow = budget * minutes + 1e-9
    chosen: list[int] = []
    for m in range(len(gops), 0, -1):
        idx = sorted({j * len(gops) // m for j in range(m)})
        if sum(cost[j] for j in idx) <= allow:
            chosen = idx
            break
    if not chosen:  # not even one whole GOP fits: the first GOP, cut to the P-frames that fit
        keep = max(0, int((allow - model.anchor_tokens) // max(1, model.paper_p_tokens))) if model.paper_p_tokens else len(gops[0]) - 1
        gops = [gops[0][: 1 + keep]] + [[i] for i in gops[0][1 + keep :]] + gops[1:]
        cost = [model.anchor_tokens + model.paper_p_tokens * keep] + [0] * (len(gops) - 1)
        chosen = [0]
    out = np.empty((n,) + frames[0].image.shape, dtype=np.uint8)
    sends = []
    cur = np.zeros_like(frames[0].image)
    chosen_set = set(chosen)
    for j, g in enumerate(gops):
        if j in chosen_set:
            anchor = frames[g[0]].image
            cur = anchor
            sends.append(Send(frames[g[0]].time_s))
            out[g[0]] = cur
            for i in g[1:]:
                cur = thumbnail_p(anchor, frames[i].image, model)
                sends.append(Send(frames[i].time_s, full_res=False))
                out[i] = cur
        else:
            for i in g:
                out[i] = cur
    return Package("paper", ratio, budget, sum(cost[j] for j in chosen), minutes, out, sends)


def _median_field(vectors: np.ndarray) -> torch.Tensor:
    """A field with every block at the median (dy, dx) of ``vectors`` (the one vector a prompt carries)."""
    v = np.round(np.median(vectors.reshape(-1, 2).astype(np.float64), axis=0)).astype(np.int64)
    return torch.from_numpy(np.broadcast_to(v, vectors.shape).copy())


def adaptive_package(frames: Sequence[SampledFrame], run: CodecRun, model: TokenModel, ratio: float,
                     fps: float = 2.0, motion: str = "median", pixels: str = "source") -> Package:
    """The codec's plans under rate control, as perceived: warped held image plus pasted cells.

    ``pixels="source"`` sends the sampled frames' own pixels in what the plan sends (as every other
    method does: the comparison is then of the token plans alone); ``"code"`` sends them as rebuilt
    from the stored code, as the product serves them (its figures then include the codec's loss).
    """
    if pixels not in PIXELS:
        raise ValueError(f"pixels must be one of {PIXELS}, got {pixels!r}")
    n = len(frames)
    minutes = n / fps / 60.0
    cell = model.grid.token_px
    out = np.empty((n,) + frames[0].image.shape, dtype=np.uint8)
    cur: np.ndarray | None = None
    sends = []
    for i, (plan, img, vec) in enumerate(zip(run.plans, run.images, run.vectors)):
        t = frames[i].time_s
        if pixels == "source":
            img = frames[i].image
        if plan.role == I or cur is None:
            cur = img
            sends.append(Send(t))
        elif plan.role != SKIP and plan.tokens > 0:
            if vec is not None and vec.any():
                field_ = _median_field(vec) if motion == "median" else torch.from_numpy(vec.astype(np.int64))
                ref = torch.from_numpy(np.ascontiguousarray(cur)).permute(2, 0, 1)
                cur = compensate(ref, field_).permute(1, 2, 0).numpy()
            if plan.rects:
                mask = rects_mask(plan.rects, model.cells)
                cur = np.where(_cells_to_px(mask, cell)[..., None], img, cur)
                sends.append(Send(t, mask))
        out[i] = cur
    return Package("adaptive", ratio, budget_tpm(model, ratio, fps), run.tokens, minutes, out, sends)
