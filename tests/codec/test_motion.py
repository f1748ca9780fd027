"""Motion search: known shifts of real photographs, fast vs exhaustive, device parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from videomemory.codec.config import MotionConfig
from videomemory.codec.motion import as_tensor, estimate_motion, exhaustive_search, fast_search, merge_global

LAM = MotionConfig().lam


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A large real photograph (textured: hair, fabric, flag) to cut frames from."""
    return (resize(data.astronaut(), (900, 900), anti_aliasing=True) * 255).round().astype(np.uint8)


def shifted_pair(photo: np.ndarray, dx: int, dy: int, size: int = 256, noise: int = 1, seed: int = 0):
    """(cur, ref): the content of ``ref`` moved by (dx, dy) px in ``cur``, with light noise."""
    rng = np.random.default_rng(seed)
    y0 = x0 = 200
    ref = photo[y0 : y0 + size, x0 : x0 + size]
    cur = photo[y0 - dy : y0 - dy + size, x0 - dx : x0 - dx + size]

    def noisy(a: np.ndarray) -> np.ndarray:
        return np.clip(a.astype(np.int16) + rng.integers(-noise, noise + 1, a.shape), 0, 255).astype(np.uint8)

    return as_tensor(noisy(cur)), as_tensor(noisy(ref))


def interior(field_like: torch.Tensor, margin: int) -> torch.Tensor:
    return field_like[margin:-margin, margin:-margin]


@pytest.mark.parametrize("method", ["fast", "exhaustive"])
def test_global_pan_gives_the_pan_vector_and_a_near_zero_residual(photo, method):
    dx, dy = 7, -4
    cur, ref = shifted_pair(photo, dx, dy)
    field = estimate_motion(cur, ref, MotionConfig(radius=16, method=method))
    inner = interior(field.vectors, 1).reshape(-1, 2)
    # Content moved by (dx, dy): each block is predicted from (y - dy, x - dx) in the reference.
    share = (inner == torch.tensor([-dy, -dx], dtype=torch.int32)).all(1).float().mean().item()
    assert share >= 0.95
    # Residual: mean absolute error per RGB value on interior blocks is at the noise level.
    mae = interior(field.sad, 1).float().mean().item() / (16 * 16 * 3)
    assert mae < 1.5


def test_fast_search_finds_large_low_fps_displacements(photo):
    dx, dy = -52, 37  # a brisk pan seen at 2 fps
    cur, ref = shifted_pair(photo, dx, dy)
    field = fast_search(cur, ref, radius=64, lam=LAM)
    margin = 4  # blocks within 64 px of the edge see content that entered the frame
    inner = interior(field.vectors, margin).reshape(-1, 2)
    share = (inner == torch.tensor([-dy, -dx], dtype=torch.int32)).all(1).float().mean().item()
    assert share >= 0.95


def test_exhaustive_is_the_true_minimum_and_fast_matches_it(photo):
    # A pan plus a small object moving the other way: two motions, an occlusion boundary, edges.
    cur, ref = shifted_pair(photo, 9, 5, size=192)
    obj = photo[40:88, 40:88]
    cur_np = cur.permute(1, 2, 0).numpy().copy()
    ref_np = ref.permute(1, 2, 0).numpy().copy()
    ref_np[70:118, 60:108] = obj
    cur_np[64:112, 72:120] = obj  # moved by (+12, -6)
    cur, ref = as_tensor(cur_np), as_tensor(ref_np)
    radius = 24
    ex = exhaustive_search(cur, ref, radius, LAM)
    fa = fast_search(cur, ref, radius, LAM)
    # The reference is a minimum over the whole window: no search can beat it.
    assert bool((ex.cost <= fa.cost).all())
    # Wherever content has a real match (the exhaustive error is at the noise level), the fast
    # search finds a vector as good within 1%. Blocks with no match (content entering at the
    # edges, the uncovered background behind the object) are minima over noise: report them.
    matched = ex.sad <= 4 * 768
    within = fa.cost.double() <= ex.cost.double() * 1.01
    assert within[matched].float().mean().item() >= 0.99
    assert within.float().mean().item() >= 0.9
    assert abs(fa.pcost - ex.pcost) / ex.pcost < 0.05


