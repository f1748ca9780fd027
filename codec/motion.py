"""Block motion search: one integer vector per 16x16 block against the previous sampled frame.

Cost of vector d for block b (PAPER Eq. 1): ``SAD_RGB(cur_b, ref_{b+d}) + lam * |d|_1``, with the
reference extended by edge replication (H.264-style unrestricted vectors) so every candidate in
``[-radius, radius]^2`` is defined. ``d = (dy, dx)`` means the block at (y, x) is predicted from
the reference block at (y + dy, x + dx); content moving right by 5 px gives dx = -5.

Two searches share the cost and the tie-break, so they can be compared block by block:

* ``exhaustive``: every vector in the window (the reference, used by tests and benchmarks).
* ``fast``: coarse-to-fine on an integer luma pyramid (1/8, 1/4, 1/2, full). An exhaustive search
  at 1/8 resolution over +-radius/8 gives three candidates per block; with the zero vector and
  the previous frame's vector (a causal temporal predictor) they are refined by +-1 at 1/4, the
  best two at 1/2, and the best two in exact RGB at full resolution; neighbours' winners, a
  polish, a block-only rescue of poorly matched blocks and an exact downhill walk to a local
  minimum follow; flat blocks (lambda|d| rivals their SAD) walk again from their neighbours'
  vectors. Blocks whose zero-vector SAD is 0 (static content) skip the search.

All arithmetic is integer (or float32 on integers small enough to be exact), and every selection
uses a unique integer key ``(cost, |d|_1, dy, dx)``, so CPU and CUDA give identical vectors.

Both searches exist twice: batched torch ops over all blocks here (``*_torch``, what CUDA runs),
and block-by-block kernels compiled with numba in ``codec.motion_cpu`` (what the CPU runs,
2.5-7x faster there). The kernels reproduce the torch versions bit for bit, which tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videomemory.codec.config import BLOCK, MotionConfig

# Key packing: cost in the high bits, then |d|_1, dy, dx (each < 2**10 for radius <= 255).
_KEY_BITS = 10
_MAX_RADIUS = (1 << (_KEY_BITS - 2)) - 1
_COARSE_TOP = 3  # candidates per block from the 1/8 level
_KEEP = 2  # candidates kept per block after each refinement level
_PROPAGATION_ROUNDS = 2  # rounds of adopting a neighbour's winner
# Blocks whose chosen cost stays above 2 per RGB value (H.264 noise on a real match is about 1)
# and above twice the frame's median block cost get a second, block-only search over the whole
# window: see ``_rescue``.
_RESCUE_COST = 2 * 3 * BLOCK * BLOCK
_RESCUE_MEDIAN = 2
_RESCUE_TOP = 32  # candidates per block from the rescue's 1/4-resolution exhaustive search
_RESCUE_KEEP = (8, 4)  # kept per block after its 1/2 and its full-resolution refinement
# A frame where more than this share of blocks has no match is not predictable (a cut, motion
# beyond the window): it becomes an anchor, and a rescue there would search every block.
_RESCUE_SHARE = 0.25
# Blocks costing under 2/3 per RGB value are flat: lambda|d| rivals the SAD, and the optimum is
# wherever the noise is least in a wide basin. They walk downhill from their neighbours' vectors too.
_FLAT_COST = 2 * BLOCK * BLOCK
_RING8 = torch.tensor([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b])  # the 8 neighbouring vectors


@dataclass(frozen=True)
class MotionField:
    """Per-block motion of one frame against its reference."""

    vectors: torch.Tensor  # (By, Bx, 2) int32, (dy, dx) in px
    cost: torch.Tensor  # (By, Bx) int64: SAD + lam * |d|_1 of the chosen vector
    sad: torch.Tensor  # (By, Bx) int64: SAD of the chosen vector over the block's RGB values

    @property
    def pcost(self) -> int:
        """Predictive cost of the frame: the sum of the chosen block costs (PAPER Eq. 3)."""
        return int(self.cost.sum().item())

    @property
    def n_blocks(self) -> int:
        """Number of blocks in the field."""
        return int(self.cost.numel())

    def to(self, device: torch.device | str) -> "MotionField":
        """The same field on another device."""
        return MotionField(self.vectors.to(device), self.cost.to(device), self.sad.to(device))


def as_tensor(image: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """An RGB frame as a (3, H, W) uint8 tensor on ``device`` (accepts (H, W, 3) numpy or tensor)."""
    t = torch.as_tensor(image)
    if t.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8 RGB, got {t.dtype}")
    if t.ndim == 3 and t.shape[-1] == 3 and t.shape[0] != 3:
        t = t.permute(2, 0, 1)
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"frames must be (H, W, 3) or (3, H, W), got {tuple(t.shape)}")
    return t.to(device).contiguous()


def estimate_motion(
    cur: torch.Tensor,
    ref: torch.Tensor,
    config: MotionConfig = MotionConfig(),
    prior: MotionField | None = None,
) -> MotionField:
    """Motion of ``cur`` against ``ref`` (both (3, H, W) uint8, H and W multiples of 32)."""
    if cur.shape != ref.shape:
        raise ValueError(f"frame shapes differ: {tuple(cur.shape)} vs {tuple(ref.shape)}")
    _, h, w = cur.shape
    if h % (2 * BLOCK) or w % (2 * BLOCK):
        raise ValueError(f"frame size {w}x{h} must be a multiple of {2 * BLOCK} px")
    if config.radius > _MAX_RADIUS:
        raise ValueError(f"radius {config.radius} exceeds the supported {_MAX_RADIUS} px")
    if config.method == "exhaustive":
        return exhaustive_search(cur, ref, config.radius, config.lam)
    return fast_search(cur, ref, config.radius, config.lam, prior)


# --------------------------------------------------------------------------- shared helpers


def _key(cost: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Unique int64 ordering key: cost, then |d|_1, then dy, then dx (d: (..., 2) in px).

    ``d`` may have fewer leading dims than ``cost`` (it broadcasts), which keeps the tie-break
    part cheap when one candidate list serves every block.
    """
    off = _MAX_RADIUS + 1
    d = d.to(torch.int64)
    tie = ((d.abs().sum(-1) << _KEY_BITS | (d[..., 0] + off)) << _KEY_BITS) | (d[..., 1] + off)
    return (cost.to(torch.int64) << (3 * _KEY_BITS)) | tie


