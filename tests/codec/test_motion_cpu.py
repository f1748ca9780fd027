"""The compiled CPU kernels give the torch searches' fields bit for bit (x264's checkasm, for motion).

CUDA runs the torch versions and the CPU the kernels, so these identities are what makes a field
independent of where it was computed. Each case compares vectors and costs block for block.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from videomemory.codec import motion_cpu
from videomemory.codec.config import GopConfig, MotionConfig
from videomemory.codec.motion import (
    MotionField,
    as_tensor,
    exhaustive_search,
    exhaustive_search_torch,
    fast_search,
    fast_search_torch,
)

LAM = MotionConfig().lam


def assert_same(a: MotionField, b: MotionField) -> None:
    differ = (a.vectors != b.vectors).any(-1) | (a.cost != b.cost)
    assert not bool(differ.any()), f"{int(differ.sum())} of {differ.numel()} blocks differ, first at {differ.nonzero()[0].tolist()}"
    assert torch.equal(a.sad, b.sad)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return (resize(data.coffee(), (700, 900), anti_aliasing=True) * 255).round().astype(np.uint8)


def pair(photo: np.ndarray, dy: int, dx: int, h: int, w: int, seed: int = 0, noise: int = 2):
    rng = np.random.default_rng(seed)
    ref = photo[100 : 100 + h, 150 : 150 + w]
    cur = photo[100 - dy : 100 - dy + h, 150 - dx : 150 - dx + w].copy()
    cur[h // 3 : h // 3 + 24, w // 3 : w // 3 + 24] = photo[20:44, 30:54]  # an object, no match
    jitter = rng.integers(-noise, noise + 1, cur.shape)
    return as_tensor(np.clip(cur.astype(np.int16) + jitter, 0, 255).astype(np.uint8)), as_tensor(ref.copy())


@pytest.mark.parametrize(
    ("dy", "dx", "h", "w", "radius"),
    [(3, -5, 64, 96, 16), (-21, 37, 256, 256, 64), (9, 2, 128, 192, 24), (0, 1, 96, 64, 8), (2, -3, 64, 64, 5),
     (-13, 11, 160, 128, 21)],
)
def test_fast_kernel_equals_the_torch_search(photo, dy, dx, h, w, radius):
    """Shapes, radii that are no multiple of 8 (or below it, where the 1/8 level holds one vector),
    an object with no match and blocks at the edge (the exact search of ambiguous blocks), and the prior."""
    cur, ref = pair(photo, dy, dx, h, w)
    first = fast_search_torch(cur, ref, radius, LAM)
    assert_same(motion_cpu.fast_search(cur, ref, radius, LAM), first)
    cur2, _ = pair(photo, 2 * dy, 2 * dx, h, w, seed=1)
    assert_same(motion_cpu.fast_search(cur2, cur, radius, LAM, prior=first),
                fast_search_torch(cur2, cur, radius, LAM, prior=first))
    # A frame the caller makes an anchor whatever its cost (the exact stage skipped), and one it never does.
    for above in (0.0, 1e9):
        assert_same(motion_cpu.fast_search(cur, ref, radius, LAM, anchor_above=above),
                    fast_search_torch(cur, ref, radius, LAM, anchor_above=above))


def test_frames_that_are_views_of_an_image_give_the_same_fields_without_a_copy(photo):
    """The GOP coder hands the search (3, H, W) views of (H, W, 3) images (no copy): the kernels
    read their memory as it is, and the torch search (whose block views need contiguous planes)
    gives the same field as on contiguous frames."""
    cur, ref = pair(photo, 6, -9, 96, 128)
    cur_v, ref_v = (as_tensor(t.permute(1, 2, 0).contiguous().numpy(), contiguous=False) for t in (cur, ref))
    assert not cur_v.is_contiguous() and torch.equal(cur_v, cur)
    rows = motion_cpu._rows(cur_v)
    assert np.shares_memory(rows, cur_v.numpy()) and np.array_equal(rows, motion_cpu._rows(cur))
    field = fast_search_torch(cur, ref, 24, LAM)
    assert_same(motion_cpu.fast_search(cur_v, ref_v, 24, LAM), field)
    assert_same(fast_search_torch(cur_v, ref_v, 24, LAM), field)
    assert_same(exhaustive_search(cur_v, ref_v, 8, LAM), exhaustive_search_torch(cur_v, ref_v, 8, LAM))


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_each_refinement_step_keeps_torchs_top_list(photo, keep):
    """One refinement step alone, level by level, against torch.topk (the final fields would hide
    a wrong list: the later stages repair most of it). Rings of neighbouring centers share
    vectors, some reach past the window's limit, and some centers come twice (their keys are
    entered again, not costed again), an edge center too (whose SADs stop early)."""
    from videomemory.codec import motion

    radius, by, bx = 24, 4, 6
    cur, ref = (motion_cpu._rows(t) for t in pair(photo, 5, -7, 16 * by, 16 * bx))
    levels_cur, _ = motion_cpu._pyramid(cur)
    levels_ref, _ = motion_cpu._pyramid(ref)
    ycp, yrp, lpad, _, _ = motion_cpu._levels(cur, ref, radius)
    scratch = (np.empty(keep, np.int64), np.empty(9, np.int64), np.empty((4, 9), np.int64))
    rng = np.random.default_rng(keep)
    out = np.zeros((16, 2), np.int64)
    for level in (0, 1, 2):
        scale, ring, limit = 1 << level, 1 if level else 0, radius >> level
        centers = rng.integers(-limit, limit + 1, (by * bx, 4, 2))
        centers[:, 1] = centers[:, 0] + 1
        centers[1::3, 2] = (limit, -limit)  # at the window's corner: single SADs that stop early
        centers[::2, 3] = centers[::2, 0]  # a repeat
        centers[1::4, 3] = centers[1::4, 2]  # a repeat of the corner
        want = motion._refine(torch.from_numpy(levels_cur[level]), torch.from_numpy(levels_ref[level]), scale, ring,
                              4 * scale * scale, LAM, radius, torch.ones(by * bx, dtype=torch.bool),
                              torch.from_numpy(centers), keep)
        lam = motion.stage_lambdas(LAM)[3 - level]
        for b in range(by * bx):
            motion_cpu._refine_block(ycp[level], yrp[level], 16 * (b // bx) // scale, 16 * (b % bx) // scale,
                                     16 // scale, ring, lam, limit, lpad[level], 1, centers[b], 4, keep, out, scratch)
            assert out[:keep].tolist() == want[b].tolist(), (level, b)


@pytest.mark.parametrize(("c", "p", "slack"), [(3, 66, 0), (1, 19, 16), (1, 1, 16), (3, 2, 5)])
def test_pad_replicates_the_edges_and_zeros_the_slack(photo, c, p, slack):
    x = photo[:37, :53, :c].reshape(37, 53 * c)
    want = np.pad(photo[:37, :53, :c], ((p, p), (p, p), (0, 0)), mode="edge").reshape(37 + 2 * p, -1)
    got = motion_cpu._pad(x, p, c, slack)
    assert np.array_equal(got[:, : want.shape[1]], want) and not got[:, want.shape[1] :].any()


def _same_merge(field: MotionField, cur: torch.Tensor, ref: torch.Tensor, lam: int) -> bool:
    """The compiled merge against codec.motion's numpy one -> whether the frame was merged."""
    from videomemory.codec.motion import _merge_global

    want, got = _merge_global(field, cur, ref, lam), motion_cpu.merge_global(field, cur, ref, lam)
    assert (got is field) == (want is field) and got.global_motion == want.global_motion
    assert got.vectors.dtype == want.vectors.dtype == torch.int32
    assert_same(got, want)
    return want is not field


