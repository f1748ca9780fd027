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


@numba.njit
def _absdiffs(absdiff, v, row, offsets):
    g = np.zeros((len(offsets), simd.LANES), np.int32)
    for n in range(len(offsets)):
        for _ in range(2):  # accumulates
            absdiff(g[n], v[n], row, offsets[n])
    return g


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


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32])
def test_absdiff8_accumulates_eight_lanes(dtype):
    rng = np.random.default_rng(1)
    hi = np.iinfo(np.int16).max
    lo = 0 if dtype == np.uint16 else -hi
    row = rng.integers(lo, 2 * hi if dtype == np.uint16 else hi, 100).astype(dtype)  # uint16 past 2**15 too
    v = rng.integers(-hi, hi, 6).astype(np.int32)
    offsets = np.array([0, 1, 5, 40, 91, 92], np.int64)
    want = np.stack([2 * np.abs(int(x) - row[i:i + 8].astype(np.int64)) for x, i in zip(v, offsets)])
    assert _absdiffs(simd._absdiff8_loop, v, row, offsets).tolist() == want.tolist()
    assert _absdiffs(simd.absdiff8, v, row, offsets).tolist() == want.tolist()
    assert not simd.CHECKED and simd.absdiff8 is simd._absdiff8_lanes


@numba.njit
def _absdiff16s(absdiff, a, b, offsets):
    acc = np.zeros(16 * len(offsets), np.int16)
    for n in range(len(offsets)):
        for _ in range(16):  # 16 rows of the largest differences still fit 16 bits
            absdiff(acc, 16 * n, a, offsets[n, 0], b, offsets[n, 1], 16)
    return acc.reshape(len(offsets), 16)


def test_absdiff16n_accumulates_all_sixteen_lanes_in_int16():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 1021, 120).astype(np.int16)  # full-resolution luma R + 2G + B
    b = rng.integers(0, 1021, 120).astype(np.int16)
    a[:16], b[:16] = 1020, 0
    offsets = np.array([[0, 0], [1, 30], [104, 3], [50, 104]], np.int64)
    want = np.stack([16 * np.abs(a[i:i + 16].astype(int) - b[j:j + 16].astype(int)) for i, j in offsets])
    assert want.max() == 16 * 1020
    assert _absdiff16s(simd._absdiff16n_loop, a, b, offsets).tolist() == want.tolist()
    assert _absdiff16s(simd.absdiff16n, a, b, offsets).tolist() == want.tolist()


@numba.njit
def _absdiffns(absdiff, a, b, offsets, n, lanes):
    acc = np.zeros(lanes * len(offsets), np.int32)
    for r in range(len(offsets)):
        for _ in range(10):
            absdiff(acc, lanes * r, a, offsets[r, 0], b, offsets[r, 1], n)
    return acc.reshape(len(offsets), lanes)


@pytest.mark.parametrize(("lanes", "n"), [(16, 6), (16, 10), (16, 16), (8, 6), (8, 8)])
def test_absdiffn_adds_only_its_first_n_lanes_into_32_bits(lanes, n):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 16321, 80).astype(np.int16)  # luma at 1/4 resolution: sums past 2**15
    b = rng.integers(0, 16321, 80).astype(np.int16)
    a[:16], b[:16] = 16320, 0
    offsets = np.array([[0, 0], [5, 33], [64, 2]], np.int64)
    want = np.stack([10 * np.abs(a[i:i + lanes].astype(int) - b[j:j + lanes].astype(int)) for i, j in offsets])
    want[:, n:] = 0
    assert want.max() == 10 * 16320
    loop, vector = (simd._absdiff16n_loop, simd.absdiff16n) if lanes == 16 else (simd._absdiff8n_loop, simd.absdiff8n)
    assert _absdiffns(loop, a, b, offsets, n, lanes).tolist() == want.tolist()
    assert _absdiffns(vector, a, b, offsets, n, lanes).tolist() == want.tolist()


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
        strided = np.arange(40, dtype=np.int16)[::2]
        _absdiffs(simd._absdiff8_lanes, np.zeros(1, np.int32), strided, np.zeros(1, np.int64))
