"""Issue 3's must-show points on generated H.264 videos with known ground truth.

Videos are written by ``videomemory.bench.synth`` from real photographs; the codec runs with its
default settings (calibrated gamma, k_max 16, fast search, 2 fps) on the video's own size as the
grid, so pans stay whole pixels: 256x256, and the default 512x512 for the pan's vectors. gamma is
per block, so the 512x512 default applies unchanged.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from videomemory.bench import synth
from videomemory.bench.codec_truth import cut_frames, pan_vector
from videomemory.codec.config import CodecConfig, Grid, MotionConfig
from videomemory.codec.decode import SampledFrame, sample_frames
from videomemory.codec.gop import CUT_REASONS, GopEncoder, encode, gop_lengths
from videomemory.codec.motion import as_tensor, estimate_motion

SIZE = (256, 256)
CONFIG = CodecConfig(grid=Grid(*SIZE))
SRC_FPS = 10.0  # the codec samples 2 fps; a low source rate keeps the files quick to write


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """preset -> (ground truth, sampled frames, frame codes); each video written and coded once."""
    folder = tmp_path_factory.mktemp("videos")
    cache: dict[str, tuple] = {}

    def get(name: str, duration: float = 30.0, seed: int = 0, size: tuple[int, int] = SIZE):
        key = f"{name}-{duration}-{seed}-{size[0]}x{size[1]}"
        if key not in cache:
            truth = synth.write_video(
                folder / f"{key}.mp4", synth.preset(name, size, duration, seed=seed), size, SRC_FPS, seed=seed
            )
            config = CodecConfig(grid=Grid(*size))
            frames = list(sample_frames(truth.path, fps=config.fps, grid=config.grid))
            codes = list(encode(frames, config, "cpu"))
            cache[key] = (truth, frames, codes)
        return cache[key]

    return get


@pytest.mark.parametrize("name, seed", [("cuts", 0), ("cuts", 1), ("mixed", 0), ("mixed", 2), ("fade", 0)])
def test_every_hard_cut_starts_a_gop_at_the_cut_frame(videos, name, seed):
    truth, frames, codes = videos(name, seed=seed)
    cuts = cut_frames(truth, frames)
    assert cuts, "the preset must contain cuts"
    for k in cuts:
        assert codes[k].role == "I", f"cut at sampled frame {k} ({codes[k].pts_ms} ms) was coded as P"


@pytest.mark.parametrize("name, seed", [("pan", 0), ("pan", 3), ("objects", 0), ("objects", 4)])
def test_pans_and_moving_objects_give_at_most_one_false_anchor_per_100_frames(videos, name, seed):
    truth, frames, codes = videos(name, duration=60.0, seed=seed)
    assert not truth.cuts_s
    false_anchors = [c for c in codes[1:] if c.reason in CUT_REASONS]
    assert len(codes) >= 100
    assert len(false_anchors) <= math.floor(len(codes) / 100), [(c.sampled_index, c.pcost_per_block) for c in false_anchors]


@pytest.mark.parametrize("size", [(256, 256), (512, 512)])
def test_a_cut_into_a_plain_picture_starts_a_gop_though_it_costs_under_gamma(tmp_path, size):
    """Text, then the moon (grey and smooth): plain content is cheap to predict from anything, so
    the cut costs under gamma (about 7,000 and 6,600 per block) and PAPER's rule alone codes it
    as a P-frame; its prediction's SAD is 2.0x and 3.4x the picture's own detail, and the scene
    rule (over 1.5x) makes it an anchor."""
    truth = synth.write_video(tmp_path / "plain.mp4", [synth.Shot(3.0, "text"), synth.Shot(3.0, "moon")], size, SRC_FPS)
    config = CodecConfig(grid=Grid(*size))
    frames = list(sample_frames(truth.path, fps=config.fps, grid=config.grid))
    codes = list(encode(frames, config, "cpu"))
    (k,) = cut_frames(truth, frames)
    assert codes[k].role == "I" and codes[k].reason == "scene", codes[k].summary()
    assert codes[k].pcost_per_block <= config.gop.gamma_per_block
    assert [c.sampled_index for c in codes if c.role == "I"] == [0, k]
    paper = list(encode(frames, replace(config, gop=replace(config.gop, scene_ratio=0.0)), "cpu"))
    assert paper[k].role == "P"


def test_a_plain_static_scene_under_heavy_sensor_noise_keeps_full_gops():
    """The moon under fresh Gaussian noise (sigma 8) in every frame: pcost about 6,600 per block,
    inside the scene rule's band, but noise predicted from noise leaves a residual half the
    picture's detail (which is noise too), so no frame is taken for a new scene."""
    rng = np.random.default_rng(0)
    moon = synth._resize(synth._photo("moon"), *SIZE).astype(np.float32)
    frames = [SampledFrame.from_array(np.clip(moon + rng.normal(0, 8, moon.shape), 0, 255).astype(np.uint8), i, i / 2)
              for i in range(40)]
    codes = list(encode(frames, CONFIG, "cpu"))
    assert gop_lengths([c.role for c in codes]) == [17, 17, 6]
    looked = [c.unexplained for c in codes if c.unexplained is not None]
    assert len(looked) >= 30 and max(looked) < 0.6, looked


