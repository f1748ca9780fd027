"""The SIMD primitives of the CPU kernels give the plain loops' results (x264's checkasm, in small)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from videomemory.codec import simd


@numba.njit
def _sads(sad, a, b, offsets):
    out = np.empty(len(offsets), np.int64)
    for n in range(len(offsets)):
        out[n] = sad(a, offsets[n, 0], b, offsets[n, 1])
    return out


def test_sad16_is_the_sum_of_absolute_differences():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 200, dtype=np.uint8)
    b = rng.integers(0, 256, 200, dtype=np.uint8)
    a[:16], b[:16] = 255, 0  # the extremes (16 * 255 fits where 8-bit lanes would wrap)
    offsets = np.array([[0, 0], [0, 16], [3, 7], [184, 1], [17, 184]], np.int64)  # unaligned too
    want = [int(np.abs(a[i:i + 16].astype(int) - b[j:j + 16].astype(int)).sum()) for i, j in offsets]
    assert want[0] == 16 * 255
    assert _sads(simd._sad16_loop, a, b, offsets).tolist() == want
    assert _sads(simd.sad16, a, b, offsets).tolist() == want
    if simd.HAS_PSADBW:
        assert simd.sad16 is simd._sad16_psadbw


@numba.njit
def _sads48x4(sad, a, b, at):
    out = np.empty(len(at), np.int64)
    for n in range(len(at)):
        out[n] = sad(a, at[n, 0], at[n, 1], b, at[n, 2], at[n, 3])
    return out


def test_sad48x4_is_the_sad_of_four_rows_of_48_values():
    """Against numpy: 4 rows of a block's 16 RGB px, at unaligned rows and columns, with the
    largest differences (4 x 48 x 255) and the last columns of both arrays read."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (20, 100), dtype=np.uint8)
    b = rng.integers(0, 256, (22, 90), dtype=np.uint8)
    a[:4, :48], b[:4, :48] = 255, 0
    at = np.array([[0, 0, 0, 0], [3, 7, 11, 1], [16, 52, 18, 42]], np.int64)
    want = [int(np.abs(a[y:y + 4, x:x + 48].astype(int) - b[v:v + 4, u:u + 48].astype(int)).sum()) for y, x, v, u in at]
    assert want[0] == 4 * 48 * 255
    assert _sads48x4(simd._sad48x4_loop, a, b, at).tolist() == want
    assert _sads48x4(simd.sad48x4, a, b, at).tolist() == want
    if simd.HAS_PSADBW:
        assert simd.sad48x4 is simd._sad48x4_psadbw


@numba.njit
def _gaps(gap8, gap4, init, s8, s4, b8, b4, at):
    p8 = np.zeros((2, 3, 1, 2 * simd.LANES), np.int16)
    p4 = np.zeros((4, 3, 2, 2 * simd.LANES), np.int16)
    simd.pair_sums(p8, s8)
    simd.pair_sums(p4, s4)
    g8 = np.zeros((len(at), simd.LANES), np.int32)
    g4 = np.zeros((len(at), simd.LANES), np.int32)
    band = np.zeros((len(at), 4, simd.LANES), np.int32)
    least = np.zeros((len(at), 2), np.int64)
    for n in range(len(at)):
        least[n, 0] = gap8(g8[n], init, p8, b8, at[n, 0], at[n, 1])
        least[n, 1] = gap4(g4[n], band[n], init, p4, b4, at[n, 0], at[n, 1])
    return g8, g4, band, least


def test_gap8x8_and_gap4x4_sum_every_sub_block_and_channel_in_eight_lanes():
    """Against numpy, at rows and columns the exact stage uses, with sums and windows at their
    extremes (16,320 for an 8x8 sum of RGB values: three channels' differences of it add past
    2**15 in a 16-bit lane, which must widen as unsigned) and a penalty that no bound passes."""
    rng = np.random.default_rng(1)
    b8 = rng.integers(0, 16321, (3, 40, 56)).astype(np.int16)
    b4 = rng.integers(0, 4081, (3, 44, 60)).astype(np.int16)
    s8 = rng.integers(0, 16321, (2, 2, 3)).astype(np.int32)
    s4 = rng.integers(0, 4081, (4, 4, 3)).astype(np.int32)
    s8[0, 0, :], b8[:, 0, :8] = 16320, 0
    init = (np.arange(8) * 7).astype(np.int32)
    init[7] = 1 << 28
    at = np.array([[0, 0], [3, 5], [23, 33], [31, 40]], np.int64)  # (31, 40): the last rows and columns both read

    def plain(s, b, n, size, y, x):
        return np.stack([sum(np.abs(s[i, j, c] - b[c, y + size * i, x + size * j : x + size * j + 8].astype(np.int64))
                             for j in range(n) for c in range(3)) for i in range(n)])

    for gap8, gap4 in ((simd._gap8x8_loop, simd._gap4x4_loop), (simd.gap8x8, simd.gap4x4)):
        g8, g4, band, least = _gaps(gap8, gap4, init, s8, s4, b8, b4, at)
        for n, (y, x) in enumerate(at):
            want8 = init + plain(s8, b8, 2, 8, y, x).sum(0)
            want_band = plain(s4, b4, 4, 4, y, x)
            assert g8[n].tolist() == want8.tolist() and least[n, 0] == want8.min()
            assert band[n].tolist() == want_band.tolist()
            assert g4[n].tolist() == (init + want_band.sum(0)).tolist() and least[n, 1] == g4[n].min()
    assert g8.max() > 3 * 16320 and not simd.CHECKED and simd.gap8x8 is simd._gap8x8_lanes