def test_static_frame_has_zero_motion_and_zero_pcost(photo):
    frame = as_tensor(photo[:256, :256].copy())
    for method in ("fast", "exhaustive"):
        field = estimate_motion(frame, frame.clone(), MotionConfig(radius=8, method=method))
        assert field.pcost == 0
        assert int(field.vectors.abs().sum()) == 0


def test_flat_frame_ties_prefer_the_zero_vector():
    flat = torch.full((3, 64, 64), 128, dtype=torch.uint8)
    noisy = flat.clone()
    noisy[:, 10:12, 10:12] = 130
    for method in ("fast", "exhaustive"):
        field = estimate_motion(noisy, flat, MotionConfig(radius=8, method=method))
        assert int(field.vectors.abs().sum()) == 0


def test_prior_is_optional_and_does_not_change_a_clean_answer(photo):
    cur, ref = shifted_pair(photo, 3, 2)
    first = fast_search(cur, ref, 16, LAM)
    again = fast_search(cur, ref, 16, LAM, prior=first)
    assert again.pcost <= first.pcost


def test_bad_shapes_are_rejected(photo):
    a = as_tensor(photo[:64, :64].copy())
    b = as_tensor(photo[:64, :96].copy())
    with pytest.raises(ValueError, match="differ"):
        estimate_motion(a, b)
    odd = as_tensor(photo[:48, :48].copy())
    with pytest.raises(ValueError, match="multiple of 32"):
        estimate_motion(odd, odd)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_and_cuda_give_identical_fields(photo):
    cur, ref = shifted_pair(photo, 11, -6)
    prior = estimate_motion(ref, cur, MotionConfig(radius=24))  # the fast search's trusted-prior path too
    for method, p in (("fast", None), ("fast", prior), ("exhaustive", None)):
        cfg = MotionConfig(radius=24, method=method)
        on_cpu = estimate_motion(cur, ref, cfg, p)
        on_gpu = estimate_motion(cur.cuda(), ref.cuda(), cfg, None if p is None else p.to("cuda")).to("cpu")
        assert torch.equal(on_cpu.vectors, on_gpu.vectors)
        assert torch.equal(on_cpu.cost, on_gpu.cost)


@pytest.mark.parametrize(("name", "duration"), [("pan", 3.0), ("objects", 3.0), ("mixed", 6.0), ("cuts", 6.0),
                                              ("fast_pan", 3.0)])
def test_fast_search_is_within_1pct_of_the_optimum_on_99pct_of_blocks_at_512(tmp_path, name, duration):
    """Issue 3's goal on generated 512x512 H.264 video, for every block (content entering the
    frame and uncovered background included) of every sampled pair, hard cuts and motion beyond
    the window included, each searched with the previous field as prior: the fast cost within 1%
    of the exhaustive one. (The coder also gives gamma as ``anchor_above``, so a frame it will
    make an anchor skips the exact stage: that is tested on the pairs it predicts, below.)"""
    from videomemory.bench import synth
    from videomemory.codec.decode import sample_frames

    size = (512, 512)
    shots = synth.preset(name, size, duration, seed=1)
    truth = synth.write_video(tmp_path / f"{name}.mp4", shots, size, 10.0, seed=1)
    frames = [as_tensor(f.image) for f in sample_frames(truth.path, fps=2.0)]
    prior, within, pcosts = None, [], []
    for cur, ref in zip(frames[1:], frames):
        if torch.equal(cur, ref):
            continue
        fa = fast_search(cur, ref, 64, LAM, prior)
        ex = exhaustive_search(cur, ref, 64, LAM)
        assert bool((ex.cost <= fa.cost).all())
        # Per pair within 2% (objects appearing in the first pair cost 1.7% there), over the video 1%.
        assert fa.pcost <= 1.02 * ex.pcost
        within.append(fa.cost.double() <= ex.cost.double() * 1.01)
        pcosts.append((fa.pcost, ex.pcost))
        prior = fa
    assert len(pcosts) >= duration  # every pair but the static ones
    assert sum(f for f, _ in pcosts) <= 1.01 * sum(e for _, e in pcosts)
    share = torch.stack(within).float().mean().item()
    assert share >= 0.99, f"{name}: {share:.2%} of blocks within 1%"


