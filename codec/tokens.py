"""The token model: how many visual tokens a VLM spends on each sampled frame, under several plans.

One LLM token covers a ``token_px`` x ``token_px`` cell of the model grid (32x32 px: 2x2 merged
16 px patches), so a full image (an anchor, "I") costs ``Grid.tokens_per_image`` tokens: 256 at
512x512, 12*20 = 240 at 384x640. Everything here counts tokens exactly from the grid.

Plans (``PLANS``), each giving one ``FramePlan`` per sampled frame:

- ``adaptive``: anchors are full images; a P-frame sends only the token cells whose
  motion-compensated residual energy is above a threshold (at most ``cap`` of them), merged into
  a few rectangles, plus a small text overhead (timestamp, motion summary, one box per
  rectangle). A static P-frame costs only its text overhead. This is the training-free stand-in
  for the P-tokenizer (PAPER §5, "top merged ViT tokens ranked by residual energy"), with a
  threshold instead of a fixed count so that static footage is nearly free.
- ``paper``: AdaCodec's accounting, N_I per anchor and a fixed N_P = 16 per P-frame, so a GOP
  with K P-frames costs 256 + 16K (PAPER §1.4, Eq. 10).
- ``flat``: every sampled frame a full image (the per-frame RGB baseline).
- ``uniform``: as many full images as a token budget allows, evenly spaced (the baseline's
  uniform sampling); ``UniformSampler`` is its causal form for live streams.

``PTokenizer`` is the seam where a trained AdaCodec P-tokenizer plugs in later; ``p_input``
builds its 5-channel input u_t = [r_t, M_t] (PAPER Eq. 2, §1.2) and ``ResidualCellsTokenizer``
is a training-free reference implementation of the protocol.

Pure compute on numpy and torch: no I/O, and nothing here imports the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from videomemory.codec.config import BLOCK, Grid
from videomemory.errors import InvalidArgument

# The same role strings as ``codec.gop`` (not imported from there: gop pulls in the decoder).
I, P, SKIP = "I", "P", "-"
ROLES = (I, P, SKIP)

#: The plan names, as the CLI and benchmarks spell them.
PLANS = ("adaptive", "paper", "flat", "uniform")


@dataclass(frozen=True)
class TokenModel:
    """What each kind of frame costs in LLM tokens on a grid."""

    grid: Grid = field(default_factory=Grid)
    # Text a P-frame always costs, e.g. "t=12.5s mv=(3,-2)": its timestamp and a motion summary.
    p_overhead: int = 4
    # Text per rectangle of a P-frame to give its box, e.g. "[3,5,2x4]".
    rect_overhead: int = 2
    # AdaCodec's fixed N_P (PAPER §1.5: N_L = 64 latents through the 2x2 merger).
    paper_p_tokens: int = 16
    # Most cells one P-frame may send; None means a quarter of the image (64 at 512x512).
    cap_cells: int | None = None

    def __post_init__(self) -> None:
        for name in ("p_overhead", "rect_overhead", "paper_p_tokens"):
            value = getattr(self, name)
            if value < 0:
                raise InvalidArgument(f"token model {name} {value} must be >= 0")
        if self.cap_cells is not None and self.cap_cells < 0:
            raise InvalidArgument(f"token model cap_cells {self.cap_cells} must be >= 0 (or None for a quarter image)")

    @property
    def cells(self) -> tuple[int, int]:
        """Token cell grid as (rows, cols): one LLM token per cell."""
        return self.grid.height // self.grid.token_px, self.grid.width // self.grid.token_px

    @property
    def anchor_tokens(self) -> int:
        """Tokens of one full image (an I-frame)."""
        return self.grid.tokens_per_image

    @property
    def cap(self) -> int:
        """Most cells one P-frame may send (``cap_cells`` or a quarter of the image)."""
        return self.grid.tokens_per_image // 4 if self.cap_cells is None else self.cap_cells


@dataclass(frozen=True)
class Rect:
    """An axis-aligned block of token cells: top-left (row, col) and size (rows, cols), in cells."""

    row: int
    col: int
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if self.row < 0 or self.col < 0 or self.rows < 1 or self.cols < 1:
            raise InvalidArgument(f"{self} needs row, col >= 0 and rows, cols >= 1")

    @property
    def cells(self) -> int:
        """Number of token cells (= image tokens) the rectangle covers."""
        return self.rows * self.cols

    def to_px(self, grid: Grid) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1) on ``grid``, x1 and y1 exclusive."""
        c = grid.token_px
        box = (self.col * c, self.row * c, (self.col + self.cols) * c, (self.row + self.rows) * c)
        if box[2] > grid.width or box[3] > grid.height:
            raise InvalidArgument(f"{self} lies outside the {grid.width}x{grid.height} grid")
        return box


