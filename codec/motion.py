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
  polish and an exact downhill walk to a local minimum follow. A block that the previous frame's
  vector already predicts well (cost at most 1/``_TRUST_PRIOR`` of its texture) keeps it without
  the pyramid, and goes on to the neighbours, polish and walk. A block whose vector still predicts
  poorly tries its neighbours' final vectors (``_RELOOK``). Then every *ambiguous* block gets
  the exhaustive optimum by successive elimination (``_exact_search``): a block whose own
  texture is at most ``_AMBIGUOUS`` times its cost is flat (noise decides among a wide basin of
  near-equal vectors) or has no true match (content entering the frame, uncovered background:
  the optimum is a partial match anywhere in the window), which is where the pyramid's
  proposals fail. A frame the caller will make an anchor (``anchor_above``) skips that stage.
  Blocks whose zero-vector SAD is 0 (static content) skip the search.

After either search, ``estimate_motion`` offers every block the frame's global motion with the
rate counted from it (``merge_global``, not in PAPER; ``MotionConfig.merge_lam``): on a pan, the
flat blocks, where Eq. 1's lam * |d|_1 picks (0, 0) among near-equal matches, take the pan.

All arithmetic is integer (or float32 on integers small enough to be exact), and every selection
uses a unique integer key ``(cost, |d|_1, dy, dx)``, so CPU and CUDA give identical vectors.

