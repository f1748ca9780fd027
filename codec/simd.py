"""SIMD primitives for the numba kernels of ``codec.motion_cpu``, where LLVM's auto-vectoriser
does not find them.

* ``sad16(a, i, b, j)``: the sum of |a[i + k] - b[j + k]| over k < 16, for 1-D uint8 arrays. On
  x86-64 one ``psadbw`` (SSE2, which every x86-64 CPU has); numba compiles the plain loop to
  16-bit lanes at about half the speed.
* ``sad48x4(a, ay, ax, b, by, bx)``: the SAD of 4 rows of 48 values (a block's 4 rows of 16 RGB
  px) of 2-D uint8 arrays, from (ay, ax) in ``a`` and (by, bx) in ``b``: 12 ``psadbw`` whose
  partial sums add as vectors, one horizontal add at the end (as 3 ``sad16`` per row, every
  psadbw's two halves were extracted and added one by one).
* ``gap8x8(g, init, pairs, box, y, x)`` and ``gap4x4(g, band, init, pairs, box, y, x)``: the exact
  stage's lower bounds for the 8 vectors of a tile's row at once: ``g[k] = init[k] + sum over the
  block's sub-blocks (i, j) and channels c of |sums[i, j, c] - box[c, y + s*i, x + s*j + k]|``,
  s = 8 (2 x 2 sub-blocks) or 4 (4 x 4; ``band[i]`` also gets band i's part), returning the least
  of ``g``; ``pair_sums`` lays the sums out as ``pairs`` once per block. One function (LLVM
  vector IR, any CPU) that keeps the sums in a register: as calls that each added into ``g`` in
  memory, every add waited on the last one's store. It works in 16 lanes of 16 bits, two
  sub-blocks 8 (or 4 + 4) columns apart per row of windows, and widens to 32 bits once per band:
  half the instructions of 8 lanes of 32 bits. The plain loops stay scalar: LLVM cannot rule out
  that ``g`` and ``box`` overlap.
* ``ring9(out, cur, cy, cx, ref, ry, rx, s)``: the refinement's 9 SADs of the s x s window of
  int16 ``cur`` at (cy, cx) against ``ref`` at (ry + a, rx + b), a, b < 3, into ``out[3a + b]``:
  one pass over the rows with the 9 sums in registers, in 16 lanes of 16 bits for the full and
  1/2 levels (s = 16, 10) and 8 of 32 bits for the 1/4 level (s = 6). It reads 16 (8) columns,
  so rows need that slack. As adds into memory it was 3.5% slower on pans (the sums' loads and
  stores, and a lane mask on every row).
* ``le_mask64(a, i, b, j)``: a uint64 whose bit k is ``a[i + k] <= b[j + k]``, k < 64, for int32
  arrays: one vector compare, its lanes packed to a mask (the plain loop branches on every lane).
  ``lowest_bit(m)`` is the index of a nonzero mask's lowest set bit (``tzcnt``); with
  ``m &= m - 1`` a loop visits just the set bits.

When numba checks bounds (``NUMBA_BOUNDSCHECK=1``, as a test runs the kernels), and for
``sad16`` on other CPUs, the plain loops stand in: the intrinsics read memory unchecked. Both
forms give the same results, which tests check.
"""

from __future__ import annotations

import platform

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_PSADBW = "llvm.x86.sse2.psad.bw"
LANES = 8  # lanes of gap8x8 and gap4x4


def _contiguous(*arrays) -> bool:
    """Whether the intrinsics may read these numba array types as flat memory: 1-D and C-contiguous
    (a row of a C array is; a strided slice is not, and then typing fails instead of misreading)."""
    return all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" for t in arrays)


def _rows(dtype, *arrays) -> bool:
    """Whether these numba array types are 2-D, C-contiguous and of ``dtype``: rows the intrinsics
    may read at a row stride (a strided view fails typing instead of being misread)."""
    return all(isinstance(t, types.Array) and t.ndim == 2 and t.layout == "C" and t.dtype == dtype for t in arrays)


