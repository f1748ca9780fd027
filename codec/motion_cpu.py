"""The fast motion search of ``codec.motion``, compiled for the CPU with numba.

The same algorithm as ``codec.motion.fast_search_torch`` (which runs batched on CUDA): the same
candidates at every level, the same integer costs and the same unique ordering key, so both give
identical fields; tests/codec/test_motion_cpu.py checks that block for block, as x264's checkasm
checks its assembly against C. The torch version evaluates every candidate of every block in one
tensor op per step, which on a CPU streams each intermediate through memory; here each block is
searched to the end while its pixels are in cache, a SAD stops once it cannot win, and SADs
vectorise (frames are read as interleaved RGB rows; ``codec.simd`` holds the vector code LLVM
does not find itself: psadbw, 16-lane luma SADs, 8-lane bounds). Recomputing a SAD is cheaper
than remembering it, and so are branch-free tests where the outcome is not predictable; the
per-block kernels run without numba's reference counting (``_BARE``).

Every function is compiled on first use and cached next to this file (``cache=True``), and
releases the GIL (``nogil=True``), so encoder threads search side by side.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

from videomemory.codec import config, motion, simd
from videomemory.codec.config import BLOCK
from videomemory.codec.simd import (LANES as _LANES, gap4x4, gap8x8, le_mask64, lowest_bit, pair_sums, ring9, sad16,
                                    sad48x4)

_JIT = dict(cache=True, nogil=True, boundscheck=False)
# The per-block kernels allocate nothing (their scratch comes from ``search``) and compile without
# numba's runtime: with it, every array a call passes and every row view a loop takes is reference
# counted (atomic calls, not always pruned), which was 28% of a search's time.
_BARE = dict(_JIT, _nrt=False)
_KEY_BITS = motion._KEY_BITS  # the key layout of codec.motion._key (numba freezes globals as constants)
_OFF = motion._MAX_RADIUS + 1
_INF = np.iinfo(np.int64).max
_SLACK = 16  # zero columns right of the luma levels: codec.simd.ring9 reads 16 lanes of rows of 10, 8 of 6
_TILE = 8  # the exact search passes over tiles of _TILE x _TILE vectors
_NEVER = 1 << 28  # a lane's penalty that no bound passes (bounds stay below 2**18)
# How far past a window's first row (column) of box sums the exact stage of its block reads, beyond
# 2 * radius: the 4x4 sums start up to 12 px below (right of) its last vector's block, and the
# 8x8 tile ranges of the tile after the last, and the 16x16 ones through their 8x8 sums, read
# rows up to 2 * radius + 15 of the 8x8 sums, so up to 2 * radius + 19 of the 4x4 ones.
_NEEDS = BLOCK + 4


def _keep_freed_memory() -> bool:
    """Make glibc reuse freed blocks of up to 32 MiB instead of returning them to the system.

    A search allocates ~10 MB of padded frames and pyramids per pair. By default glibc serves
    allocations this big with fresh mmap pages (or trims them off the heap when freed), so
    every search page-faulted them in again: 4.7 of 5.5 ms of building the pyramids on this
    VM. With reuse the fields are the same and the search is ~20% faster; the price is that
    the process keeps up to 128 MiB of freed heap instead of returning it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 128 << 20))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): the default allocator
        return False


MALLOC_TUNED = _keep_freed_memory()


@numba.njit(**_JIT)
def _key(cost: int, dy: int, dx: int) -> int:
    """codec.motion._key for one vector: cost, then |d|_1, dy, dx."""
    tie = (((abs(dy) + abs(dx)) << _KEY_BITS | (dy + _OFF)) << _KEY_BITS) | (dx + _OFF)
    return (np.int64(cost) << (3 * _KEY_BITS)) | tie


@numba.njit(**_JIT)
def _pad(x: np.ndarray, p: int, c: int, slack: int = 0) -> np.ndarray:
    """Edge-replicate a frame by ``p`` px; ``x`` is (H, W * c), ``c`` channels interleaved per px.
    ``slack`` more columns of zeros on the right let 16-lane reads run past the last px. Every
    loop writes a view from its first element (no wraparound test, so they vectorise), and each
    element once: 2.5-5x faster than slice assignment into zeros."""
    h, wc = x.shape
    width = wc + 2 * p * c + slack
    out = np.empty((h + 2 * p, width), x.dtype)
    for y in range(h):
        row, dst = x[y], out[p + y]
        left, mid, right = dst[: p * c], dst[p * c : p * c + wc], dst[p * c + wc :]
        for ch in range(c):
            first, last = row[ch], row[wc - c + ch]
            for k in range(p):
                left[k * c + ch] = first
                right[k * c + ch] = last
        for j in range(wc):
            mid[j] = row[j]
        for j in range(slack):
            right[p * c + j] = 0
    top, bottom = out[p], out[p + h - 1]
    for y in range(p):
        above, below = out[y], out[p + h + y]
        for j in range(width):
            above[j] = top[j]
            below[j] = bottom[j]
    return out


@numba.njit(**_JIT)
def _halve(a: np.ndarray, dtype) -> np.ndarray:
    """The next pyramid level: each px sums 2x2 px of ``a``."""
    hh, ww = a.shape[0] // 2, a.shape[1] // 2
    b = np.empty((hh, ww), dtype)
    for y in range(hh):
        a0, a1, o = a[2 * y], a[2 * y + 1], b[y]
        for x in range(ww):
            o[x] = a0[2 * x] + a0[2 * x + 1] + a1[2 * x] + a1[2 * x + 1]
    return b