def test_frame_zero_is_an_anchor(videos):
    _, _, codes = videos("pan", duration=60.0, seed=0)
    assert codes[0].role == "I" and codes[0].reason == "first" and codes[0].pcost is None


def test_a_static_stretch_gives_gops_of_exactly_k_max_plus_one(videos):
    _, _, codes = videos("static", duration=40.0)
    lengths = gop_lengths([c.role for c in codes])
    k = CONFIG.gop.k_max + 1
    assert len(lengths) >= 4
    assert lengths[:-1] == [k] * (len(lengths) - 1) and lengths[-1] <= k
    assert all(c.reason in ("first", "k_max", "") for c in codes)


def _interior(by: int, bx: int, margin: int) -> torch.Tensor:
    m = torch.zeros((by, bx), dtype=torch.bool)
    m[margin : by - margin, margin : bx - margin] = True
    return m


def _pan_vector(truth, prev, cur) -> torch.Tensor:
    """The (dy, dx) motion vector of a pan between two sampled frames on the video's own grid."""
    return torch.tensor(pan_vector(truth, prev, cur, (1.0, 1.0)), dtype=torch.int32)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_global_pan_gives_the_pan_vector_and_a_near_zero_residual(videos, seed):
    """On the default 512x512 grid (24 and 8 px per sampled frame). At 256x256 seed 0's photo
    (a cat's flat fur) puts 8-9 of 144 interior blocks, with texture at the noise level (1-2
    per value), on a vector 1-3 px off in its worst frames: a tie in noise that Eq. 1 cannot
    break, and that 4:2:0 chroma repeated over 2x2 pixels used to tip towards even vectors
    (95.8%) and interpolated chroma does not (94.4%). 512x512 measured 96.2% in the worst frame."""
    truth, frames, codes = videos("pan", duration=60.0, seed=seed, size=(512, 512))
    checked = 0
    for prev, cur, code in zip(frames, frames[1:], codes[1:]):
        want = _pan_vector(truth, prev, cur)
        assert want.abs().sum() > 0
        field = code.motion
        by, bx = field.cost.shape
        # Blocks whose whole search window stays inside the frame, away from the entering edge.
        inside = _interior(by, bx, margin=2)
        hits = (field.vectors == want).all(-1) & inside
        share = hits.sum().item() / inside.sum().item()
        assert share >= 0.95, f"frame {code.sampled_index}: {share:.1%} of interior blocks carry the pan {want.tolist()}"
        sad_per_px = field.sad[hits].float() / (16 * 16 * 3)
        assert sad_per_px.mean() < 2.0 and sad_per_px.max() < 6.0  # H.264 noise only
        checked += 1
    assert checked >= 100