@pytest.mark.parametrize("lam", [1, MotionConfig().merge_lam, 400])
def test_merge_kernel_equals_the_numpy_merge(photo, lam):
    """On searched fields (a pan with an object that has no match, blocks entering at the edges;
    objects over a still background, which keep their field) and on made-up ones: every block the
    mode, a tie between two vectors (the least wins), the mode on under 1/6 of the blocks, no
    motion at all, and vectors whose g points past the frame."""
    rng = np.random.default_rng(lam)
    merged = []
    for dy, dx in ((-21, 37), (5, -3), (0, 0)):
        cur, ref = pair(photo, dy, dx, 128, 192)
        field = fast_search(cur, ref, 64, LAM)
        merged.append(_same_merge(field, cur, ref, lam))
        merged.append(_same_merge(fast_search(ref, ref, 64, LAM), ref, ref, lam))  # no motion
        for case in range(5):
            vec = field.vectors.clone()
            if case == 0:
                vec[:] = torch.tensor([3, -60], dtype=torch.int32)
            elif case == 1:  # a tie: half (2, 1), half (-1, 4)
                vec.view(-1, 2)[0::2] = torch.tensor([2, 1], dtype=torch.int32)
                vec.view(-1, 2)[1::2] = torch.tensor([-1, 4], dtype=torch.int32)
            elif case == 2:  # the mode on 1/7 of the blocks, the rest scattered or still
                vec = torch.from_numpy(rng.integers(-64, 65, vec.shape).astype(np.int32))
                vec.view(-1, 2)[::7] = torch.tensor([7, 7], dtype=torch.int32)
            elif case == 3:
                vec = torch.from_numpy(rng.integers(-2, 3, vec.shape).astype(np.int32))
            sad = torch.from_numpy(rng.integers(0, 20_000, field.sad.shape)) if case >= 3 else field.sad
            made = MotionField(vec, sad + LAM * vec.long().abs().sum(-1), sad)
            merged.append(_same_merge(made, cur, ref, lam))
    assert any(merged) and not all(merged)