def _load(builder, context, arr_type, arr, index, vec):
    """Load ``vec`` (an LLVM vector type) from element ``index`` of a numba array, unaligned."""
    data = context.make_array(arr_type)(context, builder, arr).data
    return builder.load(builder.bitcast(builder.gep(data, [index]), vec.as_pointer()), align=1)


def _load_at(builder, context, arr_type, arr, y, x, vec):
    """Load ``vec`` from element [y, x] of a 2-D C-contiguous numba array (y, x: i64), unaligned."""
    i64 = ir.IntType(64)
    array = context.make_array(arr_type)(context, builder, arr)
    stride = cgutils.unpack_tuple(builder, array.strides, 2)[0]
    offset = builder.add(builder.mul(y, stride), builder.mul(x, ir.Constant(i64, arr_type.dtype.bitwidth // 8)))
    at = builder.add(builder.ptrtoint(array.data, i64), offset)
    return builder.load(builder.inttoptr(at, vec.as_pointer()), align=1)


def _psadbw(builder):
    """The psadbw intrinsic (two 64-bit sums of 8 |differences| of 16 uint8 lanes each)."""
    v16, v2 = ir.VectorType(ir.IntType(8), 16), ir.VectorType(ir.IntType(64), 2)
    module = builder.module
    return module.globals.get(_PSADBW) or ir.Function(module, ir.FunctionType(v2, [v16, v16]), _PSADBW)


def _abs(builder, x):
    """Lane-wise |x| (llvm.abs, defined for the most negative value as wrapping)."""
    module, name = builder.module, f"llvm.abs.v{x.type.count}i{x.type.element.width}"
    fn = module.globals.get(name) or ir.Function(module, ir.FunctionType(x.type, [x.type, ir.IntType(1)]), name)
    return builder.call(fn, [x, ir.Constant(ir.IntType(1), 0)])


@intrinsic
def _psadbw16(typingctx, a, i, b, j):
    """One psadbw over a[i:i+16] and b[j:j+16] (uint8, C-contiguous, unchecked) -> int64."""
    if not _contiguous(a, b):
        return None
    sig = types.int64(a, i, b, j)

    def codegen(context, builder, signature, args):
        v16 = ir.VectorType(ir.IntType(8), 16)
        load = [_load(builder, context, signature.args[n], args[n], args[n + 1], v16) for n in (0, 2)]
        halves = builder.call(_psadbw(builder), load)  # two 64-bit sums of 8 |differences| each
        lo = builder.extract_element(halves, ir.Constant(ir.IntType(32), 0))
        hi = builder.extract_element(halves, ir.Constant(ir.IntType(32), 1))
        return builder.add(lo, hi)

    return sig, codegen


@numba.njit(inline="always", cache=True, nogil=True)
def _sad16_psadbw(a, i, b, j):
    """sum |a[i:i+16] - b[j:j+16]| in one psadbw."""
    return _psadbw16(a, i, b, j)


@numba.njit(inline="always", cache=True, nogil=True)
def _sad16_loop(a, i, b, j):
    """sum |a[i:i+16] - b[j:j+16]| as a plain loop (any CPU, bounds-checkable)."""
    t = 0
    for k in range(16):
        p, q = a[i + k], b[j + k]
        t += max(p, q) - min(p, q)
    return t


@intrinsic
def _psadbw48x4(typingctx, a, ay, ax, b, by, bx):
    """psadbw over 4 rows of 48 values of 2-D uint8 ``a`` from (ay, ax) and ``b`` from (by, bx)
    (C-contiguous, unchecked) -> int64: 12 psadbw whose halves add as vectors, one sum at the end."""
    if not _rows(types.uint8, a, b):
        return None
    sig = types.int64(a, ay, ax, b, by, bx)

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        v16 = ir.VectorType(ir.IntType(8), 16)

        def at(n, u, k):  # 16 values of array n (0: a, 3: b), row u of the 4, column k of the 48
            y, x = builder.add(args[n + 1], ir.Constant(i64, u)), builder.add(args[n + 2], ir.Constant(i64, k))
            return _load_at(builder, context, signature.args[n], args[n], y, x, v16)

        total = None
        for u in range(4):
            for k in (0, 16, 32):
                halves = builder.call(_psadbw(builder), [at(0, u, k), at(3, u, k)])
                total = halves if total is None else builder.add(total, halves)
        return builder.add(builder.extract_element(total, ir.Constant(i32, 0)),
                           builder.extract_element(total, ir.Constant(i32, 1)))

    return sig, codegen


@numba.njit(inline="always", cache=True, nogil=True)
def _sad48x4_psadbw(a, ay, ax, b, by, bx):
    """``sad48x4`` in 12 psadbw."""
    return _psadbw48x4(a, ay, ax, b, by, bx)


@numba.njit(inline="always", cache=True, nogil=True)
def _sad48x4_loop(a, ay, ax, b, by, bx):
    """``sad48x4`` as plain loops."""
    t = 0
    for u in range(4):
        for k in range(48):
            p, q = a[ay + u, ax + k], b[by + u, bx + k]
            t += max(p, q) - min(p, q)
    return t


def _gap_intrinsic(n: int, size: int, banded: bool):
    """The intrinsic of ``gap8x8`` (n = 2, size = 8: (g, init, pairs, box, y, x)) or ``gap4x4``
    (n = 4, size = 4, ``banded``: (g, band, init, pairs, box, y, x)) -> the least of g, unrolled
    over the n x n sub-blocks and 3 channels (g, init int32 (8,); band int32 (n, 8); pairs int16
    (n, 3, n / 2, 16) from ``pair_sums``; box int16 (3, H, W); all C-contiguous; unchecked).

    Sums and windows lie in [0, size * size * 255], so a difference fits 16 bits and so do the
    3 * n / 2 of them that add into one 16-lane row before its halves widen to 32 bits (at most
    48,960 for 8x8, added as unsigned)."""
    half = n // 2  # 16-bit loads per row and channel: each covers sub-blocks q and q + n / 2

    def typer(g, band, init, pairs, box):
        int32_arrays = all(isinstance(t, types.Array) and t.layout == "C" and t.dtype == types.int32
                           for t in (g, band, init))
        int16_arrays = all(isinstance(t, types.Array) and t.layout == "C" and t.dtype == types.int16
                           for t in (pairs, box))
        return (int32_arrays and int16_arrays and pairs.ndim == 4 and box.ndim == 3 and g.ndim == init.ndim == 1
                and band.ndim == 2)

    def codegen(context, builder, signature, args):
        if not banded:  # no band: g stands in for it in the argument list
            signature, args = types.int64(signature.args[0], *signature.args), (args[0], *args)
        tg, tband, tinit, tpairs, tbox, _, _ = signature.args
        i16, i32, i64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)
        v8, v16h = ir.VectorType(i32, LANES), ir.VectorType(i16, 2 * LANES)
        boxes = context.make_array(tbox)(context, builder, args[4])
        stride_c, stride_y, _ = cgutils.unpack_tuple(builder, boxes.strides, 3)
        base = builder.ptrtoint(boxes.data, i64)
        y, x = args[5], args[6]
        total = _load(builder, context, tinit, args[2], ir.Constant(i64, 0), v8)
        low = ir.Constant(ir.VectorType(i32, LANES), list(range(LANES)))
        high = ir.Constant(ir.VectorType(i32, LANES), list(range(LANES, 2 * LANES)))
        for i in range(n):
            acc = None
            for ch in range(3):
                row = builder.add(builder.mul(ir.Constant(i64, ch), stride_c),
                                  builder.mul(builder.add(y, ir.Constant(i64, size * i)), stride_y))
                for q in range(half):
                    col = builder.mul(builder.add(x, ir.Constant(i64, size * q)), ir.Constant(i64, 2))
                    ptr = builder.inttoptr(builder.add(base, builder.add(row, col)), v16h.as_pointer())
                    v = builder.load(ptr, align=1)
                    at = ir.Constant(i64, ((i * 3 + ch) * half + q) * 2 * LANES)
                    s = _load(builder, context, tpairs, args[3], at, v16h)
                    d = _abs(builder, builder.sub(s, v))
                    acc = d if acc is None else builder.add(acc, d)
            undef = ir.Constant(v16h, ir.Undefined)
            part = builder.add(builder.zext(builder.shuffle_vector(acc, undef, low), v8),
                               builder.zext(builder.shuffle_vector(acc, undef, high), v8))
            if banded:
                band_data = context.make_array(tband)(context, builder, args[1]).data
                row_ptr = builder.gep(band_data, [ir.Constant(i64, i * LANES)])
                builder.store(part, builder.bitcast(row_ptr, v8.as_pointer()), align=1)
            total = builder.add(total, part)
        g_data = context.make_array(tg)(context, builder, args[0]).data
        builder.store(total, builder.bitcast(g_data, v8.as_pointer()), align=1)
        module = builder.module
        name = "llvm.vector.reduce.smin.v8i32"
        fn = module.globals.get(name) or ir.Function(module, ir.FunctionType(i32, [v8]), name)
        return builder.sext(builder.call(fn, [total]), i64)

    if banded:
        @intrinsic
        def gap(typingctx, g, band, init, pairs, box, y, x):
            return (types.int64(g, band, init, pairs, box, y, x), codegen) if typer(g, band, init, pairs, box) else None
    else:
        @intrinsic
        def gap(typingctx, g, init, pairs, box, y, x):
            return (types.int64(g, init, pairs, box, y, x), codegen) if typer(g, g.copy(ndim=2), init, pairs, box) else None
    return gap


_gap8x8_vector = _gap_intrinsic(2, 8, banded=False)
_gap4x4_vector = _gap_intrinsic(4, 4, banded=True)


@numba.njit(inline="always", cache=True, nogil=True)
def _gap8x8_lanes(g, init, pairs, box, y, x):
    """``gap8x8`` in vector registers."""
    return _gap8x8_vector(g, init, pairs, box, y, x)


@numba.njit(inline="always", cache=True, nogil=True)
def _gap4x4_lanes(g, band, init, pairs, box, y, x):
    """``gap4x4`` in vector registers."""
    return _gap4x4_vector(g, band, init, pairs, box, y, x)


@numba.njit(inline="always", cache=True, nogil=True)
def pair_sums(pairs, sums):
    """Lay a block's n x n sub-block sums (int32 (n, n, 3)) out as ``gap8x8`` and ``gap4x4`` read
    them: ``pairs[i, c, q]`` (int16 (n, 3, n / 2, 16)) holds sums[i, q, c] in lanes 0-7 and
    sums[i, q + n / 2, c] in lanes 8-15, the sub-blocks that one 16-lane row of windows meets."""
    n = sums.shape[0]
    for i in range(n):
        for c in range(3):
            for q in range(n // 2):
                for k in range(LANES):
                    pairs[i, c, q, k] = sums[i, q, c]
                    pairs[i, c, q, LANES + k] = sums[i, q + n // 2, c]


@numba.njit(inline="always", cache=True, nogil=True)
def _gap_loop(g, band, init, pairs, box, y, x, n, size, banded):
    """The gaps as plain loops (into ``band`` rows too when ``banded``) -> the least of g."""
    for k in range(LANES):
        g[k] = init[k]
    for i in range(n):
        for k in range(LANES):
            if banded:
                band[i, k] = 0
        for ch in range(3):
            row = box[ch, y + size * i]
            for j in range(n):
                q, h = j % (n // 2), j // (n // 2)
                for k in range(LANES):
                    d = abs(np.int32(pairs[i, ch, q, LANES * h + k]) - np.int32(row[x + size * j + k]))
                    if banded:
                        band[i, k] += d
                    else:
                        g[k] += d
        if banded:
            for k in range(LANES):
                g[k] += band[i, k]
    least = g[0]
    for k in range(1, LANES):
        least = min(least, g[k])
    return least


@numba.njit(inline="always", cache=True, nogil=True)
def _gap8x8_loop(g, init, pairs, box, y, x):
    """``gap8x8`` as plain loops."""
    return _gap_loop(g, g.reshape((1, LANES)), init, pairs, box, y, x, 2, 8, False)


@numba.njit(inline="always", cache=True, nogil=True)
def _gap4x4_loop(g, band, init, pairs, box, y, x):
    """``gap4x4`` as plain loops."""
    return _gap_loop(g, band, init, pairs, box, y, x, 4, 4, True)


# The luma levels' rings: (s, lanes, accumulator bits). A lane sums s rows of |differences| of
# level px of at most 1,020 (full resolution), 4,080 (1/2) and 16,320 (1/4): 16 rows of 1,020
# fit 16 signed bits, 10 of 4,080 (40,800) 16 unsigned ones, 6 of 16,320 need 32.
RING_SHAPES = ((16, 16, 16), (10, 16, 16), (6, 8, 32))


def _ring9_intrinsic(s: int, lanes: int, bits: int):
    """The intrinsic of ``ring9`` for windows of s x s (out int64 (9,); cur, ref int16 (H, W),
    C-contiguous, read ``lanes`` columns from cx (rx + b); unchecked): the 9 sums stay in
    registers through the rows, and lanes past s are dropped once, at the end."""

    @intrinsic
    def ring(typingctx, out, cur, cy, cx, ref, ry, rx):
        if not (_contiguous(out) and out.dtype == types.int64 and _rows(types.int16, cur, ref)):
            return None
        sig = types.void(out, cur, cy, cx, ref, ry, rx)

        def codegen(context, builder, signature, args):
            i16, i32, i64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)
            vrow, vacc = ir.VectorType(i16, lanes), ir.VectorType(ir.IntType(bits), lanes)
            vsum = ir.VectorType(i32, lanes)

            def row_at(n, y, x):  # the vector of row y of array n (1: cur, 4: ref) from column x
                v = _load_at(builder, context, signature.args[n], args[n], y, x, vrow)
                return builder.sext(v, vacc) if bits > 16 else v

            cy, cx, ry, rx = args[2], args[3], args[5], args[6]
            acc = [ir.Constant(vacc, [0] * lanes)] * 9
            for u in range(s):
                c = row_at(1, builder.add(cy, ir.Constant(i64, u)), cx)
                for a in range(3):
                    for b in range(3):
                        r = row_at(4, builder.add(ry, ir.Constant(i64, a + u)), builder.add(rx, ir.Constant(i64, b)))
                        acc[3 * a + b] = builder.add(acc[3 * a + b], _abs(builder, builder.sub(c, r)))
            used = ir.Constant(ir.VectorType(ir.IntType(1), lanes), [int(m < s) for m in range(lanes)])
            module = builder.module
            name = f"llvm.vector.reduce.add.v{lanes}i32"
            reduce = module.globals.get(name) or ir.Function(module, ir.FunctionType(i32, [vsum]), name)
            out_data = context.make_array(signature.args[0])(context, builder, args[0]).data
            for k in range(9):
                v = builder.select(used, acc[k], ir.Constant(vacc, [0] * lanes)) if s < lanes else acc[k]
                if bits == 16:  # the sums as unsigned
                    v = builder.zext(v, vsum)
                total = builder.zext(builder.call(reduce, [v]), i64)
                builder.store(total, builder.gep(out_data, [ir.Constant(i64, k)]))
            return context.get_dummy_value()

        return sig, codegen

    return ring


_ring9_16 = _ring9_intrinsic(*RING_SHAPES[0])
_ring9_10 = _ring9_intrinsic(*RING_SHAPES[1])
_ring9_6 = _ring9_intrinsic(*RING_SHAPES[2])


@numba.njit(inline="always", cache=True, nogil=True)
def _ring9_loop(out, cur, cy, cx, ref, ry, rx, s):
    """``ring9`` as plain loops (any s; reads only the s x s windows)."""
    for a in range(3):
        for b in range(3):
            t = 0
            for u in range(s):
                c, r = cur[cy + u], ref[ry + a + u]
                for m in range(s):
                    t += abs(np.int64(c[cx + m]) - np.int64(r[rx + b + m]))
            out[3 * a + b] = t


@numba.njit(inline="always", cache=True, nogil=True)
def _ring9_lanes(out, cur, cy, cx, ref, ry, rx, s):
    """``ring9`` in vector registers for the levels' s (16, 10, 6), plain loops for any other."""
    if s == 16:
        _ring9_16(out, cur, cy, cx, ref, ry, rx)
    elif s == 10:
        _ring9_10(out, cur, cy, cx, ref, ry, rx)
    elif s == 6:
        _ring9_6(out, cur, cy, cx, ref, ry, rx)
    else:
        _ring9_loop(out, cur, cy, cx, ref, ry, rx, s)


@intrinsic
def _le_mask64_vector(typingctx, a, i, b, j):
    """Bits a[i + k] <= b[j + k], k < 64 (a, b int32, C-contiguous; unchecked) -> uint64."""
    if not (_contiguous(a, b) and a.dtype == b.dtype == types.int32):
        return None
    sig = types.uint64(a, i, b, j)

    def codegen(context, builder, signature, args):
        v64 = ir.VectorType(ir.IntType(32), 64)
        x = _load(builder, context, signature.args[0], args[0], args[1], v64)
        y = _load(builder, context, signature.args[2], args[2], args[3], v64)
        return builder.bitcast(builder.icmp_signed("<=", x, y), ir.IntType(64))

    return sig, codegen


@numba.njit(inline="always", cache=True, nogil=True)
def _le_mask64_lanes(a, i, b, j):
    """Bits a[i + k] <= b[j + k], k < 64, from one vector compare."""
    return _le_mask64_vector(a, i, b, j)


@numba.njit(inline="always", cache=True, nogil=True)
def _le_mask64_loop(a, i, b, j):
    """Bits a[i + k] <= b[j + k], k < 64, as a plain loop."""
    m = np.uint64(0)
    for k in range(64):
        if a[i + k] <= b[j + k]:
            m |= np.uint64(1) << np.uint64(k)
    return m


@intrinsic
def _cttz64(typingctx, m):
    """The index of the lowest set bit of a nonzero uint64 (llvm.cttz)."""
    if m != types.uint64:
        return None
    sig = types.int64(m)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        module = builder.module
        fn = module.globals.get("llvm.cttz.i64") or ir.Function(
            module, ir.FunctionType(i64, [i64, ir.IntType(1)]), "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return sig, codegen


@numba.njit(inline="always", cache=True, nogil=True)
def lowest_bit(m):
    """The index of the lowest set bit of a nonzero uint64 mask."""
    return _cttz64(m)


CHECKED = bool(numba.config.BOUNDSCHECK)  # numba checks indices: plain loops, whose indices it sees
HAS_PSADBW = platform.machine().lower() in ("x86_64", "amd64") and not CHECKED
sad16 = _sad16_psadbw if HAS_PSADBW else _sad16_loop
sad48x4 = _sad48x4_psadbw if HAS_PSADBW else _sad48x4_loop
gap8x8 = _gap8x8_loop if CHECKED else _gap8x8_lanes
gap4x4 = _gap4x4_loop if CHECKED else _gap4x4_lanes
ring9 = _ring9_loop if CHECKED else _ring9_lanes
le_mask64 = _le_mask64_loop if CHECKED else _le_mask64_lanes