def test_a_pan_by_odd_pixels_gives_the_pan_vector_through_4_2_0_chroma(tmp_path):
    """H.264 keeps colour at half resolution (4:2:0). Decoded at the grid's own size, the chroma
    must be interpolated, not repeated over 2x2 pixels: repeated, a colour edge that moved an
    odd number of pixels lands one pixel off, and the RGB cost prefers a vector next to the pan
    (measured here: 86.8% of the interior blocks in the worst frame, 96.6% on average, off by a
    pixel diagonally; interpolated: 100% in every frame)."""
    shot = synth.Shot(20.0, "coffee", pan=(-26.0, 10.0))  # 13 and 5 px per sampled frame
    truth = synth.write_video(tmp_path / "odd.mp4", [shot], SIZE, SRC_FPS)
    frames = list(sample_frames(truth.path, fps=CONFIG.fps, grid=CONFIG.grid))
    codes = list(encode(frames, CONFIG, "cpu"))
    inside = _interior(*codes[1].motion.cost.shape, margin=2)
    shares = []
    for prev, cur, code in zip(frames, frames[1:], codes[1:]):
        want = _pan_vector(truth, prev, cur)
        assert (want % 2 != 0).all()
        shares.append(((code.motion.vectors == want).all(-1) & inside).sum().item() / inside.sum().item())
    assert min(shares) >= 0.95, [f"{s:.1%}" for s in shares]


def test_a_pan_by_odd_grid_pixels_gives_the_pan_vector_through_a_downscale(tmp_path):
    """The same through a resize: a 512x512 source panned by 26 and 10 px per sampled frame is
    13 and 5 px on the 256x256 grid. swscale's RGB output keeps chroma at half the output width
    unless asked (``FULL_CHR_H_INT``); then colour edges that moved an odd number of grid px land
    half a chroma sample off (measured here: 95.8% of the interior blocks on the pan in the worst
    pair, 99.1% on average; with chroma at every px, 100% in every pair)."""
    shot = synth.Shot(10.0, "coffee", pan=(-52.0, 20.0))
    truth = synth.write_video(tmp_path / "big.mp4", [shot], (512, 512), SRC_FPS)
    frames = list(sample_frames(truth.path, fps=CONFIG.fps, grid=CONFIG.grid))
    codes = list(encode(frames, CONFIG, "cpu"))
    inside = _interior(*codes[1].motion.cost.shape, margin=2)
    shares = []
    for prev, cur, code in zip(frames, frames[1:], codes[1:]):
        want = torch.tensor(pan_vector(truth, prev, cur, (0.5, 0.5)), dtype=torch.int32)
        assert (want % 2 != 0).all()
        shares.append(((code.motion.vectors == want).all(-1) & inside).sum().item() / inside.sum().item())
    assert min(shares) >= 0.99, [f"{s:.1%}" for s in shares]


def test_a_pan_over_a_flat_sky_carries_the_pan_on_the_flat_blocks_too(tmp_path):
    """The cameraman's sky is flat: every vector fits its blocks about alike, and Eq. 1's
    lambda|d|_1 alone leaves them at (0, 0) or near the pan by noise (63% of the interior blocks
    carry the pan in the worst frame, measured). With the rate counted from the frame's global
    motion (``codec.motion.merge_global``) they take the pan, and the GOPs stay the same."""
    shot = synth.Shot(15.0, "camera", pan=(-48.0, 16.0))
    truth = synth.write_video(tmp_path / "sky.mp4", [shot], SIZE, SRC_FPS)
    frames = list(sample_frames(truth.path, fps=CONFIG.fps, grid=CONFIG.grid))
    worst, anchors = {}, {}
    for merge_lam in (0, CONFIG.motion.merge_lam):
        codes = list(encode(frames, replace(CONFIG, motion=replace(CONFIG.motion, merge_lam=merge_lam)), "cpu"))
        inside = _interior(*codes[1].motion.cost.shape, margin=2)
        shares = []
        for prev, cur, code in zip(frames, frames[1:], codes[1:]):
            want = _pan_vector(truth, prev, cur)
            shares.append(((code.motion.vectors == want).all(-1) & inside).sum().item() / inside.sum().item())
            assert code.motion.global_motion == (tuple(want.tolist()) if merge_lam else (0, 0))
        worst[merge_lam], anchors[merge_lam] = min(shares), [c.sampled_index for c in codes if c.role == "I"]
    assert worst[0] < 0.8 and worst[CONFIG.motion.merge_lam] >= 0.95, worst
    assert anchors[0] == anchors[CONFIG.motion.merge_lam]