@dataclass(frozen=True)
class FramePlan:
    """What one sampled frame sends: its role, image tokens, text overhead and rectangles."""

    role: str  # "I" full image, "P" predicted (rectangles of cells), "-" not sent
    image_tokens: int
    overhead_tokens: int
    rects: tuple[Rect, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidArgument(f"frame role {self.role!r} is not one of {ROLES}")
        if self.image_tokens < 0 or self.overhead_tokens < 0:
            raise InvalidArgument(f"token counts must be >= 0, got {self.image_tokens} and {self.overhead_tokens}")

    @property
    def tokens(self) -> int:
        """Total tokens the frame costs."""
        return self.image_tokens + self.overhead_tokens


def _mask(mask: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InvalidArgument(f"cell mask must be 2-D (rows, cols), got shape {m.shape}")
    if shape is not None and m.shape != shape:
        raise InvalidArgument(f"cell mask is {m.shape}, the token grid is {shape}")
    return m.astype(bool, copy=False)


def _energy(energy: np.ndarray) -> np.ndarray:
    e = np.asarray(energy, dtype=np.float64)
    if e.ndim != 2:
        raise InvalidArgument(f"residual energy must be 2-D (rows, cols), got shape {e.shape}")
    if not np.isfinite(e).all():
        raise InvalidArgument("residual energy holds NaN or infinite values")
    return e


def rects_mask(rects: Sequence[Rect], shape: tuple[int, int]) -> np.ndarray:
    """The (rows, cols) cell mask the rectangles cover: the inverse of ``merge_cells``."""
    mask = np.zeros(shape, dtype=bool)
    for r in rects:
        mask[r.row : r.row + r.rows, r.col : r.col + r.cols] = True
    return mask


def merge_cells(mask: np.ndarray) -> list[Rect]:
    """Disjoint rectangles covering exactly the True cells of a (rows, cols) mask, row-major."""
    # Greedy and deterministic: at the first uncovered True cell in row-major order, take the
    # longest run to the right, then grow it down while the whole run stays True and uncovered.
    # Exact by construction (a rectangle only ever takes free cells), and on blobs it gives one
    # rectangle per distinct run width rather than one per row.
    free = _mask(mask).copy()
    rows, cols = free.shape
    rects: list[Rect] = []
    for flat in np.flatnonzero(free):
        r, c = divmod(int(flat), cols)
        if not free[r, c]:
            continue  # taken by an earlier rectangle
        run = free[r, c:]
        w = int(run.argmin()) if not run.all() else cols - c
        h = 1
        while r + h < rows and free[r + h, c : c + w].all():
            h += 1
        free[r : r + h, c : c + w] = False
        rects.append(Rect(r, c, h, w))
    return rects


def select_top(energy: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` highest-energy cells (k clipped to [0, cells]); ties: lower row-major index."""
    e = _energy(energy)
    k = max(0, min(int(k), e.size))
    order = np.argsort(-e.ravel(), kind="stable")  # stable: equal energies keep row-major order
    out = np.zeros(e.size, dtype=bool)
    out[order[:k]] = True
    return out.reshape(e.shape)


def select_cells(energy: np.ndarray, threshold: float, cap: int) -> np.ndarray:
    """Mask of cells with energy > threshold, at most ``cap`` of them (the highest kept)."""
    e = _energy(energy)
    if math.isnan(threshold):
        raise InvalidArgument("energy threshold must be a number, got NaN")
    if cap < 0:
        raise InvalidArgument(f"cell cap {cap} must be >= 0")
    above = e > threshold
    if int(above.sum()) <= cap:
        return above
    # More than cap qualify: the cap highest are all above the threshold.
    return select_top(e, cap)


def _full(model: TokenModel) -> FramePlan:
    return FramePlan(I, model.anchor_tokens, 0)


def _skip() -> FramePlan:
    return FramePlan(SKIP, 0, 0)


def _role(role: str) -> str:
    if role not in ROLES:
        raise InvalidArgument(f"frame role {role!r} is not one of {ROLES}")
    return role


def plan_cells(role: str, mask: np.ndarray | None, model: TokenModel) -> FramePlan:
    """Plan a frame from an explicit cell mask (P); "I" is a full image, "-" costs nothing."""
    # The mask is taken as given (no cap): rate control chooses its own cell count.
    if _role(role) == I:
        return _full(model)
    if role == SKIP:
        return _skip()
    if mask is None:
        raise InvalidArgument("a P-frame needs a cell mask")
    rects = tuple(merge_cells(_mask(mask, model.cells)))
    return FramePlan(
        P,
        image_tokens=sum(r.cells for r in rects),
        overhead_tokens=model.p_overhead + model.rect_overhead * len(rects),
        rects=rects,
    )


def plan_adaptive(role: str, energy: np.ndarray | None, model: TokenModel, threshold: float) -> FramePlan:
    """Adaptive plan: I full image; P the cells with energy > threshold (at most ``model.cap``)."""
    if _role(role) != P:
        return plan_cells(role, None, model)
    if energy is None:
        raise InvalidArgument("a P-frame needs its residual energy per token cell")
    e = _energy(energy)
    if e.shape != model.cells:
        raise InvalidArgument(f"residual energy is {e.shape}, the token grid is {model.cells}")
    return plan_cells(P, select_cells(e, threshold, model.cap), model)


def plan_paper(role: str, model: TokenModel) -> FramePlan:
    """AdaCodec's accounting: I costs N_I, P a fixed N_P (``paper_p_tokens``), no overhead."""
    if _role(role) == I:
        return _full(model)
    if role == SKIP:
        return _skip()
    return FramePlan(P, model.paper_p_tokens, 0)


def plan_flat(model: TokenModel) -> FramePlan:
    """Per-frame RGB baseline: every sampled frame is a full image."""
    return _full(model)


def plan_uniform(n_frames: int, total_tokens: int, model: TokenModel) -> list[FramePlan]:
    """As many full images as fit in ``total_tokens``, evenly spaced over ``n_frames``; frame 0 first."""
    if n_frames < 0 or total_tokens < 0:
        raise InvalidArgument(f"n_frames {n_frames} and total_tokens {total_tokens} must be >= 0")
    n = min(n_frames, total_tokens // model.anchor_tokens)
    plans = [_skip()] * n_frames
    for i in range(n):
        plans[i * n_frames // n] = _full(model)  # floor(i * N / n): distinct since N / n >= 1
    return plans


class UniformSampler:
    """Causal uniform sampling for live streams: ``push`` once per sampled frame, get its plan.

    Frame i (0-based) is kept as a full image when the tokens spent on frames 0..i-1 are less
    than the allowance accrued through frame i, ``(i + 1) * tokens_per_frame``; otherwise it is
    not sent. So frame 0 is kept whenever ``tokens_per_frame > 0``, and after n frames the spend
    S_n satisfies ``n*tpf - anchor <= S_n < n*tpf + anchor`` while ``tokens_per_frame <=
    anchor_tokens`` (above that every frame is kept and S_n = n * anchor_tokens < n*tpf). Given
    ``Fraction(k * anchor_tokens, n_frames)`` it keeps exactly the k frames that ``plan_uniform``
    keeps for a budget of k anchors. The rate is held as an exact ``Fraction`` (of the float or
    Fraction given) and the allowance is computed from the frame count, not accumulated, so a
    long stream does not drift.
    """

    def __init__(self, model: TokenModel, tokens_per_frame: float) -> None:
        if not math.isfinite(tokens_per_frame) or tokens_per_frame < 0:
            raise InvalidArgument(f"tokens_per_frame {tokens_per_frame} must be a finite number >= 0")
        self.model = model
        self.tokens_per_frame = tokens_per_frame
        self._rate = Fraction(tokens_per_frame)
        self.frames = 0
        self.spent = 0

    def push(self) -> FramePlan:
        """Plan the next sampled frame: a full image, or "-" when the allowance is spent."""
        self.frames += 1
        if self.spent < self.frames * self._rate:
            self.spent += self.model.anchor_tokens
            return _full(self.model)
        return _skip()


def summarise(plans: Sequence[FramePlan], fps: float) -> dict[str, float | int]:
    """Totals for a plan sequence: tokens, frames, frames sent, anchors, tokens/minute and /frame."""
    if not fps > 0:
        raise InvalidArgument(f"fps {fps} must be > 0")
    n = len(plans)
    total = sum(p.tokens for p in plans)
    return {
        "tokens": total,
        "frames": n,
        "frames_sent": sum(p.role != SKIP for p in plans),
        "anchors": sum(p.role == I for p in plans),
        "p_frames": sum(p.role == P for p in plans),
        "tokens_per_minute": total / (n / fps / 60) if n else 0.0,
        "tokens_per_frame": total / n if n else 0.0,
    }


@runtime_checkable
class PTokenizer(Protocol):
    """A P-frame tokenizer: the 5-channel input u_t (5, H, W) float32 -> (n_tokens, dim) tokens."""

    n_tokens: int

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Tokens of one P-frame input, shape (n_tokens, dim)."""
        ...


def p_input(residual: torch.Tensor, vectors: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """The P-frame input u_t = [r_t, M_t] (PAPER Eq. 2, §1.2) as a (5, H, W) float32 tensor.

    The paper leaves the normalisation open; this one is fixed and resolution-independent:
    channels 0-2 are the signed RGB residual / 255, so in [-1, 1]; channels 3-4 are each block's
    (dy, dx) in px broadcast to its ``block`` x ``block`` pixels and divided by max(H, W), so a
    displacement is a fraction of the frame's longer side, with one scale for both axes (the
    vector's direction is kept). A +-64 px search on a 512 px grid gives values in [-0.125, 0.125].
    """
    if residual.ndim != 3 or residual.shape[0] != 3:
        raise InvalidArgument(f"residual must be (3, H, W), got {tuple(residual.shape)}")
    if residual.dtype in (torch.uint8, torch.bool):
        raise InvalidArgument(f"residual must be signed (e.g. int16), got {residual.dtype}")
    h, w = int(residual.shape[1]), int(residual.shape[2])
    if vectors.ndim != 3 or vectors.shape[2] != 2:
        raise InvalidArgument(f"motion vectors must be (By, Bx, 2), got {tuple(vectors.shape)}")
    if block < 1 or tuple(vectors.shape[:2]) != (h // block, w // block) or h % block or w % block:
        raise InvalidArgument(
            f"motion field {tuple(vectors.shape[:2])} of {block} px blocks does not tile a {w}x{h} residual"
        )
    r = residual.to(torch.float32) / 255.0
    m = vectors.to(device=residual.device, dtype=torch.float32).permute(2, 0, 1)
    m = m.repeat_interleave(block, dim=1).repeat_interleave(block, dim=2) / float(max(h, w))
    return torch.cat([r, m], dim=0).contiguous()


@dataclass(frozen=True)
class ResidualCellsTokenizer:
    """Training-free stand-in for a P-tokenizer: the ``n_tokens`` highest-energy cells' mean features.

    Not the paper's learned tokenizer (PAPER §1.5 needs training): each token is the mean of the
    five u_t channels (residual RGB, dy, dx) over one ``cell`` x ``cell`` block, for the cells with
    the highest residual energy (mean squared residual; ties to the lower row-major index),
    listed in row-major order. If the frame has fewer cells than ``n_tokens``, the rest are zero.
    It only fixes the interface and shapes, so plans and prompts can be built before a trained
    tokenizer exists.
    """

    n_tokens: int = 16
    cell: int = 32

    def __post_init__(self) -> None:
        if self.n_tokens < 0 or self.cell < 1:
            raise InvalidArgument(f"tokenizer needs n_tokens >= 0 and cell >= 1, got {self.n_tokens}, {self.cell}")

    @property
    def dim(self) -> int:
        """Width of each token: the five u_t channels."""
        return 5

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Tokens of one P-frame input u (5, H, W): shape (n_tokens, 5), float32."""
        if u.ndim != 3 or u.shape[0] != 5:
            raise InvalidArgument(f"P-frame input must be (5, H, W), got {tuple(u.shape)}")
        c = self.cell
        h, w = int(u.shape[1]), int(u.shape[2])
        if h % c or w % c:
            raise InvalidArgument(f"P-frame input {w}x{h} is not a multiple of the {c} px cell")
        x = u.to(torch.float32).reshape(5, h // c, c, w // c, c)
        feats = x.mean(dim=(2, 4)).reshape(5, -1).T  # (cells, 5), row-major
        energy = x[:3].square().mean(dim=(0, 2, 4)).reshape(-1)
        k = min(self.n_tokens, energy.numel())
        top = torch.sort(-energy, stable=True).indices[:k].sort().values
        out = torch.zeros(self.n_tokens, 5, dtype=torch.float32, device=u.device)
        out[:k] = feats[top]
        return out