def exact_costs(cur: torch.Tensor, ref: torch.Tensor, vectors: np.ndarray, radius: int) -> np.ndarray:
    """Cost SAD + lam|d|_1 of each block (By, Bx) at each of its vectors (By, Bx, K, 2), in numpy."""
    c = cur.numpy().astype(np.int32)
    r = np.pad(ref.numpy(), ((0, 0), (radius, radius), (radius, radius)), mode="edge").astype(np.int32)
    by, bx, k, _ = vectors.shape
    out = np.empty((by, bx, k), np.int64)
    for y in range(by):
        for x in range(bx):
            blk = c[:, 16 * y : 16 * y + 16, 16 * x : 16 * x + 16]
            for j, (dy, dx) in enumerate(vectors[y, x]):
                ry, rx = radius + 16 * y + dy, radius + 16 * x + dx
                out[y, x, j] = np.abs(blk - r[:, ry : ry + 16, rx : rx + 16]).sum() + LAM * (abs(dy) + abs(dx))
    return out


@pytest.fixture(scope="module")
def flat_pan(tmp_path_factory) -> list[torch.Tensor]:
    """Sampled 512x512 frames of the cameraman photo (a wide, almost flat sky over textured ground)
    panning 40 px per sampled frame, H.264 encoded: flat blocks have wide, noisy cost basins."""
    from videomemory.bench import synth
    from videomemory.codec.decode import sample_frames

    path = tmp_path_factory.mktemp("flat") / "pan.mp4"
    truth = synth.write_video(path, [synth.Shot(3.0, "camera", pan=(80.0, 0.0))], (512, 512), 10.0, seed=1)
    return [as_tensor(f.image) for f in sample_frames(truth.path, fps=2.0)]


MERGE = MotionConfig().merge_lam


def test_the_merge_puts_the_flat_blocks_of_a_pan_on_the_pan(flat_pan):
    """The cameraman's sky is flat: every vector fits its blocks about alike, and Eq. 1 alone
    leaves some of them at (0, 0) or near the pan by noise (90.5% of the interior blocks carry
    the pan in the worst pair). Offered the frame's most common vector with the rate counted
    from it (``merge_global``), they take the pan; the textured blocks on the pan keep it, and
    each block's cost is its SAD plus the rate from the pan."""
    from videomemory.bench.codec_truth import interior as inside_of
    from videomemory.codec.motion import shift_sad

    want = (0, -40)  # content moving right 40 px per sampled frame
    shares = []
    for cur, ref in zip(flat_pan[1:], flat_pan):
        field = fast_search(cur, ref, 64, LAM)
        merged = merge_global(field, cur, ref, MERGE)
        inside = torch.from_numpy(inside_of(tuple(field.cost.shape), np.array(want)))
        share = ((merged.vectors == torch.tensor(want, dtype=torch.int32)).all(-1) & inside).sum() / inside.sum()
        before = ((field.vectors == torch.tensor(want, dtype=torch.int32)).all(-1) & inside).sum() / inside.sum()
        assert merged.global_motion == want
        shares.append((float(before), float(share)))
        on_pan = (field.vectors == torch.tensor(want, dtype=torch.int32)).all(-1)
        assert (merged.vectors[on_pan] == torch.tensor(want, dtype=torch.int32)).all()
        rate = MERGE * (merged.vectors.long() - torch.tensor(want)).abs().sum(-1)
        assert torch.equal(merged.cost, merged.sad + rate)
        took = (merged.vectors != field.vectors).any(-1)
        assert torch.equal(merged.sad[took], shift_sad(cur, ref, want).view_as(merged.sad)[took])
        assert not took[:, :3].any()  # the entering edge (content from 40 px left of the frame) keeps its own
    assert min(b for b, _ in shares) < 0.95 <= 0.99 <= min(a for _, a in shares), shares