def test_texture_kernel_equals_the_torch_texture(photo):
    """The kernel sums a row's differences in overlapping 16-value SADs and takes back what they
    share; every block, the frame's last column and row too, against codec.motion.texture."""
    from videomemory.codec.motion import texture

    frame, _ = pair(photo, 3, 5, 80, 112, noise=40)
    want = texture(frame).reshape(-1).tolist()
    rows = motion_cpu._rows(frame)
    assert [motion_cpu._texture(rows, b) for b in range(len(want))] == want
    # the frame's detail (the scene rule's denominator) from a view of an (H, W, 3) image, as the encoder passes it
    from videomemory.codec.motion import as_tensor, detail

    view = as_tensor(np.ascontiguousarray(frame.permute(1, 2, 0).numpy()), contiguous=False)
    assert detail(view) == detail(frame) == sum(want) > 0


def _plain_boxes(refp: np.ndarray, y0: int, y1: int, x0: int, x1: int):
    """The exact stage's box sums and tile ranges the plain way (numpy, every position): 4x4 and
    8x8 sums per channel of the padded reference's rows y0..y1, columns x0..x1 (zeros right of it),
    and the least and greatest 16x16 and 8x8 sum over each tile of 8 x 8 positions."""
    hp, wp = y1 - y0, x1 - x0
    width = wp + motion_cpu._LANES + 16
    plane = np.zeros((3, hp, width), np.int64)
    plane[:, :, :wp] = refp[y0:y1, 3 * x0 : 3 * x1].reshape(hp, wp, 3).transpose(2, 0, 1)

    def sums(a: np.ndarray, n: int) -> np.ndarray:
        return np.lib.stride_tricks.sliding_window_view(a, (n, n), axis=(1, 2)).sum((3, 4))

    def ranges(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ty, tx = -(-a.shape[1] // 8), -(-a.shape[2] // 8)
        e = np.pad(a, ((0, 0), (0, 8 * ty - a.shape[1]), (0, 8 * tx - a.shape[2])), mode="edge").reshape(3, ty, 8, tx, 8)
        return e.min((2, 4)), e.max((2, 4))

    b4, b8 = sums(plane, 4), sums(plane, 8)
    return b4, b8, ranges(sums(plane, 16)[:, : b8.shape[1] - 8, : b8.shape[2] - 8]) + ranges(b8)


@pytest.mark.parametrize("radius", [64, 21])
def test_box_sums_and_tile_ranges_are_right_wherever_the_exact_stage_reads_them(photo, radius):
    """``_boxes`` makes only the bands and columns that the ambiguous blocks' windows reach. For
    a scattered few (corners, an edge, the middle, two in one row far apart), every sum and range
    their vectors' bounds read (a window of 2r + 1 vector positions, plus the 4x4 sums' 12 px and
    the 8x8 tile ranges' tile after the last) equals the plain one."""
    by, bx = 12, 16
    ref = motion_cpu._rows(pair(photo, 0, 0, 16 * by, 16 * bx)[1])
    pad = radius + 2  # as search pads
    refp = motion_cpu._pad(ref, pad, 3)
    amb = np.zeros(by * bx, np.bool_)
    for y, x in [(0, 0), (by - 1, bx - 1), (5, 7), (2, 1), (2, 14), (9, 0), (11, 6)]:
        amb[y * bx + x] = True
    y0, y1, x0, x1, spans = motion_cpu._reach(amb, bx, radius, pad, refp.shape[0], refp.shape[1] // 3)
    b4, b8, (mn16, mx16, mn8, mx8) = motion_cpu._boxes(refp, y0, y1, x0, x1, spans)
    p4, p8, (pmn16, pmx16, pmn8, pmx8) = _plain_boxes(refp, y0, y1, x0, x1)
    y_min, x_min = min(np.flatnonzero(amb) // bx) * 16, min(np.flatnonzero(amb) % bx) * 16
    n_tiles = (2 * radius + 8) // 8
    for b in np.flatnonzero(amb):
        a, c = (b // bx) * 16 - y_min, (b % bx) * 16 - x_min  # its window's first row and column in the sums
        reads = [(b4, p4, a, c, 2 * radius + 13), (b8, p8, a, c, 2 * radius + 9),
                 (mn16, pmn16, a // 8, c // 8, n_tiles), (mx16, pmx16, a // 8, c // 8, n_tiles),
                 (mn8, pmn8, a // 8, c // 8, n_tiles + 1), (mx8, pmx8, a // 8, c // 8, n_tiles + 1)]
        for k, (arr, plain, r, q, n) in enumerate(reads):
            region = arr[:, r : r + n, q : q + n]
            assert region.size and np.array_equal(region, plain[:, r : r + n, q : q + n]), (int(b), k)


@pytest.mark.parametrize(("coarse_top", "keep"), [(4, 3), (2, 1)])
def test_other_candidate_counts_keep_the_identity(photo, monkeypatch, coarse_top, keep):
    """The kernels read the candidate counts at each call; the refinement's top list has a
    branch-free form for 2 and a general one for the rest, which must agree with torch.topk too."""
    from videomemory.codec import motion

    monkeypatch.setattr(motion, "_COARSE_TOP", coarse_top)
    monkeypatch.setattr(motion, "_KEEP", keep)
    cur, ref = pair(photo, -9, 14, 96, 128)
    assert_same(motion_cpu.fast_search(cur, ref, 24, LAM), fast_search_torch(cur, ref, 24, LAM))


@pytest.mark.parametrize("trust", [8, 1, 0])
def test_kernel_and_torch_trust_the_same_priors(photo, monkeypatch, trust):
    """Priors right, one px off and wrong, trusted at several thresholds (0: never)."""
    from videomemory.codec import motion

    monkeypatch.setattr(motion, "_TRUST_PRIOR", trust)
    cur, ref = pair(photo, -5, 7, 96, 128)
    prior = fast_search_torch(cur, ref, 24, LAM)
    v = prior.vectors.clone()
    v[::2, ::3] += 1
    v[1::3, 1::2] = 0
    prior = MotionField(v, prior.cost, prior.sad)
    assert_same(motion_cpu.fast_search(cur, ref, 24, LAM, prior), fast_search_torch(cur, ref, 24, LAM, prior))


def test_fast_kernel_equals_the_torch_search_on_generated_video(tmp_path):
    """Consecutive sampled frames of every motion class at 512x512, each with the previous field as
    prior and gamma as the anchor threshold, as the encoder calls it."""
    from videomemory.bench import synth
    from videomemory.codec.decode import sample_frames

    size = (512, 512)
    for name in ("mixed", "objects"):
        truth = synth.write_video(tmp_path / f"{name}.mp4", synth.preset(name, size, 6.0, seed=3), size, 10.0, seed=3)
        frames = [as_tensor(f.image) for f in sample_frames(truth.path, fps=2.0)]
        prior, gamma = None, GopConfig().gamma_per_block
        for cur, ref in zip(frames[1:], frames):
            expected = fast_search_torch(cur, ref, 64, LAM, prior, anchor_above=gamma)
            assert_same(fast_search(cur, ref, 64, LAM, prior, anchor_above=gamma), expected)
            prior = expected


def test_kernel_and_torch_relook_the_same_blocks(tmp_path, monkeypatch):
    """_RELOOK: after the walk, blocks their vector predicts poorly try the neighbours' final
    vectors. On the `cuts` preset it lowers some blocks' costs (a block beside the astronaut's pan
    kept a vector costing 3,874 where the pan's cost 48), the same blocks in both searches."""
    from videomemory.bench import synth
    from videomemory.codec import motion
    from videomemory.codec.decode import sample_frames

    size = (512, 512)
    truth = synth.write_video(tmp_path / "cuts.mp4", synth.preset("cuts", size, 6.0, seed=1), size, 10.0, seed=1)
    frames = [as_tensor(f.image) for f in sample_frames(truth.path, fps=2.0)]
    lowered = 0
    prior = None
    for cur, ref in zip(frames[1:], frames):
        monkeypatch.setattr(motion, "_RELOOK", 0)
        without = fast_search(cur, ref, 64, LAM, prior)
        monkeypatch.setattr(motion, "_RELOOK", 8)
        expected = fast_search_torch(cur, ref, 64, LAM, prior)
        field = fast_search(cur, ref, 64, LAM, prior)
        assert_same(field, expected)
        assert bool((field.cost <= without.cost).all())
        lowered += int((field.cost < without.cost).sum())
        prior = field
    assert lowered >= 2


def test_static_and_flat_frames(photo):
    cur, _ = pair(photo, 0, 0, 64, 64)
    assert_same(motion_cpu.fast_search(cur, cur, 16, LAM), fast_search_torch(cur, cur, 16, LAM))
    flat = torch.full((3, 64, 96), 128, dtype=torch.uint8)
    lit = flat.clone()
    lit[:, 10:20, 40:50] += 3
    assert_same(motion_cpu.fast_search(lit, flat, 16, LAM), fast_search_torch(lit, flat, 16, LAM))


@pytest.mark.parametrize(("dy", "dx", "radius"), [(4, -7, 12), (-9, 3, 9)])
def test_exhaustive_kernel_equals_the_torch_search(photo, dy, dx, radius):
    cur, ref = pair(photo, dy, dx, 64, 96)
    assert_same(exhaustive_search(cur, ref, radius, LAM), exhaustive_search_torch(cur, ref, radius, LAM))


def test_the_cpu_dispatches_to_the_kernels(photo, monkeypatch):
    cur, ref = pair(photo, 1, 1, 64, 64)
    monkeypatch.setattr(motion_cpu, "fast_search", lambda *a: "kernel")
    monkeypatch.setattr(motion_cpu, "exhaustive_search", lambda *a: "exhaustive kernel")
    assert fast_search(cur, ref, 8, LAM) == "kernel"
    assert exhaustive_search(cur, ref, 8, LAM) == "exhaustive kernel"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_keeps_freed_search_buffers_for_reuse():
    # Without it every search page-faults its ~10 MB of padded frames and pyramids in again.
    assert motion_cpu.MALLOC_TUNED
    assert motion_cpu._keep_freed_memory()  # glibc accepts both thresholds (mallopt returns 0 past its maximum)


_BOUNDS_SCRIPT = """
import numpy as np, torch
from videomemory.codec import motion, motion_cpu
rng = np.random.default_rng(0)
for h, w, r in [(64, 64, 64), (32, 96, 9), (96, 32, 7), (64, 128, 5), (32, 32, 40)]:
    ref = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
    cur = torch.roll(ref, (3, -5), (1, 2)).clone()
    cur[:, :8, :8] = 128  # flat, and no match
    prior = motion_cpu.fast_search(ref, cur, r, 4)
    fast = motion_cpu.fast_search(cur, ref, r, 4, prior=prior)
    assert torch.equal(fast.cost, motion.fast_search_torch(cur, ref, r, 4, prior=prior).cost)
    assert torch.equal(motion_cpu.merge_global(fast, cur, ref, 32).cost, motion._merge_global(fast, cur, ref, 32).cost)
    motion_cpu.exhaustive_search(cur, ref, r, 4)
print("ok")
"""


def test_the_kernels_stay_inside_their_arrays(tmp_path):
    """The kernels skip bounds checks for speed; here numba checks every index (a fresh cache, so
    they compile with the checks) on shapes whose window reaches past the frame on every side."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", _BOUNDS_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_warm_compiles_or_loads_every_kernel_the_coder_calls():
    # The CLI warms the kernels before it times a video (the first run after an install compiles
    # them for 15-40 s); a kernel warm() missed would be compiled inside the first video's timing.
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from videomemory.codec import motion_cpu as m\n"
        "from skimage import data\n"
        "kernels = [m.search, m._detail, m._interleave, m._merge]  # what Python calls; each compiles all it calls\n"
        "assert not any(k.signatures for k in kernels)\n"
        "assert m.warm() >= 0\n"
        "warmed = [list(k.signatures) for k in kernels]\n"
        "photo = torch.from_numpy(data.astronaut()[:256, :256].copy()).permute(2, 0, 1).contiguous()\n"
        "moved = torch.roll(photo, (5, -9), dims=(1, 2))\n"
        "field = m.fast_search(moved, photo, 64, 4, prior=m.fast_search(moved, photo, 64, 4), anchor_above=8000.0)\n"
        "assert m.merge_global(field, moved, photo, 32).global_motion == (-5, 9)\n"
        "m.detail(moved)\n"
        "print(all(warmed) and [list(k.signatures) for k in kernels] == warmed)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "True", (run.stdout, run.stderr[-2000:])


def test_cached_kernels_are_dropped_when_a_file_they_inline_changes(tmp_path):
    # numba would serve a kernel compiled before an edit of codec.simd (or of motion's constants).
    old = tmp_path / "motion_cpu.search-1.py311.nbi"
    old.write_bytes(b"stale")
    (tmp_path / "motion_cpu.deps").write_text("digest of older files")
    other = tmp_path / "residual.rebuild-1.py311.nbi"  # another module's cache is not ours to drop
    other.write_bytes(b"fine")
    assert motion_cpu._forget_stale_kernels(tmp_path)
    assert not old.exists() and other.exists()
    kept = tmp_path / "motion_cpu.search-1.py311.nbc"
    kept.write_bytes(b"compiled from these files")
    assert not motion_cpu._forget_stale_kernels(tmp_path)  # same files: the cache stays
    assert kept.exists()