@pytest.mark.parametrize(("photo", "zoom"), [("coffee", 0.25), ("chelsea", 0.15)])
def test_a_zoom_keeps_99pct_of_its_blocks_within_1pct_of_the_optimum(tmp_path, photo, zoom):
    """In a zoom no block translates: most blocks' best vector is a partial match, and the exact
    stage decides them. Every pair the anchor rule predicts, every block, searched as the coder
    does (``bench.search_accuracy.agreement``). Measured: coffee 98.62% when only blocks with
    texture <= 3x their cost were ambiguous, 99.81% at 4x; chelsea 99.92% and 100%."""
    from videomemory.bench.search_accuracy import agreement

    shot = synth.Shot(10.0, photo, zoom=zoom)  # 25% (15%) larger every second, about the centre
    truth = synth.write_video(tmp_path / "zoom.mp4", [shot], SIZE, SRC_FPS)
    a = agreement([as_tensor(f.image) for f in sample_frames(truth.path, fps=CONFIG.fps, grid=CONFIG.grid)])
    assert a["pairs"] >= 15
    assert a["within"] / a["total"] >= 0.99, f"{a['within'] / a['total']:.2%} of {a['total']} blocks within 1%"


@pytest.mark.parametrize("name", ["pan", "fast_pan", "objects", "mixed", "fade"])
def test_fast_search_against_the_exhaustive_optimum_on_generated_video(videos, name):
    """Measured on this 256x256 grid (the goal, >= 99% of all blocks, is asserted at 512x512 for
    pan and objects in test_motion.py): 256x256 measured 98.6-100% of matched blocks, 95.8%
    (fast_pan, motion beyond the window) to 100% of all blocks, pcost 1.00-1.03x the optimum.

    Blocks with a real match (exhaustive error <= 4 per RGB value) are where the vectors matter;
    blocks of content entering the frame have no match, and the exhaustive optimum there is a
    partial match anywhere in the window (the fast search's exact stage finds it).
    bench/codec_speed.py reports both shares at 512x512.
    """
    _, frames, _ = videos(name, duration=30.0 if name != "pan" else 60.0)
    cfg = MotionConfig()
    exhaustive = MotionConfig(radius=cfg.radius, lam=cfg.lam, method="exhaustive")
    within = total = within_matched = matched = fast_pcost = best_pcost = 0
    pairs = [(frames[i - 1], frames[i]) for i in range(5, len(frames), max(1, len(frames) // 4))][:3]
    for prev, cur in pairs:
        a, b = as_tensor(cur.image), as_tensor(prev.image)
        fast, full = estimate_motion(a, b, cfg), estimate_motion(a, b, exhaustive)
        assert (fast.cost >= full.cost).all()  # exhaustive is the optimum
        ok = fast.cost <= full.cost * 1.01
        real = full.sad <= 4 * 768
        within, total = within + ok.sum().item(), total + ok.numel()
        within_matched, matched = within_matched + (ok & real).sum().item(), matched + real.sum().item()
        fast_pcost, best_pcost = fast_pcost + fast.pcost, best_pcost + full.pcost
    assert within_matched / matched >= 0.98, f"{name}: {within_matched / matched:.2%} of matched blocks within 1%"
    assert within / total >= 0.95, f"{name}: {within / total:.2%} of all blocks within 1%"
    # pcost is what the anchor rule sees: measured 1.00-1.03x the optimum; gamma sits 3-4x away
    # from both sides (README).
    assert fast_pcost <= 1.05 * best_pcost


def test_causal_encoder_gives_the_same_gops_frame_by_frame_and_on_a_prefix(videos):
    _, frames, codes = videos("mixed", seed=0)
    encoder = GopEncoder(CONFIG, "cpu")
    one_by_one = [encoder.push(f) for f in frames]
    assert [c.summary() for c in one_by_one] == [c.summary() for c in codes]
    # A live stream that stopped halfway saw the same decisions for the frames it had.
    half = list(encode(frames[: len(frames) // 2], CONFIG, "cpu"))
    assert [c.summary() for c in half] == [c.summary() for c in codes[: len(half)]]