def test_the_merge_leaves_objects_moving_over_a_still_textured_background_alone(photo):
    """Offered an object's vector, the still background would pay its rate on every block: the
    frame keeps the search's field, vectors, costs and all."""
    ref = photo[100:356, 100:356].copy()
    cur = ref.copy()
    cur[96:160, 80:144] = photo[400 - 6 : 464 - 6, 400 + 9 : 464 + 9]  # a 64 px patch of elsewhere,
    ref[96 - 6 : 160 - 6, 80 + 9 : 144 + 9] = photo[400 - 6 : 464 - 6, 400 + 9 : 464 + 9]  # moved by (6, -9)
    cur_t, ref_t = as_tensor(cur), as_tensor(ref)
    field = fast_search(cur_t, ref_t, 64, LAM)
    assert (field.vectors == torch.tensor([-6, 9], dtype=torch.int32)).all(-1).sum() >= 9  # the object's blocks
    assert merge_global(field, cur_t, ref_t, MERGE) is field
    assert estimate_motion(cur_t, ref_t).global_motion == (0, 0)


def test_the_merge_leaves_an_object_moving_over_a_flat_still_background_alone(photo):
    """A slide, a screen, a plain wall: every flat block fits the object's vector as well as (0, 0),
    so offered it they would all take it and the whole frame would read as a pan. The search gave
    that vector to under 1/6 of the blocks (``_MERGE_SUPPORT``): it is not the picture's motion."""
    flat = np.full((256, 256, 3), (200, 210, 220), np.uint8)
    ref, cur = flat.copy(), flat.copy()
    ref[96:160, 40:104] = photo[300:364, 300:364]
    cur[96:160, 60:124] = photo[300:364, 300:364]  # moved right by 20 px
    cur_t, ref_t = as_tensor(cur), as_tensor(ref)
    field = fast_search(cur_t, ref_t, 64, LAM)
    assert (field.vectors == torch.tensor([0, -20], dtype=torch.int32)).all(-1).sum() >= 9
    assert merge_global(field, cur_t, ref_t, MERGE) is field
    assert (estimate_motion(cur_t, ref_t).vectors[:, -4:] == 0).all()  # the flat background stays still


def test_fast_search_ends_at_a_local_minimum_of_the_exact_cost(flat_pan):
    """The last stages walk downhill: no block's vector has a +-1 neighbour with a lower cost."""
    radius = 64
    ring = np.array([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)])
    checked = 0
    for cur, ref in zip(flat_pan[1:], flat_pan):
        field = fast_search(cur, ref, radius, LAM)
        v = field.vectors.numpy()
        costs = exact_costs(cur, ref, np.clip(v[:, :, None, :] + ring, -radius, radius), radius)
        assert np.array_equal(costs[:, :, 4], field.cost.numpy())  # the field's cost is the exact one
        active = field.cost.numpy() > 0
        assert (costs[active].min(-1) == costs[active][:, 4]).all()
        checked += int(active.sum())
    assert checked > 4000


def test_ambiguous_blocks_get_the_exhaustive_optimum(flat_pan):
    """A block whose texture is at most _AMBIGUOUS (4) times its cost (the flat sky, content
    entering at the edge) gets the exhaustive optimum, vector and cost. The search picks them by
    their cost before the exact stage, which only lowers a cost, so every block that is ambiguous
    by its final cost was picked."""
    from videomemory.codec.motion import _AMBIGUOUS, texture

    checked = flat = 0
    for cur, ref in zip(flat_pan[1:], flat_pan):
        ex = exhaustive_search(cur, ref, 64, LAM)
        fa = fast_search(cur, ref, 64, LAM)
        cost = fa.cost.reshape(-1)
        amb = (texture(cur) <= _AMBIGUOUS * cost) & (cost > 0)
        assert torch.equal(cost[amb], ex.cost.reshape(-1)[amb])
        assert torch.equal(fa.vectors.reshape(-1, 2)[amb], ex.vectors.reshape(-1, 2)[amb])
        checked += int(amb.sum())
        flat += int((ex.cost < 2 * 16 * 16).sum())
    assert checked > 500 and flat > 3000