@numba.njit
def _rings(ring9, cur, ref, at, s):
    out = np.zeros((len(at), 9), np.int64)
    for n in range(len(at)):
        ring9(out[n], cur, at[n, 0], at[n, 1], ref, at[n, 2], at[n, 3], s)
    return out


@pytest.mark.parametrize(("s", "lanes", "bits"), simd.RING_SHAPES)
def test_ring9_gives_the_nine_sads_of_each_level(s, lanes, bits):
    """Against numpy, with each level's largest px (full, 1/2, 1/4 resolution): a window of the
    largest differences sums, per lane, past 2**15 on the 1/2 level (16 unsigned bits) and past
    2**16 on the 1/4 one (32 bits); the columns the vectors read past s are not counted."""
    top = {16: 1020, 10: 4080, 6: 16320}[s]
    rng = np.random.default_rng(4)
    cur = rng.integers(0, top + 1, (40, 64)).astype(np.int16)
    ref = rng.integers(0, top + 1, (40, 64)).astype(np.int16)
    cur[:s, :s], ref[:s + 2, :s + 2] = top, 0  # the extremes, in every one of the nine windows
    at = np.array([[0, 0, 0, 0], [3, 7, 11, 2], [40 - s, 64 - lanes, 38 - s, 62 - lanes]], np.int64)

    def plain(cy, cx, ry, rx):
        c = cur[cy:cy + s, cx:cx + s].astype(np.int64)
        return [int(np.abs(c - ref[ry + a:ry + a + s, rx + b:rx + b + s]).sum()) for a in range(3) for b in range(3)]

    want = [plain(*p) for p in at]
    assert want[0] == [s * s * top] * 9
    assert _rings(simd._ring9_loop, cur, ref, at, s).tolist() == want
    assert _rings(simd.ring9, cur, ref, at, s).tolist() == want
    assert not simd.CHECKED and simd.ring9 is simd._ring9_lanes


@numba.njit
def _masks(le_mask, a, b, offsets):
    out = np.empty(len(offsets), np.uint64)
    bits = np.full((len(offsets), 64), -1, np.int64)
    for n in range(len(offsets)):
        m = le_mask(a, offsets[n, 0], b, offsets[n, 1])
        out[n] = m
        k = 0
        while m:  # the set bits, lowest first
            bits[n, k] = simd.lowest_bit(m)
            m &= m - np.uint64(1)
            k += 1
    return out, bits


def test_le_mask64_packs_64_comparisons_and_lowest_bit_walks_them():
    rng = np.random.default_rng(4)
    a = rng.integers(-5, 6, 200).astype(np.int32)
    b = rng.integers(-5, 6, 200).astype(np.int32)
    a[136:200], b[136:200] = -(2 ** 31), 2 ** 31 - 1  # every lane (bit 63 too)
    offsets = np.array([[0, 0], [3, 70], [136, 136], [100, 9]], np.int64)
    want = [[k for k in range(64) if a[i + k] <= b[j + k]] for i, j in offsets]
    assert len(want[2]) == 64 and all(0 < len(w) < 64 for w in want[:2])
    for le_mask in (simd._le_mask64_loop, simd.le_mask64):
        masks, bits = _masks(le_mask, a, b, offsets)
        assert [int(m) for m in masks] == [sum(1 << k for k in w) for w in want]
        assert [[int(k) for k in row if k >= 0] for row in bits] == want


def test_the_intrinsics_refuse_strided_arrays():
    # They read flat memory: a strided view must fail to compile, not read the wrong values.
    a = np.arange(64, dtype=np.uint8)
    with pytest.raises(numba.core.errors.TypingError):
        _sads(simd._sad16_psadbw, a[::2], a, np.zeros((1, 2), np.int64))
    with pytest.raises(numba.core.errors.TypingError):
        strided = np.zeros((3, 40, 80), np.int16)[:, :, ::2]
        z = np.zeros(8, np.int32)
        _gaps(simd._gap8x8_lanes, simd._gap4x4_lanes, z, np.zeros((2, 2, 3), np.int32), np.zeros((4, 4, 3), np.int32),
              strided, strided, np.zeros((1, 2), np.int64))
    with pytest.raises(numba.core.errors.TypingError):
        rows = np.zeros((40, 64), np.int16)
        _rings(simd._ring9_lanes, rows[:, ::2], rows, np.zeros((1, 4), np.int64), 16)
    with pytest.raises(numba.core.errors.TypingError):
        frame = np.zeros((8, 96), np.uint8)
        _sads48x4(simd._sad48x4_psadbw, frame[:, ::2], frame, np.zeros((1, 4), np.int64))