@numba.njit(**_JIT)
def _pyramid(img: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Integer luma R + 2G + B of an (H, 3W) RGB frame at full, 1/2 and 1/4 resolution (int16:
    at most 16,320), and at 1/8 (int32); each px of a level sums 2x2 px of the one above."""
    h, w = img.shape[0], img.shape[1] // 3
    y0 = np.empty((h, w), np.int16)
    for y in range(h):
        row, o = img[y], y0[y]
        for x in range(w):
            o[x] = np.int16(row[3 * x]) + 2 * np.int16(row[3 * x + 1]) + np.int16(row[3 * x + 2])
    y1 = _halve(y0, np.int16)
    y2 = _halve(y1, np.int16)
    return (y0, y1, y2), _halve(y2, np.int32)


@numba.njit(**_BARE)
def _sad(cur: np.ndarray, cy: int, cx: int, ref: np.ndarray, ry: int, rx: int, s: int, bound: int) -> int:
    """SAD of the s x s window of luma ``cur`` at (cy, cx) against ``ref`` at (ry, rx); once the
    sum passes ``bound`` it stops and returns the partial sum (still above ``bound``)."""
    total = 0
    for u in range(s):
        a = cur[cy + u, cx : cx + s]
        b = ref[ry + u, rx : rx + s]
        row = 0
        for v in range(s):
            row += abs(a[v] - b[v])
        total += row
        if total > bound:
            break
    return total


@numba.njit(**_BARE)
def _sad_rgb(cur: np.ndarray, cy: int, cx: int, ref: np.ndarray, ry: int, rx: int, bound: int) -> int:
    """SAD over the 16 x 16 x 3 RGB values of a block of (H, 3W) ``cur`` at px (cy, cx) against
    ``ref``; stops early, as ``_sad``, once past ``bound`` (looked at every 4 rows)."""
    total = 0
    for u in range(0, BLOCK, 4):
        total += sad48x4(cur, cy + u, 3 * cx, ref, ry + u, 3 * rx)
        if total > bound:
            break
    return total


@numba.njit(inline="always", **_JIT)
def _sad_rows(cur: np.ndarray, cy: int, cx: int, ref: np.ndarray, ry: int, rx: int) -> int:
    """``_sad_rgb`` over 4 rows of the block, to the end."""
    return sad48x4(cur, cy, 3 * cx, ref, ry, 3 * rx)


@numba.njit(inline="always", **_JIT)
def _insert(keys: np.ndarray, vecs: np.ndarray, b: int, n: int, key: int, dy: int, dx: int) -> None:
    """Insert (key, vector) into block ``b``'s ascending top list ``keys[b, :n]`` (vectors
    ``vecs[b]``) if it is among the ``n`` least. Inlined, element by element (a call with row
    views cost more than the insert)."""
    if key >= keys[b, n - 1]:
        return
    j = n - 1
    while j > 0 and keys[b, j - 1] > key:
        keys[b, j] = keys[b, j - 1]
        vecs[b, j, 0], vecs[b, j, 1] = vecs[b, j - 1, 0], vecs[b, j - 1, 1]
        j -= 1
    keys[b, j] = key
    vecs[b, j, 0], vecs[b, j, 1] = dy, dx


@numba.njit(inline="always", **_JIT)
def _insert_entering(keys: np.ndarray, vecs: np.ndarray, b: int, n: int, key: int, dy: int, dx: int) -> None:
    """``_insert`` without branches, for a key the caller expects to enter (the 1/8-level search's
    13,600 inserts per 512^2 pair): each place takes the one above it, the key or itself, by
    selects, since where a key lands is not predictable (branching on it took 0.3 ms a pair)."""
    for j in range(n - 1, 0, -1):
        up, here = keys[b, j - 1], keys[b, j]
        moves, lands = key < up, key < here
        keys[b, j] = up if moves else (key if lands else here)
        vecs[b, j, 0] = vecs[b, j - 1, 0] if moves else (dy if lands else vecs[b, j, 0])
        vecs[b, j, 1] = vecs[b, j - 1, 1] if moves else (dx if lands else vecs[b, j, 1])
    first = key < keys[b, 0]
    keys[b, 0] = key if first else keys[b, 0]
    vecs[b, 0, 0] = dy if first else vecs[b, 0, 0]
    vecs[b, 0, 1] = dx if first else vecs[b, 0, 1]


@numba.njit(inline="always", **_JIT)
def _insert2(keys: np.ndarray, vecs: np.ndarray, key: int, dy: int, dx: int) -> None:
    """``_insert`` for one top list of 2 (``keys`` (2,), ``vecs`` (2, 2)), without branches: whether
    a vector enters is not predictable, and the refinement inserts ~70 vectors per block."""
    k0, k1 = keys[0], keys[1]
    first, second = key < k0, key < k1
    keys[1] = k0 if first else (key if second else k1)
    y1 = vecs[0, 0] if first else (dy if second else vecs[1, 0])
    x1 = vecs[0, 1] if first else (dx if second else vecs[1, 1])
    vecs[1, 0], vecs[1, 1] = y1, x1
    keys[0] = key if first else k0
    vecs[0, 0] = dy if first else vecs[0, 0]
    vecs[0, 1] = dx if first else vecs[0, 1]


@numba.njit(**_JIT)
def _nearest_first(r: int) -> np.ndarray:
    """Every vector of +-r by increasing |d|_1 -> ((2r + 1)^2, 2)."""
    order = np.empty(((2 * r + 1) ** 2, 2), np.int64)
    n = 0
    for d in range(2 * r + 1):
        for dy in range(-r, r + 1):
            dx = d - abs(dy)
            if 0 <= dx <= r:
                order[n, 0], order[n, 1] = dy, dx
                n += 1
                if dx:
                    order[n, 0], order[n, 1] = dy, -dx
                    n += 1
    return order


@numba.njit(**_JIT)
def _coarse(cur3, ref3, r, lam, active, top):
    """Exhaustive 1/8-level search over +-r of each block's 3x3 neighbourhood -> (By*Bx, top, 2).

    cur3: (H/8, W/8); ref3 padded by r. Block costs sum 2x2 level px, and each block's cost
    sums its 3x3 neighbours (zero outside the frame), as codec.motion._coarse does. A vector's
    costs for all blocks are computed first (in vector lanes), then only the blocks whose list
    they enter are visited, found 64 at a time from a mask of vector compares, and inserted
    without branches (``_insert_entering``); the nearest vectors go first, so the lists
    soon hold low costs and few later vectors enter (the lists, ordered by the unique key, do not
    depend on the order).
    """
    h, w = cur3.shape
    by, bx = h // 2, w // 2
    nb = by * bx
    nq = (nb + 63) // 64  # blocks in words of 64
    keys = np.full((nb, top), _INF, np.int64)
    vecs = np.zeros((nb, top, 2), np.int64)
    # The cost a vector must not exceed to enter a block's list (-1: inactive, never; so are the
    # blocks that pad the last word). Costs sum 36 level px of at most 65,280: int32.
    most = np.iinfo(np.int32).max
    enter = np.full(64 * nq, np.int32(-1))
    for b in range(nb):
        if active[b]:
            enter[b] = most
    blk = np.zeros((by + 2, bx + 2), np.int32)
    rows = np.zeros((by + 2, bx), np.int32)
    cost = np.zeros(64 * nq, np.int32)
    t = np.empty(w, np.int32)
    order = _nearest_first(r)
    for i in range(len(order)):
        dy, dx = order[i, 0], order[i, 1]
        for y in range(by):
            c0, c1 = cur3[2 * y], cur3[2 * y + 1]
            r0, r1 = ref3[r + dy + 2 * y, r + dx : r + dx + w], ref3[r + dy + 2 * y + 1, r + dx : r + dx + w]
            for x in range(w):  # in 32 bits (numba widens int32 arithmetic to 64: half the lanes)
                t[x] = np.int32(abs(np.int32(c0[x] - r0[x]))) + np.int32(abs(np.int32(c1[x] - r1[x])))
            for x in range(bx):
                blk[y + 1, x + 1] = t[2 * x] + t[2 * x + 1]
        for y in range(by + 2):
            for x in range(bx):
                rows[y, x] = blk[y, x] + blk[y, x + 1] + blk[y, x + 2]
        pen = np.int32(lam * (abs(dy) + abs(dx)))
        for y in range(by):
            r0, r1, r2, o = rows[y], rows[y + 1], rows[y + 2], cost[y * bx : y * bx + bx]
            for x in range(bx):
                o[x] = r0[x] + r1[x] + r2[x] + pen
        for q in range(nq):  # the blocks it enters, 64 tests at a time, in order
            m = le_mask64(cost, 64 * q, enter, 64 * q)
            while m:
                b = 64 * q + lowest_bit(m)
                _insert_entering(keys, vecs, b, top, _key(cost[b], dy, dx), dy, dx)
                enter[b] = min(keys[b, top - 1] >> (3 * _KEY_BITS), most)
                m &= m - np.uint64(1)
    return vecs


@numba.njit(**_BARE)
def _refine_block(curp, refp, oy, ox, size, ring_px, lam, limit, pad, cpad, centers, k, keep, out, scratch):
    """codec.motion._refine for one block: +-1 around ``centers[:k]`` (level px) on one luma level.

    curp is padded by ``cpad`` >= ring, refp by ``pad``; (oy, ox) is the block origin in level
    px. The ``keep`` least keys (with repeats, as torch.topk) go to ``out`` (keep, 2). A center's
    9 SADs take one pass (``codec.simd.ring9``); a vector that two rings share is costed twice, which is
    cheaper than remembering it (and gives the same key). A center at the window's edge gets
    single SADs, each stopped once past the ``keep``-th cost. A center given twice (the repeats
    make the two centers of the finer levels one vector in ~45% of blocks, and 19-37% of the 1/4
    level's five repeat one) inserts the keys its first ring got again, in the same order: what
    costing it again would do (a key stopped early was over the keep-th cost then, and so is now).
    """
    s = size + 2 * ring_px
    keys, ring, seen = scratch  # seen[c, j]: center c's j-th key (-1: outside the window)
    for j in range(keep):
        keys[j] = _INF
    for c in range(k):
        cy, cx = centers[c, 0], centers[c, 1]
        first = c
        for e in range(c):
            if centers[e, 0] == cy and centers[e, 1] == cx:
                first = e
                break
        if first < c:
            for j in range(9):
                if seen[first, j] >= 0:
                    _enter(keys, out, keep, seen[first, j], cy + j // 3 - 1, cx + j % 3 - 1)
            continue
        inside = abs(cy) < limit and abs(cx) < limit
        if inside:  # a center with its whole ring in the window: its 9 SADs in one pass over it
            ring9(ring, curp, cpad + oy - ring_px, cpad + ox - ring_px, refp, pad + oy - ring_px + cy - 1,
                  pad + ox - ring_px + cx - 1, s)
        for j in range(9):
            dy, dx = cy + j // 3 - 1, cx + j % 3 - 1
            seen[c, j] = -1
            if abs(dy) > limit or abs(dx) > limit:
                continue
            pen = lam * (abs(dy) + abs(dx))
            if inside:
                sad = ring[j]
            else:
                # Past the keep-th cost so far it cannot enter: stop summing there. A partial
                # sum stays above every later bound, as the keep-th cost only falls.
                bound = (keys[keep - 1] >> (3 * _KEY_BITS)) - pen
                sad = _sad(curp, cpad + oy - ring_px, cpad + ox - ring_px, refp, pad + oy - ring_px + dy,
                           pad + ox - ring_px + dx, s, bound)
            seen[c, j] = _key(sad + pen, dy, dx)
            _enter(keys, out, keep, seen[c, j], dy, dx)


@numba.njit(inline="always", **_JIT)
def _enter(keys, out, keep, key, dy, dx):
    """Offer (key, vector) to the refinement's top list ``keys`` (keep,), vectors ``out``."""
    if keep == 2:
        _insert2(keys, out, key, dy, dx)
    else:
        _insert(keys.reshape((1, keep)), out.reshape((1, out.shape[0], 2)), 0, keep, key, dy, dx)


@numba.njit(**_BARE)
def _exact(cur, refp, pad, lam, oy, ox, dy, dx, best):
    """Exact RGB key of vector (dy, dx) for the block at px (oy, ox); a vector that cannot beat key
    ``best`` may get a lower bound above it instead. (Recomputing beats remembering keys: a
    lookup among a block's ~30 vectors costs about what the SAD, one psadbw per 16 values, does.)"""
    pen = lam * (abs(dy) + abs(dx))
    bound = (best >> (3 * _KEY_BITS)) - pen
    if bound < 0:
        return _key(pen, dy, dx)
    return _key(_sad_rgb(cur, oy, ox, refp, pad + oy + dy, pad + ox + dx, bound) + pen, dy, dx)


@numba.njit(**_JIT)
def _half(v: int) -> int:
    """v / 2 rounded toward zero (torch.div(..., rounding_mode="trunc"))."""
    return v // 2 if v >= 0 else -((-v) // 2)


@numba.njit(**_JIT)
def _levels(cur, ref, radius):
    """Luma pyramids: the current frame's padded by 1 (the ring), the reference's by each level's
    reach -> (current's levels 0-2, reference's levels 0-2, pads, current's 1/8 level unpadded,
    reference's 1/8 level padded by radius/8)."""
    (c0, c1, c2), c3 = _pyramid(cur)
    (r0, r1, r2), r3 = _pyramid(ref)
    lpad = (radius + 3, radius // 2 + 3, radius // 4 + 3)  # limit, ring and the +-1 step
    ycp = (_pad(c0, 1, 1, _SLACK), _pad(c1, 1, 1, _SLACK), _pad(c2, 1, 1, _SLACK))
    yrp = (_pad(r0, lpad[0], 1, _SLACK), _pad(r1, lpad[1], 1, _SLACK), _pad(r2, lpad[2], 1, _SLACK))
    return ycp, yrp, lpad, c3, _pad(r3, radius // 8, 1)


@numba.njit(**_BARE)
def _descend(ycp, yrp, lpad, radius, lams, bx, coarse, prior, has_prior, keep, b, out, src, scratch):
    """Refine one block's candidates at 1/4, 1/2 and full resolution -> ``out`` (keep, 2) px."""
    oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
    n_coarse = coarse.shape[1]
    k = n_coarse + 1 + (1 if has_prior else 0)
    for c in range(n_coarse):
        src[c, 0], src[c, 1] = 2 * coarse[b, c, 0], 2 * coarse[b, c, 1]
    src[n_coarse, 0], src[n_coarse, 1] = 0, 0
    if has_prior:  # floor division, as torch.div(..., rounding_mode="floor")
        src[n_coarse + 1, 0], src[n_coarse + 1, 1] = prior[b, 0] // 4, prior[b, 1] // 4
    for level in (2, 1, 0):
        scale = 1 << level
        ring = 1 if level else 0
        _refine_block(ycp[level], yrp[level], oy // scale, ox // scale, BLOCK // scale, ring, lams[3 - level],
                      radius // scale, lpad[level], 1, src, k, keep, out, scratch)
        k = keep
        for c in range(keep):
            f = 2 if level else 1
            src[c, 0], src[c, 1] = f * out[c, 0], f * out[c, 1]
    for c in range(keep):
        out[c, 0], out[c, 1] = src[c, 0], src[c, 1]


@numba.njit(**_BARE)
def _choose(cur, refp, pad, lam, b, cands, n, best, bdy, bdx):
    """The least exact key among ``cands[:n]`` and ``best``, the key of (bdy, bdx) (``_INF``: none
    yet), for block ``b`` -> (key, dy, dx). The vector of ``best`` is not costed again."""
    bx = cur.shape[1] // (3 * BLOCK)
    oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
    for c in range(n):
        dy, dx = cands[c, 0], cands[c, 1]
        if dy == bdy and dx == bdx and best != _INF:
            continue
        key = _exact(cur, refp, pad, lam, oy, ox, dy, dx, best)
        if key < best:
            best, bdy, bdx = key, dy, dx
    return best, bdy, bdx


@numba.njit(**_JIT)
def _ring(cands, vy, vx, radius):
    """Write the 8 vectors around (vy, vx), clamped to the window, to ``cands[:8]`` -> 8."""
    j = 0
    for a in range(-1, 2):
        for b in range(-1, 2):
            if a or b:
                cands[j, 0] = min(max(vy + a, -radius), radius)
                cands[j, 1] = min(max(vx + b, -radius), radius)
                j += 1
    return j


@numba.njit(**_JIT)
def _neighbours(b: int, by: int, bx: int) -> tuple[int, int, int, int]:
    """The blocks above, below, left and right of block ``b`` (an edge block stands in for a missing
    one), as codec.motion._neighbours."""
    y, x = b // bx, b % bx
    return b - bx if y > 0 else b, b + bx if y < by - 1 else b, b - 1 if x > 0 else b, b + 1 if x < bx - 1 else b


@numba.njit(**_BARE)
def _texture(cur, b):
    """codec.motion.texture of block ``b``: the sum of |differences| between horizontally and
    vertically neighbouring pixels inside it, over RGB. Each row's 45 horizontal differences (a
    px's values against the next px's, 3 apart) take three 16-value SADs, at 0, 16 and 29, less
    the 3 that the last two share; a row's 48 against the row below take three. (Value by value
    this was 4% of a search.)"""
    bx = cur.shape[1] // (3 * BLOCK)
    oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
    i = 3 * ox
    t = 0
    for u in range(BLOCK):
        row = cur[oy + u]
        t += sad16(row, i, row, i + 3) + sad16(row, i + 16, row, i + 19) + sad16(row, i + 29, row, i + 32)
        for v in range(i + 29, i + 32):
            p, q = row[v], row[v + 3]
            t -= np.int32(max(p, q) - min(p, q))
        if u + 1 < BLOCK:
            below = cur[oy + u + 1]
            t += sad16(row, i, below, i) + sad16(row, i + 16, below, i + 16) + sad16(row, i + 32, below, i + 32)
    return t


@numba.njit(**_JIT)
def _detail(cur):
    """``_texture`` of every block of (H, 3W) ``cur``, summed."""
    nb = (cur.shape[0] // BLOCK) * (cur.shape[1] // (3 * BLOCK))
    t = 0
    for b in range(nb):
        t += _texture(cur, b)
    return t


@numba.njit(**_JIT)
def _reach(amb, bx, radius, pad, hp, wp):
    """Where the exact stage reads the padded reference, for the ambiguous blocks ``amb``:
    (y0, y1, x0, x1, spans). Rows y0..y1 and columns x0..x1 (exclusive) bound the windows; (y0, x0)
    sit where the first block's window starts, so tiles of vectors stay aligned to it. ``spans``
    (one per band of _TILE rows from y0) are the columns, from x0, that ``_boxes`` computes in
    that band: those of the windows that cross it, each from its first column to _NEEDS past it."""
    y_min, y_max, x_min, x_max = hp, 0, wp, 0
    for b in range(len(amb)):
        if amb[b]:
            oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
            y_min, y_max, x_min, x_max = min(y_min, oy), max(y_max, oy), min(x_min, ox), max(x_max, ox)
    o = pad - radius  # where the window of the block at (0, 0) starts
    reach = 2 * radius + BLOCK  # a window's rows (and columns), from its first vector's block to its last
    y0, y1, x0, x1 = o + y_min, min(hp, o + y_max + reach), o + x_min, min(wp, o + x_max + reach)
    need = 2 * radius + _NEEDS
    spans = np.empty(((y1 - y0 + _TILE - 1) // _TILE, 2), np.int64)
    spans[:, 0], spans[:, 1] = wp, 0
    for b in range(len(amb)):
        if amb[b]:
            a, c = (b // bx) * BLOCK - y_min, (b % bx) * BLOCK - x_min  # its window's first row and column
            for k in range(a // _TILE, min(len(spans), (a + need + _TILE - 1) // _TILE)):
                spans[k, 0], spans[k, 1] = min(spans[k, 0], c), max(spans[k, 1], c + need)
    return y0, y1, x0, x1, spans


@numba.njit(**_JIT)
def _boxes(refp, y0, y1, x0, x1, spans):
    """Sums of every 4x4 and 8x8 window of rows y0..y1, columns x0..x1 of the padded (Hp, 3Wp)
    reference, per channel, as planes, and their ranges over tiles of vectors, in one pass down
    the rows. ``b4[c, y, x]`` sums channel c over rows y0+y..y0+y+3, columns x0+x..x0+x+3; only
    the columns ``spans`` names in each band of _TILE rows are computed (the rest is left as it
    was allocated: no window reads it). Right of x1 the planes sum zeros, _LANES + 16 columns, so
    ``_exact_block`` reads _LANES windows at a time anywhere. 16 bits (8x8: at most 16,320), half
    the memory of 32 to stream. The ranges (least and greatest window sum per channel over each
    tile of _TILE x _TILE window positions, (3, Ty, Tx), of the 16x16 sums and of the 8x8 ones)
    are folded in as each row is made, while it is in cache; the 16x16 sums (uint16: at most
    65,280) are made a row at a time from four 8x8 ones and never stored."""
    hp, wp = y1 - y0, x1 - x0
    width = wp + _LANES + 16
    w4, w8 = width - 3, width - 7
    h8 = hp - 7
    h16, w16 = h8 - 8, w8 - 8
    b4 = np.empty((3, hp - 3, w4), np.int16)
    b8 = np.empty((3, h8, w8), np.int16)
    v4 = np.zeros(3 * width, np.int16)  # one row of 4 rows summed, RGB interleaved (zeros past x1)
    h4 = np.empty(3 * w4, np.int16)  # and of 4 of those along the row: 4x4 sums, interleaved
    s16 = np.empty(w16, np.uint16)
    t8, t16 = (w8 + _TILE - 1) // _TILE, (w16 + _TILE - 1) // _TILE
    shape8, shape16 = (3, (h8 + _TILE - 1) // _TILE, t8), (3, (h16 + _TILE - 1) // _TILE, t16)
    mn8, mx8, mn16, mx16 = (np.empty(shape8, np.int32), np.empty(shape8, np.int32), np.empty(shape16, np.int32),
                            np.empty(shape16, np.int32))
    # Column-wise least and greatest of a tile row so far; the columns past the sums hold the type's
    # greatest and least value, which no range takes.
    lo8, hi8 = np.full((3, t8 * _TILE + _TILE), 32767, np.int16), np.full((3, t8 * _TILE + _TILE), -32768, np.int16)
    lo16, hi16 = np.full((3, t16 * _TILE + _TILE), 65535, np.uint16), np.zeros((3, t16 * _TILE + _TILE), np.uint16)
    for y in range(hp - 3):
        xa, xb = spans[y // _TILE, 0], min(w4, spans[y // _TILE, 1])
        if xa < xb:  # (loops index views from xa: an index from 0 needs no wraparound test, so they vectorise)
            r0, r1 = refp[y0 + y, 3 * (x0 + xa) : 3 * x1], refp[y0 + y + 1, 3 * (x0 + xa) : 3 * x1]
            r2, r3 = refp[y0 + y + 2, 3 * (x0 + xa) : 3 * x1], refp[y0 + y + 3, 3 * (x0 + xa) : 3 * x1]
            v, h = v4[3 * xa :], h4[3 * xa :]
            for j in range(min(3 * wp, 3 * xb + 9) - 3 * xa):
                v[j] = np.int16(r0[j]) + np.int16(r1[j]) + np.int16(r2[j]) + np.int16(r3[j])
            for j in range(3 * (xb - xa)):  # contiguous in the interleaved row, so it vectorises
                h[j] = v[j] + v[j + 3] + v[j + 6] + v[j + 9]
            o0, o1, o2 = b4[0, y, xa:], b4[1, y, xa:], b4[2, y, xa:]
            for x in range(xb - xa):
                o0[x], o1[x], o2[x] = h[3 * x], h[3 * x + 1], h[3 * x + 2]
        yy = y - 4  # the 8x8 row that this 4x4 row completes
        if yy < 0:
            continue
        xa, xb = spans[yy // _TILE, 0], min(w8, spans[yy // _TILE, 1])
        r = yy - 8  # the 16x16 row that 8x8 rows r and yy make
        xa16, xb16 = (spans[r // _TILE, 0], min(w16, spans[r // _TILE, 1])) if r >= 0 else (0, 0)
        for ch in range(3):
            if xa < xb:
                a0, a1, o = b4[ch, yy, xa:], b4[ch, y, xa:], b8[ch, yy, xa:]
                for x in range(xb - xa):
                    o[x] = a0[x] + a0[x + 4] + a1[x] + a1[x + 4]
                _fold(lo8[ch, xa:], hi8[ch, xa:], o, xb - xa, yy % _TILE == 0)
                if yy % _TILE == _TILE - 1 or yy == h8 - 1:
                    t = yy // _TILE
                    _tiles(lo8[ch, xa:], hi8[ch, xa:], xb - xa, mn8[ch, t, xa // _TILE :], mx8[ch, t, xa // _TILE :])
            if xa16 < xb16:
                c0, c1 = b8[ch, r, xa16:], b8[ch, yy, xa16:]
                for j in range(xb16 - xa16):
                    s16[j] = np.uint16(c0[j]) + np.uint16(c0[j + 8]) + np.uint16(c1[j]) + np.uint16(c1[j + 8])
                _fold(lo16[ch, xa16:], hi16[ch, xa16:], s16, xb16 - xa16, r % _TILE == 0)
                if r % _TILE == _TILE - 1 or r == h16 - 1:
                    t, q = r // _TILE, xa16 // _TILE
                    _tiles(lo16[ch, xa16:], hi16[ch, xa16:], xb16 - xa16, mn16[ch, t, q:], mx16[ch, t, q:])
    return b4, b8, (mn16, mx16, mn8, mx8)


@numba.njit(inline="always", **_JIT)
def _fold(lo, hi, row, n, first):
    """Fold n columns of one row of window sums into the column-wise least ``lo`` and greatest
    ``hi`` (the windows' own type: min and max stay in it, so they vectorise); ``first`` starts them."""
    if first:
        for j in range(n):
            lo[j], hi[j] = row[j], row[j]
    else:
        for j in range(n):
            lo[j] = min(lo[j], row[j])
            hi[j] = max(hi[j], row[j])


@numba.njit(inline="always", **_JIT)
def _tiles(lo, hi, n, mn, mx):
    """Reduce a tile row's column-wise ranges (n columns from a tile's first) to one per tile of
    _TILE columns -> ``mn``, ``mx``: three passes of the least (greatest) of two columns 1, 2 and 4
    apart leave each column with that of the _TILE from it, in vector lanes. A tile that n cuts
    gets columns past it too (no window reads it)."""
    for s in (1, 2, 4):
        for x in range(n):
            lo[x] = min(lo[x], lo[x + s])
            hi[x] = max(hi[x], hi[x + s])
    for q in range((n + _TILE - 1) // _TILE):
        mn[q], mx[q] = lo[q * _TILE], hi[q * _TILE]


@numba.njit(inline="always", **_JIT)
def _gap(v, lo, hi):
    """Distance from ``v`` to the interval [lo, hi] (branch-free: which side ``v`` falls is not
    predictable, and mispredicted branches were half the cost of the tile tests)."""
    return max(lo - v, 0) + max(v - hi, 0)


@numba.njit(inline="always", **_JIT)
def _tile_gap(sums, mn, mx, ty, tx, n):
    """A lower bound of the SAD of every vector of tile (ty, tx): per sub-block of the block (n x n
    of them, _TILE px apart) and channel, the distance from its sum to the range of the window
    sums its reference windows have over the tile (``_boxes``' ranges)."""
    t = 0
    for i in range(n):
        for j in range(n):
            for ch in range(3):
                t += _gap(sums[i, j, ch], mn[ch, ty + i, tx + j], mx[ch, ty + i, tx + j])
    return t


@numba.njit(**_BARE)
def _exact_block(cur, refp, pad, radius, lam, b4, b8, ranges, y0, x0, b, vec, best_key, scratch):
    """codec.motion._exact_search for block ``b``: the exhaustive optimum by successive elimination.

    Vectors go tile by tile (_TILE x _TILE of them); a tile, then a vector, is passed over once a
    lower bound of its cost exceeds the best cost so far: lambda|d| with the sums of the whole
    block and of its four 8x8 sub-blocks against the tile's ranges of window sums (``ranges``,
    from ``_boxes``: of the 16x16 and the 8x8 sums), then its four 8x8 and its sixteen 4x4
    sub-blocks' sums against the reference's, per channel, for a tile's row of vectors at once
    (``codec.simd.gap8x8``, ``gap4x4``); the vectors left get an exact SAD, band of 4 rows by band,
    which stops once the bands summed plus the others' 4x4 bound pass the best. Vectors further out
    than the first whose reference block lies wholly in the edge-replicated margin see the same
    block at a higher lambda|d|, and are skipped.
    """
    h, w = cur.shape[0], cur.shape[1] // 3
    bx = w // BLOCK
    oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
    # pen: lambda|dx| per lane of a tile's row (a lane past the tile never passes); p8, p4: the
    # 8x8 and 4x4 sums as the bounds read them (codec.simd.pair_sums)
    s4, s8, s16, pen, g, band, p8, p4 = scratch
    s4[:] = 0  # the block's 4x4 sub-block sums, [i, j, c]
    s8[:] = 0  # its 8x8 sub-blocks', and its own (s16)
    s16[:] = 0
    for u in range(BLOCK):
        row = cur[oy + u, 3 * ox : 3 * ox + 3 * BLOCK]
        for v in range(BLOCK):
            for ch in range(3):
                s4[u // 4, v // 4, ch] += np.int32(row[3 * v + ch])
    for i in range(4):
        for j in range(4):
            for ch in range(3):
                s8[i // 2, j // 2, ch] += s4[i, j, ch]
    for i in range(2):
        for j in range(2):
            for ch in range(3):
                s16[0, 0, ch] += s8[i, j, ch]
    pair_sums(p8, s8)
    pair_sums(p4, s4)
    mn16, mx16, mn8, mx8 = ranges
    best, bdy, bdx = best_key[b], vec[b, 0], vec[b, 1]
    ylo, yhi = max(-radius, -oy - BLOCK), min(radius, h - oy)
    xlo, xhi = max(-radius, -ox - BLOCK), min(radius, w - ox)
    n_tiles = (2 * radius + _TILE) // _TILE
    for ky in range(n_tiles):
        dy0, dy1 = max(ylo, -radius + _TILE * ky), min(yhi, -radius + _TILE * ky + _TILE - 1)
        if dy0 > dy1:
            continue
        py = 0 if dy0 <= 0 <= dy1 else min(abs(dy0), abs(dy1))
        for kx in range(n_tiles):
            dx0, dx1 = max(xlo, -radius + _TILE * kx), min(xhi, -radius + _TILE * kx + _TILE - 1)
            if dx0 > dx1:
                continue
            px = 0 if dx0 <= 0 <= dx1 else min(abs(dx0), abs(dx1))
            room = (best >> (3 * _KEY_BITS)) - lam * (py + px)  # what the tile's SADs must stay within
            ty, tx = (pad - radius + oy - y0) // _TILE + ky, (pad - radius + ox - x0) // _TILE + kx
            if _tile_gap(s16, mn16, mx16, ty, tx, 1) > room or _tile_gap(s8, mn8, mx8, ty, tx, 2) > room:
                continue
            for k in range(_LANES):
                pen[k] = lam * abs(dx0 + k) if dx0 + k <= dx1 else _NEVER
            x = pad + ox + dx0 - x0  # in the box sums (which start at (y0, x0) of the reference)
            for dy in range(dy0, dy1 + 1):
                y = pad + oy + dy - y0
                top = best >> (3 * _KEY_BITS)  # the cost to stay within
                base = lam * abs(dy)
                # (a row test on the 16x16 sums too costs more than it saves: the tile's passed it)
                if base + gap8x8(g, pen, p8, b8, y, x) > top:
                    continue
                # The 4x4 bound band by band: a SAD stops on the bound of the bands it has not summed.
                if base + gap4x4(g, band, pen, p4, b4, y, x) > top:
                    continue
                for k in range(dx1 - dx0 + 1):
                    cost = base + pen[k]
                    rest = g[k] - pen[k]  # the bound of the rows not yet summed
                    if cost + rest > top:
                        continue
                    sad = 0
                    for i in range(4):
                        rest -= band[i, k]
                        sad += _sad_rows(cur, oy + 4 * i, ox, refp, y0 + y + 4 * i, pad + ox + dx0 + k)
                        if cost + sad + rest > top:
                            break
                    lb = cost + sad
                    if lb + rest <= top:
                        key = _key(lb, dy, dx0 + k)
                        if key < best:
                            best, bdy, bdx = key, dy, dx0 + k
                            top = best >> (3 * _KEY_BITS)
    best_key[b], vec[b, 0], vec[b, 1] = best, bdy, bdx


@numba.njit(**_JIT)
def search(cur, ref, radius, lam, prior, has_prior, lams, n_coarse, keep, rounds, ambiguous, limit, trust, relook):
    """The fast search on (H, 3W) uint8 RGB frames -> (vectors (By*Bx, 2), keys (By*Bx,), active).

    ``lams``: lambda per stage in its level's units, in the order coarse, refine at 1/4, 1/2 and
    full resolution. ``limit``: the pcost over which the exact stage is skipped (-1: none).
    ``trust``: a block whose prior costs at most 1/trust of its texture keeps it without the
    pyramid (0: never; ``codec.motion._TRUST_PRIOR``). ``relook``: after the walk, a block whose
    vector costs more than 1/relook of its texture tries its neighbours' final vectors (0: none;
    ``codec.motion._RELOOK``). Inactive blocks (zero-vector SAD 0) keep
    vector 0 and key 0.
    """
    h, w = cur.shape[0], cur.shape[1] // 3
    by, bx = h // BLOCK, w // BLOCK
    nb = by * bx
    pad = radius + 2
    refp = _pad(ref, pad, 3)
    vec = np.zeros((nb, 2), np.int64)
    best_key = np.zeros(nb, np.int64)
    active = np.zeros(nb, np.bool_)
    for b in range(nb):
        oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
        active[b] = _sad_rgb(cur, oy, ox, refp, pad + oy, pad + ox, 0) > 0
    if not active.any():
        return vec, best_key, active

    # A block that its prior predicts well (cost <= texture / trust) keeps it; the rest search.
    tex = np.full(nb, -1, np.int64)  # texture, where computed
    searching = active.copy()
    if has_prior and trust > 0:
        for b in range(nb):
            if active[b]:
                tex[b] = _texture(cur, b)
                oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
                key = _exact(cur, refp, pad, lam, oy, ox, prior[b, 0], prior[b, 1], _INF)
                if (key >> (3 * _KEY_BITS)) * trust <= tex[b]:
                    best_key[b], vec[b, 0], vec[b, 1] = key, prior[b, 0], prior[b, 1]
                    searching[b] = False

    cands = np.zeros((16, 2), np.int64)
    if searching.any():
        ycp, yrp, lpad, c3, r3p = _levels(cur, ref, radius)
        coarse = _coarse(c3, r3p, radius // 8, lams[0], searching, n_coarse)
        src = np.zeros((max(n_coarse + 2, keep), 2), np.int64)
        scratch = (np.empty(keep, np.int64), np.empty(9, np.int64), np.empty((max(n_coarse + 2, keep), 9), np.int64))
        for b in range(nb):  # the pyramid's survivors, zero and the prior, decided exactly
            if searching[b]:
                _descend(ycp, yrp, lpad, radius, lams, bx, coarse, prior, has_prior, keep, b, cands, src, scratch)
                cands[keep, 0], cands[keep, 1] = 0, 0
                cands[keep + 1, 0], cands[keep + 1, 1] = prior[b, 0], prior[b, 1]
                best_key[b], vec[b, 0], vec[b, 1] = _choose(cur, refp, pad, lam, b, cands, keep + 1 + has_prior,
                                                            _INF, 0, 0)

    for _ in range(rounds):  # adopt a neighbour's winner: every block at once, from the last field
        old, old_key = vec.copy(), best_key.copy()
        for b in range(nb):
            if active[b]:
                best_key[b], vec[b, 0], vec[b, 1] = _adopt(cur, refp, pad, lam, b, by, bx, old, old_key, cands)

    for b in range(nb):  # polish: the winner, its 8 neighbouring vectors and 5 shorter ones
        if active[b]:
            vy, vx = vec[b, 0], vec[b, 1]
            hy, hx = _half(vy), _half(vx)
            j = _ring(cands, vy, vx, radius)
            for sy, sx in ((vy, 0), (0, vx), (hy, hx), (vy, hx), (hy, vx)):
                cands[j, 0], cands[j, 1] = sy, sx
                j += 1
            key, ny, nx = _choose(cur, refp, pad, lam, b, cands, j, best_key[b], vy, vx)
            # Then walk downhill: exact +-1 steps while a neighbouring vector is better. A winner the
            # polish kept is a local minimum already (its ring was just costed against the same
            # key, as the walk's first step would cost it), so only a moved one walks.
            if ny != vy or nx != vx:
                key, ny, nx = _walk(cur, refp, pad, lam, radius, b, key, ny, nx, cands)
            best_key[b], vec[b, 0], vec[b, 1] = key, ny, nx

    if relook > 0:  # a block its vector predicts poorly tries its neighbours' final vectors (codec.motion._relook)
        old, old_key = vec.copy(), best_key.copy()
        for b in range(nb):
            if active[b]:
                if tex[b] < 0:
                    tex[b] = _texture(cur, b)
                if (old_key[b] >> (3 * _KEY_BITS)) * relook <= tex[b]:
                    continue
                key, ny, nx = _adopt(cur, refp, pad, lam, b, by, bx, old, old_key, cands)
                if ny != old[b, 0] or nx != old[b, 1]:
                    key, ny, nx = _walk(cur, refp, pad, lam, radius, b, key, ny, nx, cands)
                best_key[b], vec[b, 0], vec[b, 1] = key, ny, nx

    # Ambiguous blocks get the exhaustive optimum (codec.motion._ambiguous picks the same ones).
    amb = np.zeros(nb, np.bool_)
    if limit < 0 or (best_key[active] >> (3 * _KEY_BITS)).sum() <= limit:
        for b in range(nb):
            if active[b]:
                amb[b] = (tex[b] if tex[b] >= 0 else _texture(cur, b)) <= ambiguous * (best_key[b] >> (3 * _KEY_BITS))
    if amb.any():
        y0, y1, x0, x1, spans = _reach(amb, bx, radius, pad, refp.shape[0], refp.shape[1] // 3)
        b4, b8, ranges = _boxes(refp, y0, y1, x0, x1, spans)
        exact_scratch = (np.empty((4, 4, 3), np.int32), np.empty((2, 2, 3), np.int32), np.empty((1, 1, 3), np.int32),
                         np.empty(_LANES, np.int32), np.empty(_LANES, np.int32), np.empty((4, _LANES), np.int32),
                         np.empty((2, 3, 1, 2 * _LANES), np.int16), np.empty((4, 3, 2, 2 * _LANES), np.int16))
        for b in range(nb):
            if amb[b]:
                _exact_block(cur, refp, pad, radius, lam, b4, b8, ranges, y0, x0, b, vec, best_key, exact_scratch)
    return vec, best_key, active


@numba.njit(**_BARE)
def _adopt(cur, refp, pad, lam, b, by, bx, old, old_key, cands):
    """Block ``b``'s vector in field ``old`` (keys ``old_key``) or one of its 4 neighbours' there,
    whichever has the least exact key -> (key, dy, dx)."""
    for j, nbr in enumerate(_neighbours(b, by, bx)):
        cands[j, 0], cands[j, 1] = old[nbr, 0], old[nbr, 1]
    return _choose(cur, refp, pad, lam, b, cands, 4, old_key[b], old[b, 0], old[b, 1])


@numba.njit(**_BARE)
def _walk(cur, refp, pad, lam, radius, b, key, vy, vx, cands):
    """codec.motion._walk_downhill for one block from (vy, vx), whose key is ``key`` -> (key, dy, dx)
    of the local minimum."""
    while True:  # each step lowers the key, so it ends
        _ring(cands, vy, vx, radius)
        key, ny, nx = _choose(cur, refp, pad, lam, b, cands, 8, key, vy, vx)
        if ny == vy and nx == vx:
            return key, vy, vx
        vy, vx = ny, nx


@numba.njit(**_JIT)
def exhaustive(cur, ref, radius, lam):
    """Every vector in +-radius for every block of (H, 3W) frames -> (vectors (By*Bx, 2), keys)."""
    h, w = cur.shape[0], cur.shape[1] // 3
    by, bx = h // BLOCK, w // BLOCK
    refp = _pad(ref, radius, 3)
    vec = np.zeros((by * bx, 2), np.int64)
    best_key = np.zeros(by * bx, np.int64)
    for b in range(by * bx):
        oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
        best = _INF
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                pen = lam * (abs(dy) + abs(dx))
                bound = (best >> (3 * _KEY_BITS)) - pen
                if bound < 0:
                    continue
                sad = _sad_rgb(cur, oy, ox, refp, radius + oy + dy, radius + ox + dx, bound)
                if sad <= bound:
                    key = _key(sad + pen, dy, dx)
                    if key < best:
                        best, vec[b, 0], vec[b, 1] = key, dy, dx
        best_key[b] = best
    return vec, best_key


def fast_search(cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int,
                prior: motion.MotionField | None = None, anchor_above: float | None = None) -> motion.MotionField:
    """codec.motion.fast_search on CPU tensors (3, H, W) uint8, compiled."""
    _, h, w = cur.shape
    by, bx = h // BLOCK, w // BLOCK
    has_prior = prior is not None
    pv = (prior.vectors.reshape(-1, 2).to(torch.int64).numpy() if has_prior
          else np.zeros((by * bx, 2), np.int64))
    n_coarse = min(motion._COARSE_TOP, (2 * (radius // 8) + 1) ** 2)
    vec, key, active = search(
        _rows(cur), _rows(ref), radius, lam, pv, has_prior,
        np.array(motion.stage_lambdas(lam), np.int64), n_coarse, motion._KEEP, motion._PROPAGATION_ROUNDS,
        motion._AMBIGUOUS, motion.anchor_limit(anchor_above, by * bx), motion._TRUST_PRIOR, motion._RELOOK,
    )
    return _as_field(vec, key, by, bx, lam)


def warm() -> float:
    """Compile (the first run after an install or an edit) or load the kernels the coder calls, on a
    64x64 pair of noise, whose blocks all reach the exact stage -> the seconds it took."""
    t0 = time.perf_counter()
    cur = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8))
    ref = torch.roll(cur, 3, dims=2)
    field = fast_search(cur, ref, 64, 4, prior=fast_search(cur, ref, 64, 4))
    merge_global(field, cur, ref, 32)
    detail(cur)
    return time.perf_counter() - t0


def merge_global(field: motion.MotionField, cur: torch.Tensor, ref: torch.Tensor, lam: int) -> motion.MotionField:
    """codec.motion.merge_global on CPU tensors, compiled: one pass over the blocks, and the SAD at
    g only where a block may take it (its content, moved by g, inside the previous frame, so
    nothing is padded), stopping once past the block's own cost (a 512x512 pan: 0.23 ms a frame,
    against 0.61 in numpy)."""
    by, bx = field.cost.shape
    v = field.vectors.reshape(-1, 2).numpy().astype(np.int64)
    merged, gy, gx, vec, cost, sad = _merge(v, field.sad.reshape(-1).numpy(), _rows(cur), _rows(ref), bx, lam,
                                            motion._MERGE_SUPPORT)
    if not merged:
        return field
    return motion.MotionField(torch.from_numpy(vec).view(by, bx, 2), torch.from_numpy(cost).view(by, bx),
                              torch.from_numpy(sad).view(by, bx), (int(gy), int(gx)))


@numba.njit(**_JIT)
def _merge(v, sad, cur, ref, bx, lam, support_div):
    """codec.motion._merge_global on (N, 2) vectors and (N,) SADs of (H, 3W) frames ->
    (merged, gy, gx, vectors (N, 2) int32, costs (N,), SADs (N,)); not merged: empty arrays."""
    n = v.shape[0]
    none = (np.empty((0, 2), np.int32), np.empty(0, np.int64), np.empty(0, np.int64))
    # g: the most common non-zero vector, ties to the least (dy, dx), as codec.motion.mode_vector
    lo0, lo1, hi0, hi1, moving = _INF, _INF, -_INF, -_INF, 0
    for b in range(n):
        if v[b, 0] != 0 or v[b, 1] != 0:
            moving += 1
            lo0, hi0, lo1, hi1 = min(lo0, v[b, 0]), max(hi0, v[b, 0]), min(lo1, v[b, 1]), max(hi1, v[b, 1])
    if moving == 0:
        return False, 0, 0, none[0], none[1], none[2]
    width = hi1 - lo1 + 1
    counts = np.zeros((hi0 - lo0 + 1) * width, np.int64)
    for b in range(n):
        if v[b, 0] != 0 or v[b, 1] != 0:
            counts[(v[b, 0] - lo0) * width + v[b, 1] - lo1] += 1
    top = np.argmax(counts)
    if counts[top] * support_div < n:
        return False, 0, 0, none[0], none[1], none[2]
    gy, gx = top // width + lo0, top % width + lo1
    h, w = (n // bx) * BLOCK, bx * BLOCK
    vec, cost, out_sad = np.empty((n, 2), np.int32), np.empty(n, np.int64), np.empty(n, np.int64)
    total = still = 0
    for b in range(n):
        oy, ox = (b // bx) * BLOCK, (b % bx) * BLOCK
        own = sad[b] + lam * (abs(v[b, 0] - gy) + abs(v[b, 1] - gx))
        still += sad[b] + lam * (abs(v[b, 0]) + abs(v[b, 1]))
        s = own + 1
        if 0 <= oy + gy and oy + gy + BLOCK <= h and 0 <= ox + gx and ox + gx + BLOCK <= w:
            s = _sad_rgb(cur, oy, ox, ref, oy + gy, ox + gx, own)  # past own it stops: g is not taken
        if s <= own:
            vec[b, 0], vec[b, 1], cost[b], out_sad[b] = gy, gx, s, s
        else:
            vec[b, 0], vec[b, 1], cost[b], out_sad[b] = v[b, 0], v[b, 1], own, sad[b]
        total += cost[b]
    if total >= still:
        return False, 0, 0, none[0], none[1], none[2]
    return True, gy, gx, vec, cost, out_sad


def detail(cur: torch.Tensor) -> int:
    """codec.motion.detail on a CPU tensor (3, H, W) uint8, compiled (a 512x512 frame: ~0.3 ms)."""
    return int(_detail(_rows(cur)))


def exhaustive_search(cur: torch.Tensor, ref: torch.Tensor, radius: int, lam: int) -> motion.MotionField:
    """codec.motion.exhaustive_search on CPU tensors (3, H, W) uint8, compiled."""
    _, h, w = cur.shape
    vec, key = exhaustive(_rows(cur), _rows(ref), radius, lam)
    return _as_field(vec, key, h // BLOCK, w // BLOCK, lam)


def _as_field(vec: np.ndarray, key: np.ndarray, by: int, bx: int, lam: int) -> motion.MotionField:
    """The kernels' vectors (N, 2) and keys (N,) as a field (inactive blocks: vector and key 0, so
    cost and SAD 0, as ``motion._field`` gives them). In numpy, on the kernels' own memory: a
    fifth of the time of ``motion._field``'s small torch ops."""
    cost = key >> (3 * motion._KEY_BITS)
    sad = cost - lam * np.abs(vec).sum(1)
    vectors = torch.from_numpy(vec.astype(np.int32)).view(by, bx, 2)
    return motion.MotionField(vectors, torch.from_numpy(cost).view(by, bx), torch.from_numpy(sad).view(by, bx))


def _rows(frame: torch.Tensor) -> np.ndarray:
    """A (3, H, W) uint8 tensor as the (H, 3W) interleaved array the kernels read: a view when
    the tensor is one of an (H, W, 3) image (``motion.as_tensor(..., contiguous=False)``)."""
    hwc = frame.permute(1, 2, 0)
    if hwc.is_contiguous():
        return hwc.numpy().reshape(frame.shape[1], -1)
    return _interleave(frame.contiguous().numpy())


@numba.njit(**_JIT)
def _interleave(x: np.ndarray) -> np.ndarray:
    """(C, H, W) planes -> (H, C*W) rows of interleaved px (20x faster than torch's permuted copy)."""
    c, h, w = x.shape
    out = np.empty((h, c * w), x.dtype)
    for y in range(h):
        o = out[y]
        for ch in range(c):
            plane = x[ch, y]
            for i in range(w):
                o[c * i + ch] = plane[i]
    return out


def _forget_stale_kernels(cache_dir: Path | None = None) -> bool:
    """Drop this module's cached kernels when a file they depend on has changed -> whether it did.

    numba keys a cached kernel on its own source file only, but these inline ``codec.simd`` and
    freeze constants of ``codec.motion`` and ``codec.config`` when they compile; after an edit or
    an upgrade of one of those alone, the cache would serve kernels built from the old code. A
    digest of the three files kept next to the cache decides; numba then compiles afresh.
    """
    cache_dir = Path(search._cache._cache_path) if cache_dir is None else cache_dir
    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (simd, motion, config))).hexdigest()
    stamp = cache_dir / "motion_cpu.deps"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    try:
        for f in cache_dir.glob("motion_cpu.*.nb[ic]"):
            f.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:  # a cache numba cannot write either: nothing of ours is in it
        pass
    return True


_forget_stale_kernels()