@pytest.mark.parametrize("name", ["mixed", "cuts"])
def test_fast_search_is_within_1pct_of_the_optimum_on_the_predicted_pairs_at_512(tmp_path, name):
    """Issue 3's goal on the shot-changing presets: every block of every pair the anchor rule
    would predict (pcost per block within gamma; at a cut no vector predicts, and the frame
    becomes an anchor on its pcost, which the fast search never underestimates)."""
    from videomemory.bench import synth
    from videomemory.bench.search_accuracy import agreement
    from videomemory.codec.decode import sample_frames

    size = (512, 512)
    truth = synth.write_video(tmp_path / f"{name}.mp4", synth.preset(name, size, 8.0, seed=1), size, 10.0, seed=1)
    a = agreement([as_tensor(f.image) for f in sample_frames(truth.path, fps=2.0)])  # as the encoder calls it
    assert a["pairs"] >= 8
    share = a["within"] / a["total"]
    assert share >= 0.99, f"{name}: {share:.2%} of blocks within 1%"


def test_a_frame_over_the_anchor_threshold_skips_the_exact_stage(flat_pan):
    """An anchor's field only gives its pcost: over ``anchor_above`` the search keeps the pyramid's
    answer (never better than the exact one), at or under it the frame gets the exact stage."""
    cur, ref = flat_pan[2], flat_pan[1]
    exact = fast_search(cur, ref, 64, LAM)
    per_block = exact.pcost / exact.n_blocks
    skipped = fast_search(cur, ref, 64, LAM, anchor_above=per_block / 2)
    assert skipped.pcost > exact.pcost and bool((skipped.cost >= exact.cost).all())
    assert torch.equal(fast_search(cur, ref, 64, LAM, anchor_above=skipped.pcost / skipped.n_blocks).cost, exact.cost)
    merged = merge_global(skipped, cur, ref, MotionConfig().merge_lam)
    assert torch.equal(estimate_motion(cur, ref, MotionConfig(), anchor_above=per_block / 2).cost, merged.cost)


def test_a_prior_that_predicts_well_is_kept_and_the_field_is_the_one_a_full_search_gives(tmp_path, monkeypatch):
    """_TRUST_PRIOR: on a pan, most blocks' previous vector costs at most 1/8 of their texture and
    skips the pyramid; the fields are those of the full search (the trust turned off)."""
    from videomemory.bench import synth
    from videomemory.codec import motion
    from videomemory.codec.decode import sample_frames

    size = (256, 256)
    truth = synth.write_video(tmp_path / "pan.mp4", synth.preset("pan", size, 3.0, seed=2), size, 10.0, seed=2)
    frames = [as_tensor(f.image) for f in sample_frames(truth.path, fps=2.0)]
    trusted, fields = [], {}
    for trust in (8, 0):
        monkeypatch.setattr(motion, "_TRUST_PRIOR", trust)
        prior, out = None, []
        for cur, ref in zip(frames[1:], frames):
            if prior is not None and trust:
                key = exhaustive_cost(cur, ref, prior.vectors)  # the prior's cost on this pair
                trusted.append((key * trust <= motion.texture(cur).view_as(key)).float().mean().item())
            prior = fast_search(cur, ref, 64, LAM, prior)
            out.append(prior)
        fields[trust] = out
    assert sum(trusted) / len(trusted) > 0.3  # the path is taken (0.07-0.72 of the blocks per pair)
    for a, b in zip(fields[8], fields[0]):
        assert torch.equal(a.vectors, b.vectors) and torch.equal(a.cost, b.cost)


def exhaustive_cost(cur: torch.Tensor, ref: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """The cost (SAD + lambda|d|) of given vectors (By, Bx, 2), block by block, from the prediction
    the residual coder makes (``codec.residual.compensate``)."""
    from videomemory.codec.residual import compensate

    by, bx, _ = vectors.shape
    diff = (cur.to(torch.int64) - compensate(ref, vectors).to(torch.int64)).abs()  # (3, H, W)
    sad = diff.view(3, by, 16, bx, 16).sum((0, 2, 4))
    return sad + LAM * vectors.to(torch.int64).abs().sum(-1)