Both searches exist twice: batched torch ops over all blocks here (``*_torch``, what CUDA runs),
and block-by-block kernels compiled with numba in ``codec.motion_cpu`` (what the CPU runs,
2.5-7x faster there). The kernels reproduce the torch versions bit for bit, which tests check.
"""

from __future__ import annotations

import math
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
# A block whose texture (the sum of |differences| between neighbouring pixels inside it, over
# RGB) is at most this many times its cost is ambiguous, and gets an exact search. At 3 a zoom
# kept as few as 98.62% of its blocks within 1% of the optimum, under the 99% it must; at 4,
# 99.81% (README, "Motion search"), for 3-6% more time on the presets with motion.
_AMBIGUOUS = 4
# A block whose prior (the previous frame's vector) costs at most 1/_TRUST_PRIOR of its texture
# keeps it without the pyramid search; the neighbours' winners, the polish and the walk still
# run. On the benchmark presets' 297k blocks (seed 1) the full search ended at the prior in
# every such block (77% of `pan`'s blocks, 64% of `mixed`'s). Such a block is never ambiguous.
_TRUST_PRIOR = 8
# After the walk, a block whose vector costs more than 1/_RELOOK of its texture tries its
# neighbours' final vectors and walks from a better one (``_relook``). The neighbour rounds pass
# on the pyramid's winners; a neighbour that reached the common vector only in the polish or the
# walk was never offered. Measured on the `cuts` preset: a block beside the pan kept a vector
# costing 3,874 where the pan's cost 48 (the exhaustive optimum), 4.6% over the pair's pcost.
_RELOOK = 8
_SEA_BLOCKS, _SEA_CHUNK = 32, 1 << 16  # blocks, then candidates, per step of the torch exact search (its memory)
# The global-motion merge (``merge_global``) needs the search itself to have given g to at least
# 1/_MERGE_SUPPORT of the blocks: global motion is the motion of a good part of the picture. On a
# still flat background (a slide, a screen, a plain wall) a moving object would otherwise pass its
# vector to every flat block, which fits it as well (a 96 px sprite on flat grey: the whole frame
# "moved" 20 px). Measured shares of g: pans 0.23-0.94 a frame (a 1280x720 `mixed`'s sub-pixel pan
# at least), objects on still backgrounds 0.01-0.06.
_MERGE_SUPPORT = 6
_RING8 = torch.tensor([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b])  # the 8 neighbouring vectors


@dataclass(frozen=True)
class MotionField:
    """Per-block motion of one frame against its reference."""

    vectors: torch.Tensor  # (By, Bx, 2) int32, (dy, dx) in px
    # (By, Bx) int64: SAD + the chosen vector's rate, lam * |d|_1 (merged: merge_lam * |d - g|_1)
    cost: torch.Tensor
    sad: torch.Tensor  # (By, Bx) int64: SAD of the chosen vector over the block's RGB values
    # the vector that rates are counted from (``merge_global``); (0, 0), PAPER's Eq. 1, unless merged
    global_motion: tuple[int, int] = (0, 0)

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
        return MotionField(self.vectors.to(device), self.cost.to(device), self.sad.to(device), self.global_motion)


def as_tensor(image: np.ndarray | torch.Tensor, device: torch.device | str = "cpu", contiguous: bool = True) -> torch.Tensor:
    """An RGB frame as a (3, H, W) uint8 tensor on ``device`` (accepts (H, W, 3) numpy or tensor).

    ``contiguous=False`` lets a CPU frame stay a (3, H, W) view of the (H, W, 3) image, which
    shares its memory: no copy, and the CPU search reads that interleaved layout as it is.
    """
    t = torch.as_tensor(image)
    if t.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8 RGB, got {t.dtype}")
    if t.ndim == 3 and t.shape[-1] == 3 and t.shape[0] != 3:
        t = t.permute(2, 0, 1)
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"frames must be (H, W, 3) or (3, H, W), got {tuple(t.shape)}")
    t = t.to(device)
    return t if not contiguous and t.device.type == "cpu" else t.contiguous()


def estimate_motion(
    cur: torch.Tensor,
    ref: torch.Tensor,
    config: MotionConfig = MotionConfig(),
    prior: MotionField | None = None,
    anchor_above: float | None = None,
) -> MotionField:
    """Motion of ``cur`` against ``ref`` (both (3, H, W) uint8, H and W multiples of 32).

    ``anchor_above``: the pcost per block over which the caller makes the frame an anchor (the
    GOP rule's gamma). The fast search then skips its exact stage when the cost before it is
    already over: no vector predicts such a frame (a cut, motion beyond the window), its field
    only gives its pcost, and the exact stage would try most of the window for most blocks.
    """
    if cur.shape != ref.shape:
        raise ValueError(f"frame shapes differ: {tuple(cur.shape)} vs {tuple(ref.shape)}")
    _, h, w = cur.shape
    if h % (2 * BLOCK) or w % (2 * BLOCK):
        raise ValueError(f"frame size {w}x{h} must be a multiple of {2 * BLOCK} px")
    if config.radius > _MAX_RADIUS:
        raise ValueError(f"radius {config.radius} exceeds the supported {_MAX_RADIUS} px")
    if config.method == "exhaustive":
        field = exhaustive_search(cur, ref, config.radius, config.lam)
    else:
        field = fast_search(cur, ref, config.radius, config.lam, prior, anchor_above)
    return merge_global(field, cur, ref, config.merge_lam)


def mode_vector(vectors: torch.Tensor | np.ndarray) -> tuple[tuple[int, int], int]:
    """The most common of (..., 2) integer vectors and how many there are; ties go to the least (dy, dx).

    One integer per vector and a bincount (torch's unique(dim=0) is ten times slower)."""
    d = (vectors.cpu().numpy() if isinstance(vectors, torch.Tensor) else vectors).reshape(-1, 2).astype(np.int64)
    lo = d.min(0)
    width = int(d[:, 1].max() - lo[1]) + 1
    counts = np.bincount((d[:, 0] - lo[0]) * width + (d[:, 1] - lo[1]))
    top = int(counts.argmax())
    return (top // width + int(lo[0]), top % width + int(lo[1])), int(counts[top])


def merge_global(field: MotionField, cur: torch.Tensor, ref: torch.Tensor, lam: int) -> MotionField:
    """Offer every block the frame's global motion g, with the rate counted from g (not in PAPER).

    g is the field's most common non-zero vector, if the search gave it to at least
    1/``_MERGE_SUPPORT`` of the blocks (otherwise the field is returned as it is). A block's own
    vector m then costs SAD(m) + lam * |m - g|_1 and g costs SAD(g) (rates counted from a
    predictor, as H.264 counts them); the block takes g when that is no more and its content,
    moved by g, lay inside the previous frame (at the edges where content enters, g points into
    the edge-replicated margin, which says nothing of where the content was, and the block's own
    partial match predicts better: taking g there cost a 512^2 pan 2.8% more tokens). The frame
    keeps the merge when its total is below the total with the same rate counted from (0, 0),
    sum SAD(m) + lam * |m|_1: g must be the motion of more of the picture than (0, 0) is. On a
    pan this moves the flat blocks (sky, a wall, a dark background), where every vector matches
    about as well and Eq. 1's lam * |d|_1 picks (0, 0) or a vector near the pan by noise, onto
    the pan: their vectors then say how the picture moved. Over a static textured background
    the background pays lam * |g|_1 a block, so objects moving on it leave the field as the
    search gave it. A merged field's costs (and so its pcost) are those of the merge. Integer
    arithmetic on one whole-frame shift: CPU and CUDA give the same field (compiled on the CPU:
    ``codec.motion_cpu.merge_global``).
    """
    if lam == 0:
        return field
    if cur.device.type == "cpu":
        from videomemory.codec import motion_cpu  # imports this module's constants

        return motion_cpu.merge_global(field, cur, ref, lam)
    return _merge_global(field, cur, ref, lam)


def _merge_global(field: MotionField, cur: torch.Tensor, ref: torch.Tensor, lam: int) -> MotionField:
    """``merge_global`` in numpy and torch (what CUDA runs; the compiled CPU kernel's reference)."""
    # On a field's 1,024 blocks numpy takes a fifth of the time of torch's small ops.
    v = field.vectors.reshape(-1, 2).cpu().numpy().astype(np.int64)
    moving = v.any(1)
    if not moving.any():
        return field
    g, support = mode_vector(v[moving])
    if support * _MERGE_SUPPORT < v.shape[0]:
        return field
    sad_g = shift_sad(cur, ref, g).cpu().numpy()
    sad_m = field.sad.reshape(-1).cpu().numpy()
    own = sad_m + lam * np.abs(v - g).sum(1)
    shape, dev = tuple(field.cost.shape), field.cost.device
    take = moved_inside(shape, g).reshape(-1) & (sad_g <= own)
    cost = np.where(take, sad_g, own)
    if int(cost.sum()) >= int((sad_m + lam * np.abs(v).sum(1)).sum()):
        return field
    vec = np.where(take[:, None], np.array(g), v).astype(np.int32).reshape(*shape, 2)
    sad = np.where(take, sad_g, sad_m).reshape(shape)
    return MotionField(torch.from_numpy(vec).to(dev), torch.from_numpy(cost.reshape(shape)).to(dev),
                       torch.from_numpy(sad).to(dev), g)


def moved_inside(shape: tuple[int, int], d: tuple[float, float] | np.ndarray) -> np.ndarray:
    """Blocks (By, Bx) of a field of ``shape`` whose content, moved by ``d`` = (dy, dx) px (where
    it was), lay wholly inside the previous frame."""
    by, bx = shape
    ys, xs = np.meshgrid(np.arange(by) * BLOCK + d[0], np.arange(bx) * BLOCK + d[1], indexing="ij")
    return (ys >= 0) & (xs >= 0) & (ys + BLOCK <= by * BLOCK) & (xs + BLOCK <= bx * BLOCK)


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
    cur, ref = cur.contiguous(), ref.contiguous()
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


def shift_sad(cur: torch.Tensor, ref: torch.Tensor, d: tuple[int, int]) -> torch.Tensor:
    """SAD of every block of ``cur`` against the edge-replicated ``ref`` at one vector -> (By*Bx,) int64."""
    pad = max(abs(d[0]), abs(d[1]))
    return _shift_sad(cur, pad_edges(ref, pad), pad, d).reshape(-1)


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

    def blocks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The active blocks (N, C, 16, 16) uint8 and their top-left pixels (N, 2), cut out once."""
        if self._curb is None:
            c = self.cur.shape[0]
            blocks = self.cur.view(c, self.by, BLOCK, self.bx, BLOCK).permute(1, 3, 0, 2, 4)
            self._curb = blocks.reshape(-1, c, BLOCK, BLOCK)[self.active]  # (N, C, 16, 16)
            self._org = _origins(self.by, self.bx, BLOCK, self.cur.device)[self.active]
            self._views = self.refp.unfold(1, BLOCK, 1).unfold(2, BLOCK, 1)  # (C, Hv, Wv, 16, 16) view
        return self._curb, self._org

    def _gather_sad(self, rows: torch.Tensor, vecs: torch.Tensor) -> torch.Tensor:
        """SAD of active block ``rows`` (M,) at vectors (M, 2) by gathering the reference blocks."""
        curb, org = self.blocks()
        top = org[rows] + self.pad + vecs  # (M, 2)
        blocks = self._views[:, top[:, 0], top[:, 1]].transpose(0, 1)  # (M, C, 16, 16)
        return _absdiff(blocks, curb[rows]).sum((1, 2, 3), dtype=torch.int32).to(torch.int64)


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


def _relook(
    scorer: "_Scorer", best: torch.Tensor, best_key: torch.Tensor, tex: torch.Tensor, by: int, bx: int, radius: int,
    lam: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each active block whose vector (N, 2) costs more than 1/``_RELOOK`` of its texture ``tex``
    tries its neighbours' vectors, and walks downhill from one that is better -> (vectors, keys)."""
    if _RELOOK <= 0:
        return best, best_key
    poor = ((best_key >> (3 * _KEY_BITS)) * _RELOOK > tex).nonzero().squeeze(1)
    m = poor.shape[0]
    if m == 0:
        return best, best_key
    cand = torch.cat([best[poor, None, :], _neighbour_vectors(best, scorer.active, by, bx)[poor]], 1)  # (M, 5, 2)
    sad = scorer._gather_sad(poor[:, None].expand(m, 5).reshape(-1), cand.reshape(-1, 2)).view(m, 5)
    key, idx = _key(sad + lam * cand.abs().sum(-1), cand).min(1)
    win = cand[torch.arange(m, device=best.device), idx]
    best, best_key = best.clone(), best_key.clone()
    best[poor], best_key[poor] = win, key
    moved = poor[(win != cand[:, 0]).any(1)]
    if moved.shape[0]:
        best[moved], best_key[moved] = _walk_downhill(scorer, moved, best[moved], radius, lam)
    return best, best_key


def _box_sums(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sums of every ``size`` x ``size`` window of (C, H, W) -> (C, H - size + 1, W - size + 1) int64, exact."""
    c = F.pad(x.to(torch.int64).cumsum(1).cumsum(2), (1, 0, 1, 0))
    return c[:, size:, size:] - c[:, :-size, size:] - c[:, size:, :-size] + c[:, :-size, :-size]


def texture(cur: torch.Tensor) -> torch.Tensor:
    """Each block's texture: the sum of |differences| between horizontally and vertically
    neighbouring pixels inside it, over RGB, (3, H, W) uint8 -> (By*Bx,) int64."""
    c, h, w = cur.shape
    x = cur.to(torch.int16).view(c, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    gx = (x[..., 1:] - x[..., :-1]).abs().sum((0, 2, 4), dtype=torch.int64)
    gy = (x[:, :, 1:] - x[:, :, :-1]).abs().sum((0, 2, 4), dtype=torch.int64)
    return (gx + gy).reshape(-1)


def detail(cur: torch.Tensor) -> int:
    """The frame's detail: ``texture`` summed over its blocks, (3, H, W) uint8 (compiled on the CPU)."""
    if cur.device.type != "cpu":
        return int(texture(cur).sum())
    from videomemory.codec import motion_cpu  # imports this module's constants

    return motion_cpu.detail(cur)


def _ambiguous(tex: torch.Tensor, best_key: torch.Tensor, limit: int) -> torch.Tensor:
    """Rows into the active blocks (their textures ``tex``) of those the exact search takes (see
    ``_AMBIGUOUS``): none when the frame's pcost is over ``limit`` (-1: no limit; see ``anchor_limit``)."""
    cost = best_key >> (3 * _KEY_BITS)
    if 0 <= limit < int(cost.sum()):
        return cost.new_zeros(0)
    return (tex <= _AMBIGUOUS * cost).nonzero().squeeze(1)


def anchor_limit(anchor_above: float | None, n_blocks: int) -> int:
    """The pcost over which a frame of ``n_blocks`` is an anchor, as an integer (-1: none):
    for an integer pcost, ``pcost > limit`` exactly when ``pcost / n_blocks > anchor_above``."""
    return -1 if anchor_above is None else math.floor(anchor_above * n_blocks)


def _exact_search(
    scorer: "_Scorer", rows: torch.Tensor, radius: int, lam: int, best: torch.Tensor, best_key: torch.Tensor
) -> None:
    """Give active-block ``rows`` (M,) their exhaustive optimum, in place, by successive elimination.

    A vector can beat a block's current key only if a lower bound of its cost does not exceed the
    current cost: the SAD is at least the sum over channels of |block sum - reference sum|, on
    the whole block (``b16``) and, tighter, on its sixteen 4x4 sub-blocks (``b4``), both read off
    box sums of the reference. Only the vectors left get an exact SAD. A reference block wholly
    in the edge-replicated margin is the same for every vector further out, which costs more
    lambda|d|: those are skipped. The CPU kernel prunes the same way, more tightly as it goes;
    both return the unique least key over the window, as the exhaustive search does.
    """
    m = rows.shape[0]
    if m == 0:
        return
    dev = best.device
    cur, refp, pad = scorer.cur, scorer.refp, scorer.pad
    c, h, w = cur.shape
    curb, org = scorer.blocks()
    blocks, org = curb[rows].to(torch.int64), org[rows]  # (M, C, 16, 16), (M, 2)
    s16 = blocks.sum((2, 3))  # (M, C)
    s4 = blocks.view(m, c, 4, 4, 4, 4).sum((3, 5))  # (M, C, 4, 4)
    b16, b4 = _box_sums(refp, BLOCK), _box_sums(refp, 4)
    ar = torch.arange(-radius, radius + 1, device=dev)
    d = torch.stack(torch.meshgrid(ar, ar, indexing="ij"), -1).reshape(-1, 2)  # (D, 2)
    pen = lam * d.abs().sum(-1)  # (D,)
    step = torch.arange(4, device=dev) * 4
    keys = best_key[rows].clone()
    bound = keys >> (3 * _KEY_BITS)  # (M,)
    for r0 in range(0, m, _SEA_BLOCKS):
        o = org[r0 : r0 + _SEA_BLOCKS]
        y = pad + o[:, None, 0] + d[None, :, 0]  # (m, D): where each vector's reference block starts
        x = pad + o[:, None, 1] + d[None, :, 1]
        inside = ((d[None, :, 0] >= -o[:, None, 0] - BLOCK) & (d[None, :, 0] <= h - o[:, None, 0])
                  & (d[None, :, 1] >= -o[:, None, 1] - BLOCK) & (d[None, :, 1] <= w - o[:, None, 1]))
        lb = (s16[r0 : r0 + _SEA_BLOCKS].T[:, :, None] - b16[:, y, x]).abs().sum(0) + pen  # (m, D)
        bi, di = ((lb <= bound[r0 : r0 + _SEA_BLOCKS, None]) & inside).nonzero(as_tuple=True)
        for k0 in range(0, bi.shape[0], _SEA_CHUNK):
            i, j = bi[k0 : k0 + _SEA_CHUNK], di[k0 : k0 + _SEA_CHUNK]
            yy, xx = y[i, j], x[i, j]
            i = i + r0
            sub = b4[:, yy[:, None, None] + step[:, None], xx[:, None, None] + step]  # (C, K, 4, 4)
            left = (s4[i] - sub.transpose(0, 1)).abs().sum((1, 2, 3)) + pen[j] <= bound[i]
            i, j = i[left], j[left]
            sad = scorer._gather_sad(rows[i], d[j])
            keys.scatter_reduce_(0, i, _key(sad + pen[j], d[j]), "amin")
    off, low = _MAX_RADIUS + 1, (1 << _KEY_BITS) - 1
    best[rows] = torch.stack((((keys >> _KEY_BITS) & low) - off, (keys & low) - off), -1)
    best_key[rows] = keys


def _field(d: torch.Tensor, key: torch.Tensor, active: torch.Tensor, by: int, bx: int, lam: int) -> MotionField:
    """Build the field from the winners' vectors (N, 2) and keys (N,); inactive blocks are still."""
    dev = d.device
    vec = torch.zeros((by * bx, 2), dtype=torch.int32, device=dev)
    cost = torch.zeros(by * bx, dtype=torch.int64, device=dev)
    vec[active] = d.to(torch.int32)
    cost[active] = key >> (3 * _KEY_BITS)
    sad = cost - lam * vec.abs().sum(-1).to(torch.int64)
    return MotionField(vec.view(by, bx, 2), cost.view(by, bx), sad.view(by, bx))


def _neighbour_vectors(best: torch.Tensor, active: torch.Tensor, by: int, bx: int) -> torch.Tensor:
    """The vectors of each active block's 4 neighbours, (N, 4, 2), from the active blocks' vectors
    ``best`` (N, 2); an inactive neighbour's is 0."""
    full = torch.zeros((by * bx, 2), dtype=torch.int64, device=best.device)
    full[active] = best
    return _neighbours(full, by, bx)[active]


def _neighbours(d: torch.Tensor, by: int, bx: int) -> torch.Tensor:
    """The vectors of each block's 4 neighbours (edge blocks repeat their own), (By*Bx, 4, 2)."""
    f = d.view(by, bx, 2)
    up = torch.cat([f[:1], f[:-1]], 0)
    down = torch.cat([f[1:], f[-1:]], 0)
    left = torch.cat([f[:, :1], f[:, :-1]], 1)
    right = torch.cat([f[:, 1:], f[:, -1:]], 1)
    return torch.stack([up, down, left, right], 2).reshape(-1, 4, 2)


def fast_search(
    cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int, prior: MotionField | None = None,
    anchor_above: float | None = None,
) -> MotionField:
    """Coarse-to-fine search with predictors and an exact stage (see ``estimate_motion`` for
    ``anchor_above``); ambiguous blocks get the exhaustive optimum, and almost every other block
    is within 1% of it.

    On the CPU it runs compiled (``codec.motion_cpu``), elsewhere as batched torch ops
    (``fast_search_torch``); both give the same field.
    """
    if cur.device.type != "cpu":
        return fast_search_torch(cur, ref, radius, lam, prior, anchor_above)
    from videomemory.codec import motion_cpu  # imports this module's constants

    return motion_cpu.fast_search(cur, ref, radius, lam, prior, anchor_above)


def stage_lambdas(lam: int) -> tuple[int, ...]:
    """Lambda of each fast-search stage in its level's units (see ``codec.motion_cpu.search``)."""
    return (
        _lambda(lam, 8, 6, 4 * 64),  # the 1/8 neighbourhood search
        _lambda(lam, 4, 6, 4 * 16), _lambda(lam, 2, 10, 4 * 4), _lambda(lam, 1, 16, 4),  # refine, ring 1/1/0
    )


def fast_search_torch(
    cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int, prior: MotionField | None = None,
    anchor_above: float | None = None,
) -> MotionField:
    """The fast search as batched torch ops over all blocks (CUDA; the reference of the CPU kernel)."""
    cur, ref = cur.contiguous(), ref.contiguous()  # its block views need contiguous planes
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
    tex = texture(cur)[active]  # (N,): the trusted-prior and ambiguity tests
    if prior_v is not None and _TRUST_PRIOR > 0:  # a block its prior predicts well keeps it (see _TRUST_PRIOR)
        prior_key = key[:, -1]
        trusted = (prior_key >> (3 * _KEY_BITS)) * _TRUST_PRIOR <= tex
        best = torch.where(trusted[:, None], prior_v[:, 0], best)
        best_key = torch.where(trusted, prior_key, best_key)
    for _ in range(_PROPAGATION_ROUNDS):
        cand = torch.cat([best[:, None, :], _neighbour_vectors(best, active, by, bx)], 1)
        best_key, idx = scorer.keys(cand).min(1)
        best = cand[rows, idx]
    best, best_key = _polish(scorer, best, radius)
    best, best_key = _walk_downhill(scorer, rows, best, radius, lam)
    best, best_key = _relook(scorer, best, best_key, tex, by, bx, radius, lam)
    limit = anchor_limit(anchor_above, by * bx)
    _exact_search(scorer, _ambiguous(tex, best_key, limit), radius, lam, best, best_key)
    return _field(best, best_key, active, by, bx, lam)