def pad_edges(x: torch.Tensor, p: int) -> torch.Tensor:
    """Edge-replicate the last two dims of ``x`` by ``p`` px (any dtype, exact; two copies)."""
    *lead, h, w = x.shape
    x = torch.cat([x[..., :1].expand(*lead, h, p), x, x[..., -1:].expand(*lead, h, p)], -1)
    w += 2 * p
    return torch.cat([x[..., :1, :].expand(*lead, p, w), x, x[..., -1:, :].expand(*lead, p, w)], -2)


def _absdiff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| without overflow for unsigned and signed integer tensors."""
    return torch.maximum(a, b) - torch.minimum(a, b)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """Integer luma proxy R + 2G + B, (3, H, W) uint8 -> (H, W) int16 (exact, at most 1020)."""
    x = x.to(torch.int16)
    return x[0] + 2 * x[1] + x[2]


# --------------------------------------------------------------------------- exhaustive


def exhaustive_search(cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int) -> MotionField:
    """Reference search: every integer vector in [-radius, radius]^2 for every block.

    On the CPU it runs compiled, block by block with early-terminated SADs (``codec.motion_cpu``),
    elsewhere as whole-frame shifts in torch (``exhaustive_search_torch``); both give the same field.
    """
    if cur.device.type != "cpu":
        return exhaustive_search_torch(cur, ref, radius, lam)
    from videomemory.codec import motion_cpu  # imports this module's constants

    return motion_cpu.exhaustive_search(cur, ref, radius, lam)


def exhaustive_search_torch(cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int) -> MotionField:
    """The exhaustive search as one whole-frame shift per vector in torch (CUDA; the CPU kernel's reference)."""
    _, h, w = cur.shape
    by, bx, r = h // BLOCK, w // BLOCK, radius
    dev = cur.device
    refp = pad_edges(ref, r)  # (C, H+2R, W+2R)
    best_key = torch.full((by, bx), torch.iinfo(torch.int64).max, dtype=torch.int64, device=dev)
    best_d = torch.zeros((by, bx, 2), dtype=torch.int64, device=dev)
    dxs = torch.arange(-r, r + 1, device=dev)
    for dy in range(-r, r + 1):
        # One whole-frame shift per vector: contiguous, and cheaper than a strided cost volume.
        sad = torch.stack([_shift_sad(cur, refp, r, (dy, dx)) for dx in range(-r, r + 1)])  # (2R+1, By, Bx)
        d = torch.stack((torch.full_like(dxs, dy), dxs), -1)  # (2R+1, 2)
        key = _key(sad + lam * d.abs().sum(-1)[:, None, None], d[:, None, None, :])
        k_min, j_min = key.min(0)
        better = k_min < best_key
        best_key = torch.where(better, k_min, best_key)
        best_d = torch.where(better[..., None], d[j_min], best_d)
    return _field(best_d.reshape(-1, 2), best_key.reshape(-1), torch.ones(by * bx, dtype=torch.bool, device=dev),
                  by, bx, lam)


# --------------------------------------------------------------------------- fast


def _shift_sad(cur: torch.Tensor, refp: torch.Tensor, pad: int, d: tuple[int, int]) -> torch.Tensor:
    """SAD per 16x16 block of ``cur`` against the padded reference shifted by one vector -> (By, Bx) int64."""
    c, h, w = cur.shape
    crop = refp[:, pad + d[0] : pad + d[0] + h, pad + d[1] : pad + d[1] + w]
    diff = _absdiff(cur, crop)  # (C, H, W) uint8
    plane = diff[0].to(torch.int16)
    for ch in range(1, c):
        plane = plane + diff[ch]  # channel sum first: contiguous adds, at most 765
    return plane.view(h // BLOCK, BLOCK, w // BLOCK, BLOCK).sum((1, 3), dtype=torch.int32).to(torch.int64)


def _down2(x: torch.Tensor) -> torch.Tensor:
    """Sum of 2x2 pixels (exact integer pyramid step), (..., H, W) -> (..., H/2, W/2)."""
    x = x[..., 0::2, :] + x[..., 1::2, :]  # strided adds beat a reduction over tiny dims on CPU
    return x[..., 0::2] + x[..., 1::2]


def _lambda(lam: int, scale: int, support: int, value_px: int) -> int:
    """Lambda in a level's cost units per level px of |d|_1.

    A uniform error e per full-res px and channel costs 768*e on a 16x16 RGB block and about
    support^2 * value_px * e on a luma level whose values sum ``value_px`` full-res values
    (luma weights R + 2G + B sum to 4); lambda scales the same way, per full-res px of motion.
    """
    return max(1, round(lam * scale * support * support * value_px / (3 * BLOCK * BLOCK)))


def _origins(by: int, bx: int, size: int, dev: torch.device) -> torch.Tensor:
    """Top-left pixel (y, x) of every block of side ``size``, (By*Bx, 2) int64."""
    oy, ox = torch.meshgrid(torch.arange(by, device=dev) * size, torch.arange(bx, device=dev) * size, indexing="ij")
    return torch.stack((oy.reshape(-1), ox.reshape(-1)), -1)


def _refine(
    cur: torch.Tensor, ref: torch.Tensor, scale: int, ring: int, value_px: int, lam: int, radius: int,
    active: torch.Tensor, centers: torch.Tensor, keep: int,
) -> torch.Tensor:
    """Try +-1 around each of K centers per active block on one luma level; keep the best.

    cur, ref: (H, W) integer luma at 1/scale. centers: (N, K, 2) level px. Returns (N, keep, 2).
    """
    size = BLOCK // scale
    s = size + 2 * ring
    win = s + 2
    limit = radius // scale
    pad = limit + ring + 2
    h, w = cur.shape
    dev = cur.device
    curb = pad_edges(cur, ring).unfold(0, s, size).unfold(1, s, size).reshape(-1, s, s)[active]  # (N, S, S)
    views = pad_edges(ref, pad).unfold(0, win, 1).unfold(1, win, 1)  # (Hv, Wv, win, win) view
    org = _origins(h // size, w // size, size, dev)[active]  # (N, 2)
    top = org[:, None, :] - ring - 1 + pad + centers  # (N, K, 2)
    wins = views[top[..., 0], top[..., 1]]  # (N, K, win, win)
    curb = curb[:, None]
    n, k = wins.shape[:2]
    # Signed int16 differences are exact here (levels 0-2 hold at most 16,320): sub + abs beats
    # max - min, and a flat last dim sums faster than two small ones.
    sad = torch.stack(
        [(wins[..., a : a + s, b : b + s] - curb).abs_().view(n, k, s * s).sum(-1, dtype=torch.int32)
         for a in range(3) for b in range(3)],
        -1,
    ).to(torch.int64)  # (N, K, 9)
    offs = torch.tensor([(a - 1, b - 1) for a in range(3) for b in range(3)], device=dev)
    d = centers[:, :, None, :] + offs  # (N, K, 9, 2)
    key = _key(sad + _lambda(lam, scale, s, value_px) * d.abs().sum(-1), d)
    key = key.masked_fill((d.abs() > limit).any(-1), torch.iinfo(torch.int64).max)
    _, idx = torch.topk(key.reshape(n, -1), keep, dim=1, largest=False, sorted=True)
    return torch.gather(d.reshape(n, -1, 2), 1, idx[..., None].expand(n, keep, 2))


def _coarse(cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int, active: torch.Tensor, top: int) -> torch.Tensor:
    """Exhaustive search on the 1/8 luma level over +-radius/8 -> (N, top, 2) candidates (level px).

    A block's coarse cost sums its 3x3 neighbourhood of blocks (48x48 full-res px), which makes
    the match robust at this resolution; these are proposals, refined exactly later.
    """
    scale = 8
    r = radius // scale
    h, w = cur.shape
    curf = cur.to(torch.float32)  # integers below 2**24 stay exact in float32
    refp = pad_edges(ref, r).to(torch.float32)
    shifted = refp.unfold(0, h, 1).unfold(1, w, 1)  # (2r+1, 2r+1, H, W) view
    diff = (shifted - curf).abs_().reshape(-1, h, w)  # (D, H, W)
    blocks = _down2(diff)  # (D, By, Bx): 2x2 level px = one 16x16 block
    p = F.pad(blocks, (1, 1, 1, 1))
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    sad = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]  # (D, By, Bx)
    sad = sad.reshape(sad.shape[0], -1)[:, active].T.to(torch.int64)  # (N, D)
    ar = torch.arange(-r, r + 1, device=cur.device)
    d = torch.stack(torch.meshgrid(ar, ar, indexing="ij"), -1).reshape(-1, 2)  # (D, 2)
    key = _key(sad + _lambda(lam, scale, 6, 4 * scale * scale) * d.abs().sum(-1), d)
    _, idx = torch.topk(key, min(top, key.shape[1]), dim=1, largest=False, sorted=True)
    return d[idx]  # (N, top, 2)


class _Scorer:
    """Exact RGB cost keys of candidate vectors for the active blocks of one frame pair.

    Footage usually moves in few distinct vectors (a pan, a few objects), so a vector shared by
    many blocks is scored once over the whole frame by contiguous slicing and cached; when the
    candidates hold many distinct vectors, blocks are gathered per candidate instead.
    """

    _TABLE_MAX = 24  # most shared vectors scored whole-frame per call
    _SHARED_MIN = 16  # blocks that must share a vector before a whole-frame pass pays off

    def __init__(self, cur: torch.Tensor, refp: torch.Tensor, pad: int, lam: int, active: torch.Tensor) -> None:
        c, h, w = cur.shape
        self.cur, self.refp, self.pad, self.lam, self.active = cur, refp, pad, lam, active
        self.by, self.bx = h // BLOCK, w // BLOCK
        self.cache: dict[int, torch.Tensor] = {}
        self._curb: torch.Tensor | None = None

    def keys(self, cands: torch.Tensor) -> torch.Tensor:
        """(N, K, 2) candidate vectors in px -> (N, K) int64 keys (cost, |d|, dy, dx)."""
        n, k, _ = cands.shape
        span = 2 * _MAX_RADIUS + 1
        code = (cands[..., 0] + _MAX_RADIUS) * span + (cands[..., 1] + _MAX_RADIUS)
        uniq, inv, counts = torch.unique(code.reshape(-1), return_inverse=True, return_counts=True)
        inv = inv.view(n, k)
        # Vectors shared by many blocks are scored whole-frame (and cached); the rest by gather.
        shared = counts >= max(self._SHARED_MIN, n // 4)
        order = torch.argsort(counts, descending=True, stable=True)
        order = order[shared[order]][: self._TABLE_MAX]
        codes = uniq[order].tolist()
        for u in codes:
            if u not in self.cache:
                v = (u // span - _MAX_RADIUS, u % span - _MAX_RADIUS)
                self.cache[u] = _shift_sad(self.cur, self.refp, self.pad, v).reshape(-1)[self.active]
        slot = torch.full((uniq.shape[0],), -1, dtype=torch.int64, device=cands.device)
        slot[order] = torch.arange(len(codes), device=cands.device)
        entry = slot[inv]  # (N, K): row of the table, or -1 when gathered
        sad = torch.empty((n, k), dtype=torch.int64, device=cands.device)
        if codes:
            table = torch.stack([self.cache[u] for u in codes])  # (U, N)
            sad = table.gather(0, entry.clamp(min=0).T).T
        rest = entry < 0
        if bool(rest.any()):
            bi, ki = rest.nonzero(as_tuple=True)
            sad[bi, ki] = self._gather_sad(bi, cands[bi, ki])
        return _key(sad + self.lam * cands.abs().sum(-1), cands)

    def _gather_sad(self, rows: torch.Tensor, vecs: torch.Tensor) -> torch.Tensor:
        """SAD of active block ``rows`` (M,) at vectors (M, 2) by gathering the reference blocks."""
        c = self.cur.shape[0]
        if self._curb is None:
            blocks = self.cur.view(c, self.by, BLOCK, self.bx, BLOCK).permute(1, 3, 0, 2, 4)
            self._curb = blocks.reshape(-1, c, BLOCK, BLOCK)[self.active]  # (N, C, 16, 16)
            self._org = _origins(self.by, self.bx, BLOCK, self.cur.device)[self.active]
            self._views = self.refp.unfold(1, BLOCK, 1).unfold(2, BLOCK, 1)  # (C, Hv, Wv, 16, 16) view
        top = self._org[rows] + self.pad + vecs  # (M, 2)
        blocks = self._views[:, top[:, 0], top[:, 1]].transpose(0, 1)  # (M, C, 16, 16)
        return _absdiff(blocks, self._curb[rows]).sum((1, 2, 3), dtype=torch.int32).to(torch.int64)


def _window_search(
    cur: torch.Tensor, ref: torch.Tensor, scale: int, radius: int, lam: int, blocks: torch.Tensor, top: int
) -> torch.Tensor:
    """Exhaustive search of ``blocks`` (M,) on one luma level over +-radius/scale -> (M, top, 2) level px.

    Each block is matched on its own pixels only (no neighbourhood), one level pixel offset of the
    block at a time over the (M, 2r+1, 2r+1) cost volume, in exact int32.
    """
    size = BLOCK // scale
    r = radius // scale
    h, w = cur.shape
    dev = cur.device
    n, win = 2 * r + 1, size + 2 * r
    org = _origins(h // size, w // size, size, dev)[blocks]  # (M, 2)
    views = pad_edges(ref, r).unfold(0, win, 1).unfold(1, win, 1)  # (Hv, Wv, win, win) view
    wins = views[org[:, 0], org[:, 1]].to(torch.int32)  # (M, win, win)
    curb = cur.unfold(0, size, size).unfold(1, size, size).reshape(-1, size, size)[blocks].to(torch.int32)
    sad = torch.zeros((blocks.shape[0], n, n), dtype=torch.int32, device=dev)
    for a in range(size):
        for b in range(size):
            sad += (wins[:, a : a + n, b : b + n] - curb[:, a, b, None, None]).abs_()
    ar = torch.arange(-r, r + 1, device=dev)
    d = torch.stack(torch.meshgrid(ar, ar, indexing="ij"), -1).reshape(-1, 2)  # (D, 2)
    key = _key(sad.reshape(sad.shape[0], -1) + _lambda(lam, scale, size, 4 * scale * scale) * d.abs().sum(-1), d)
    _, idx = torch.topk(key, min(top, key.shape[1]), dim=1, largest=False, sorted=True)
    return d[idx]


def _rescue(
    y_cur: list[torch.Tensor], y_ref: list[torch.Tensor], scorer: "_Scorer", radius: int, lam: int,
    active: torch.Tensor, best: torch.Tensor, best_key: torch.Tensor,
) -> None:
    """Search again, in place, the active blocks whose chosen cost is above ``_RESCUE_COST``.

    They are mostly blocks with no true match (content entering the frame, uncovered
    background): the optimum there is a partial match anywhere in the window, which the
    neighbourhood-smoothed coarse level and the predictors do not propose. An exhaustive
    block-only search at 1/4 resolution proposes ``_RESCUE_TOP`` vectors, refined by +-1 on the
    block's own pixels at 1/2 and full resolution, then decided in exact RGB with the current
    winner, so a rescued block never gets worse. Frames where more than ``_RESCUE_SHARE`` of
    the blocks are hard are left as they are.
    """
    cost = best_key >> (3 * _KEY_BITS)
    floor = max(_RESCUE_COST, _RESCUE_MEDIAN * int(cost.median()))  # median: an exact order statistic
    hard = (cost > floor).nonzero().squeeze(1)  # rows into active
    m = hard.shape[0]
    if m == 0 or m > _RESCUE_SHARE * active.numel():
        return
    dev = best.device
    blocks = active.nonzero().squeeze(1)[hard]  # ascending, like the rows of a mask
    mask = torch.zeros_like(active)
    mask[blocks] = True
    cand = _window_search(y_cur[2], y_ref[2], 4, radius, lam, blocks, _RESCUE_TOP)  # (M, top, 2) at 1/4
    for scale, level, keep in ((2, 1, _RESCUE_KEEP[0]), (1, 0, _RESCUE_KEEP[1])):
        cand = _refine(y_cur[level], y_ref[level], scale, 0, 4 * scale * scale, lam, radius, mask, cand * 2,
                       keep=keep)
    cand = torch.cat([cand, best[hard][:, None, :]], 1)  # (M, K, 2) px
    k = cand.shape[1]  # the exact decision (the downhill walk that follows refines it by +-1)
    sad = scorer._gather_sad(hard[:, None].expand(m, k).reshape(-1), cand.reshape(-1, 2)).view(m, k)
    key, idx = _key(sad + lam * cand.abs().sum(-1), cand).min(1)
    best[hard] = cand[torch.arange(m, device=dev), idx]
    best_key[hard] = key


def _polish(scorer: "_Scorer", best: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact RGB decision between each winner (N, 2), its 8 neighbouring vectors and 5 shorter ones.

    The pyramid refines in luma, so the exact +-1 catches winners one px off. The shorter
    vectors (each component alone, halves) are for flat areas, where the optimum is the
    shortest vector whose reference block still lies in the flat region and lambda|d| decides.
    """
    b = best[:, None, :]
    zero = torch.zeros_like(b[..., :1])
    half = torch.div(b, 2, rounding_mode="trunc")
    shorter = [torch.cat([b[..., :1], zero], -1), torch.cat([zero, b[..., 1:]], -1), half,
               torch.cat([b[..., :1], half[..., 1:]], -1), torch.cat([half[..., :1], b[..., 1:]], -1)]
    cand = torch.cat([b, (b + _RING8.to(b.device)).clamp(-radius, radius)] + shorter, 1)
    key, idx = scorer.keys(cand).min(1)
    return cand[torch.arange(cand.shape[0], device=cand.device), idx], key


def _walk_downhill(
    scorer: "_Scorer", rows: torch.Tensor, at: torch.Tensor, radius: int, lam: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """From vectors ``at`` (M, 2) of active-block rows ``rows`` (M,), step to the best +-1 neighbour
    in exact RGB while that is better -> (vectors, keys) of the local minima reached.

    Flat areas and partial matches have wide, uneven basins that the levels land anywhere in.
    Each step lowers a walk's key, so every walk ends, never worse than where it started.
    """
    dev = at.device
    at, key = at.clone(), torch.empty(at.shape[0], dtype=torch.int64, device=dev)
    live = torch.arange(at.shape[0], device=dev)
    ring = _RING8.to(dev)
    while live.shape[0]:
        m = live.shape[0]
        a = at[live]
        cand = torch.cat([a[:, None, :], (a[:, None, :] + ring).clamp(-radius, radius)], 1)  # (M, 9, 2)
        sad = scorer._gather_sad(rows[live][:, None].expand(m, 9).reshape(-1), cand.reshape(-1, 2)).view(m, 9)
        k, idx = _key(sad + lam * cand.abs().sum(-1), cand).min(1)
        win = cand[torch.arange(m, device=dev), idx]
        at[live], key[live] = win, k
        live = live[(win != a).any(1)]
    return at, key


def _walk_flat(
    scorer: "_Scorer", best: torch.Tensor, best_key: torch.Tensor, active: torch.Tensor, radius: int, lam: int
) -> None:
    """Walk again, in place, from the 4 neighbours' vectors, each block costing under
    ``_FLAT_COST``: there lambda|d| rivals the SAD and the optimum lies in any of a wide basin's
    dips, often the one a neighbour reached. (A walk from zero as well gained 0.17 points on
    ``mixed`` for 65% more search time on ``pan``: not taken.)"""
    flat = ((best_key >> (3 * _KEY_BITS)) < _FLAT_COST).nonzero().squeeze(1)  # rows into active
    f = flat.shape[0]
    if f == 0:
        return
    dev = best.device
    full = torch.zeros((scorer.by * scorer.bx, 2), dtype=torch.int64, device=dev)
    full[active] = best
    starts = _neighbours(full, scorer.by, scorer.bx)[active][flat]  # (F, 4, 2)
    k = starts.shape[1]
    vec, key = _walk_downhill(scorer, flat.repeat_interleave(k), starts.reshape(-1, 2), radius, lam)
    keys = torch.cat([best_key[flat][:, None], key.view(f, k)], 1)
    vecs = torch.cat([best[flat][:, None, :], vec.view(f, k, 2)], 1)
    key, idx = keys.min(1)
    best[flat], best_key[flat] = vecs[torch.arange(f, device=dev), idx], key


def _field(d: torch.Tensor, key: torch.Tensor, active: torch.Tensor, by: int, bx: int, lam: int) -> MotionField:
    """Build the field from the winners' vectors (N, 2) and keys (N,); inactive blocks are still."""
    dev = d.device
    vec = torch.zeros((by * bx, 2), dtype=torch.int32, device=dev)
    cost = torch.zeros(by * bx, dtype=torch.int64, device=dev)
    vec[active] = d.to(torch.int32)
    cost[active] = key >> (3 * _KEY_BITS)
    sad = cost - lam * vec.abs().sum(-1).to(torch.int64)
    return MotionField(vec.view(by, bx, 2), cost.view(by, bx), sad.view(by, bx))


def _neighbours(d: torch.Tensor, by: int, bx: int) -> torch.Tensor:
    """The vectors of each block's 4 neighbours (edge blocks repeat their own), (By*Bx, 4, 2)."""
    f = d.view(by, bx, 2)
    up = torch.cat([f[:1], f[:-1]], 0)
    down = torch.cat([f[1:], f[-1:]], 0)
    left = torch.cat([f[:, :1], f[:, :-1]], 1)
    right = torch.cat([f[:, 1:], f[:, -1:]], 1)
    return torch.stack([up, down, left, right], 2).reshape(-1, 4, 2)


def fast_search(
    cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int, prior: MotionField | None = None
) -> MotionField:
    """Coarse-to-fine search with predictors; matches the exhaustive cost on almost every block.

    On the CPU it runs compiled (``codec.motion_cpu``), elsewhere as batched torch ops
    (``fast_search_torch``); both give the same field.
    """
    if cur.device.type != "cpu":
        return fast_search_torch(cur, ref, radius, lam, prior)
    from videomemory.codec import motion_cpu  # imports this module's constants

    return motion_cpu.fast_search(cur, ref, radius, lam, prior)


def stage_lambdas(lam: int) -> tuple[int, ...]:
    """Lambda of each fast-search stage in its level's units (see ``codec.motion_cpu.search``)."""
    return (
        _lambda(lam, 8, 6, 4 * 64),  # the 1/8 neighbourhood search
        _lambda(lam, 4, 6, 4 * 16), _lambda(lam, 2, 10, 4 * 4), _lambda(lam, 1, 16, 4),  # refine, ring 1/1/0
        _lambda(lam, 4, 4, 4 * 16),  # the rescue's window search at 1/4
        _lambda(lam, 2, 8, 4 * 4), _lambda(lam, 1, 16, 4),  # its refinements, ring 0
    )


def fast_search_torch(
    cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int, prior: MotionField | None = None
) -> MotionField:
    """The fast search as batched torch ops over all blocks (CUDA; the reference of the CPU kernel)."""
    _, h, w = cur.shape
    by, bx = h // BLOCK, w // BLOCK
    dev = cur.device
    pad = radius + 2
    refp = pad_edges(ref, pad)
    active = _shift_sad(cur, refp, pad, (0, 0)).reshape(-1) > 0  # blocks that changed at all
    n = int(active.sum())
    if n == 0:
        return _field(torch.zeros((0, 2), dtype=torch.int64, device=dev), torch.zeros(0, dtype=torch.int64, device=dev),
                      active, by, bx, lam)
    scorer = _Scorer(cur, refp, pad, lam, active)

    # Integer luma pyramid: a level-l pixel sums 4**l full-res luma values (exact).
    y_cur, y_ref = [_luma(cur)], [_luma(ref)]
    for level in range(1, 4):
        # Level 3 sums 64 luma values (up to 65,280): int32, or int16 would wrap on bright content.
        dt = torch.int32 if level == 3 else torch.int16
        y_cur.append(_down2(y_cur[-1].to(dt)))
        y_ref.append(_down2(y_ref[-1].to(dt)))

    zero = torch.zeros((n, 1, 2), dtype=torch.int64, device=dev)
    prior_v = None
    if prior is not None:
        prior_v = prior.vectors.to(dev).reshape(-1, 2)[active].to(torch.int64)[:, None, :]
    cand = _coarse(y_cur[3], y_ref[3], radius, lam, active, top=_COARSE_TOP) * 2  # (N, top, 2) at 1/4
    cand = torch.cat([cand, zero] + ([torch.div(prior_v, 4, rounding_mode="floor")] if prior_v is not None else []), 1)
    for scale, level in ((4, 2), (2, 1), (1, 0)):
        ring = 1 if scale > 1 else 0
        cand = _refine(y_cur[level], y_ref[level], scale, ring, 4 * scale * scale, lam, radius, active, cand,
                       keep=_KEEP)
        if scale > 1:
            cand = cand * 2

    # Exact RGB decision among the survivors, zero and the prior, then the neighbours' winners.
    rows = torch.arange(n, device=dev)
    cand = torch.cat([cand, zero] + ([prior_v] if prior_v is not None else []), 1)
    key = scorer.keys(cand)
    best_key, idx = key.min(1)
    best = cand[rows, idx]
    for _ in range(_PROPAGATION_ROUNDS):
        full = torch.zeros((by * bx, 2), dtype=torch.int64, device=dev)
        full[active] = best
        cand = torch.cat([best[:, None, :], _neighbours(full, by, bx)[active]], 1)
        best_key, idx = scorer.keys(cand).min(1)
        best = cand[rows, idx]
    best, best_key = _polish(scorer, best, radius)
    _rescue(y_cur, y_ref, scorer, radius, lam, active, best, best_key)
    best, best_key = _walk_downhill(scorer, rows, best, radius, lam)
    _walk_flat(scorer, best, best_key, active, radius, lam)
    return _field(best, best_key, active, by, bx, lam)
