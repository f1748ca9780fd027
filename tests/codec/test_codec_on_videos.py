"""Issue 4's must-show points on generated H.264 videos: rebuilt quality and size, token plans,
rate control. Videos come from ``videomemory.bench.synth`` (real photographs, known ground truth);
most run on a 256x256 grid (the video's size) to keep the suite quick, the token saving on mixed
content and rate control on short cut-heavy videos on the default 512x512 grid, where the
per-frame text overhead weighs what it will in use.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from videomemory.bench import synth
from videomemory.bench.eval_methods import budget_tpm, run_codec
from videomemory.bench.eval_videos import make_video
from videomemory.codec.config import CodecConfig, Grid, PlanConfig, ResidualConfig
from videomemory.codec.decode import sample_frames
from videomemory.codec.encoder import Encoder, encode_stream
from videomemory.codec.residual import GopCode
from videomemory.codec.stats import content_stats, split_gops
from videomemory.codec.tokens import I, P, TokenModel, plan_flat

SIZE = (256, 256)
CONFIG = CodecConfig(grid=Grid(*SIZE))
SRC_FPS = 10.0
CLASSES = ("static", "pan", "fast_pan", "objects", "cuts", "fade", "mixed")


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """(preset, duration, size, seed) -> (sampled frames, encoded frames); each coded once."""
    folder = tmp_path_factory.mktemp("videos4")
    cache: dict[tuple, tuple] = {}

    def get(name: str, duration: float = 30.0, size: tuple[int, int] = SIZE, seed: int = 0):
        key = (name, duration, size, seed)
        if key not in cache:
            shots = synth.preset(name, size, duration, seed=seed, fps=SRC_FPS)
            truth = synth.write_video(folder / f"{name}-{duration}-{size[0]}-{seed}.mp4", shots, size, SRC_FPS, seed=seed)
            config = CodecConfig(grid=Grid(*size))
            frames = list(sample_frames(truth.path, fps=config.fps, grid=config.grid))
            cache[key] = (frames, list(encode_stream(frames, config, "cpu")))
        return cache[key]

    return get


def _jpeg90(image: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=90)
    return len(buf.getvalue())


@pytest.mark.parametrize("name", CLASSES)
def test_rebuilt_frames_are_38db_bit_exact_and_smaller_than_jpeg(coded, name):
    frames, out = coded(name)
    worst = min(e.psnr for e in out)
    assert worst >= 38.0, f"{name}: worst rebuilt frame {worst:.2f} dB"
    _assert_bit_exact_and_smaller_than_jpeg(frames, out, name)


def _assert_bit_exact_and_smaller_than_jpeg(frames, out, name: str) -> None:
    # A reader rebuilds from the stored bytes exactly what the encoder reconstructed.
    for gop in split_gops(out):
        stored = GopCode(gop[0].anchor, tuple(e.pcode for e in gop[1:]))
        assert all(np.array_equal(a, e.image) for a, e in zip(stored.frames(), gop))
    code = sum(e.nbytes for e in out)
    jpeg = sum(_jpeg90(f.image) for f in frames)
    assert code < jpeg, f"{name}: code {code / 1e3:.0f} KB, JPEG q90 {jpeg / 1e3:.0f} KB"


@pytest.mark.parametrize("name", ["pan", "static", "objects", "fast_pan"])
def test_no_drift_over_a_full_gop(coded, name):
    frames, out = coded(name)
    full = [g for g in split_gops(out) if len(g) == CONFIG.gop.k_max + 1]
    assert full, "the preset must hold at least one 17-frame GOP"
    for gop in full:
        last = gop[-1]
        # Drift is what the chain adds: the last frame coded after 16 P-frames against the same
        # frame coded one step after a fresh anchor (content changes affect both alike).
        k = last.code.sampled_index
        fresh = list(encode_stream(frames[k - 1 : k + 1], CONFIG, "cpu"))[1]
        assert last.psnr >= fresh.psnr - 1.0, f"{name}: frame {k} {last.psnr:.2f} dB, fresh chain {fresh.psnr:.2f} dB"
        # The literal criterion: the last P-frame within 1 dB of the first. Anchors are stored at
        # about the quality P-frames settle at (ResidualConfig.anchor_psnr), so the first P-frame
        # is not much better than the steady state (codec.residual, "drift").
        assert last.psnr >= gop[1].psnr - 1.0, f"{name}: {gop[1].psnr:.2f} dB -> {last.psnr:.2f} dB"


def test_motion_beyond_the_search_window_is_38db_and_smaller_than_jpeg_at_512(coded):
    # fast_pan at 512 moves 100 px per sampled frame, past the +-64 px search: most frames are
    # anchors, and the P-frames motion cannot explain are coded as one intra image.
    frames, out = coded("fast_pan", duration=12.0, size=(512, 512))
    assert sum(e.code.role == I for e in out) > len(out) // 2, "the preset must defeat the motion search"
    assert min(e.psnr for e in out) >= 38.0
    _assert_bit_exact_and_smaller_than_jpeg(frames, out, "fast_pan at 512")


def test_a_static_video_costs_at_most_2_percent_of_flat(coded):
    _, out = coded("static", duration=60.0)
    adaptive = sum(e.plan.tokens for e in out)
    flat = len(out) * plan_flat(Encoder(CONFIG).tokens).tokens
    assert adaptive <= 0.02 * flat, f"{adaptive} tokens against {flat} flat"
    assert content_stats(out).content_class == "static"


def _visible(sprite: synth.Sprite, t: float, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The sprite's box (x0, y0, x1, y1) clipped to the frame at time t, None when not in view."""
    if t < sprite.appear_s:
        return None
    x, y = round(sprite.start[0] + sprite.velocity[0] * t), round(sprite.start[1] + sprite.velocity[1] * t)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sprite.size[0], size[0]), min(y + sprite.size[1], size[1])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def test_a_small_object_entering_gets_the_cells_that_cover_it_in_its_frame(tmp_path):
    popping = synth.Sprite("coffee", (40, 36), (150.0, 70.0), (0.0, 0.0), appear_s=4.0)
    from_edge = synth.Sprite("astronaut", (48, 48), (-60.0, 180.0), (60.0, 0.0))  # slides in from the left
    shot = synth.Shot(10.0, "brick", sprites=(popping, from_edge))
    truth = synth.write_video(tmp_path / "enter.mp4", [shot], SIZE, SRC_FPS)
    frames = list(sample_frames(truth.path, fps=CONFIG.fps, grid=CONFIG.grid))
    out = list(encode_stream(frames, CONFIG, "cpu"))
    entered = 0
    for prev, cur, f in zip(frames, out[1:], frames[1:]):
        t0, t1 = truth.frames[prev.source_index].time_s, truth.frames[f.source_index].time_s
        for sprite in shot.sprites:
            box = _visible(sprite, t1, SIZE)
            if box is None or _visible(sprite, t0, SIZE) is not None:
                continue  # not in view, or already seen in the previous frame
            assert cur.plan.role == "P", "a small object entering must not need an anchor"
            covered = np.zeros(SIZE[::-1], bool)
            for r in cur.plan.rects:
                x0, y0, x1, y1 = r.to_px(CONFIG.grid)
                covered[y0:y1, x0:x1] = True
            x0, y0, x1, y1 = box
            share = covered[y0:y1, x0:x1].mean()
            assert share == 1.0, f"frame {cur.code.sampled_index}: cells cover {share:.0%} of the new object at {box}"
            entered += 1
    assert entered == 2
    # Static background: the frames that show nothing new send next to nothing.
    quiet = [e.plan.image_tokens for e in out[12:] if e.plan.role == "P"]
    assert sum(quiet) <= 2 * CONFIG.grid.tokens_per_image


@pytest.mark.parametrize("seed", [0, 1])
def test_adaptive_plan_saves_85_percent_on_mixed_content_at_512(coded, seed):
    _, out = coded("mixed", duration=30.0, size=(512, 512), seed=seed)
    adaptive = sum(e.plan.tokens for e in out)
    flat = len(out) * 256
    assert adaptive <= 0.15 * flat, f"adaptive {adaptive} tokens = {adaptive / flat:.1%} of flat {flat}"


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize(("live", "budget"), [(False, 1000.0), (False, 2500.0), (True, 1000.0)],
                         ids=["file-1000", "file-2500", "live-1000"])
def test_rate_control_lands_within_5_percent_of_the_budget(coded, name, budget, live):
    # The 30 s videos of the quality test, coded again under the budget with their motion
    # replayed (the search does not depend on the budget; only roles, code and plans do). A live
    # stream runs at the tighter budget only, where more cuts are declined (its prefix bound is
    # also checked on synthetic energies in test_rate.py, and on 512 montages at three budgets).
    frames, base = coded(name)
    run = run_codec(frames, CONFIG, budget, motion=[e.code.motion for e in base], live=live)
    per_min = run.tokens / (len(frames) / CONFIG.fps / 60.0)
    assert abs(per_min - budget) <= 0.05 * budget, f"{name}: {per_min:.0f} tokens/min for a budget of {budget:.0f}"
    assert min(run.psnr) >= 38.0  # the budget decides what is sent, not what is stored


def _same(a_frames, b_frames) -> None:
    for a, b in zip(a_frames, b_frames, strict=True):
        assert a.plan == b.plan and a.nbytes == b.nbytes and np.array_equal(a.image, b.image)


def test_frame_by_frame_gets_the_same_code_and_plans_as_at_once_for_files_and_live_streams(coded):
    frames, out = coded("mixed")
    config = CONFIG.with_(plan=PlanConfig(budget_per_min=1500.0))
    half = len(frames) // 2
    # A file: its length is known (a sized input), frame by frame or at once.
    whole = list(encode_stream(frames, config, "cpu"))
    pushed = Encoder(config, "cpu", expected_frames=len(frames))
    _same([pushed.push(f) for f in frames[:half]], whole[:half])
    # A live stream: no length, frame by frame or as an iterator.
    live = Encoder(config, "cpu")
    _same([live.push(f) for f in frames[:half]], list(encode_stream(iter(frames[:half]), config, "cpu")))
    assert [e.code.role for e in out][:5] == [e.code.role for e in whole][:5]


GRID512 = Grid(512, 512)
# The plan depends on residual energies, not on the image codec: JPEG anchors keep these
# 512x512 passes quick (AVIF costs ~20x more to encode), as in ``bench.eval_suite``.
CONFIG512 = CodecConfig(grid=GRID512, residual=ResidualConfig(anchor_format="jpeg"))
RATIOS = (4, 7, 12)


@pytest.fixture(scope="module")
def coded512(tmp_path_factory):
    """(kind, seed) -> (frames, unbudgeted run) of a 16 s 512x512 video, each coded once.

    ``kind`` is "high-cut" (an ``eval_videos`` montage, cuts every 1-3 s) or a ``synth`` preset.
    Budgeted passes replay the run's motion fields (``bench.eval_methods.run_codec``)."""
    folder = tmp_path_factory.mktemp("videos512")
    cache: dict[tuple, tuple] = {}

    def get(kind: str, seed: int = 0):
        if (kind, seed) not in cache:
            if kind == "high-cut":
                path = make_video(kind, seed, folder, (512, 512), 16.0).path
            else:
                shots = synth.preset(kind, (512, 512), 16.0, seed=seed, fps=SRC_FPS)
                path = synth.write_video(folder / f"{kind}-{seed}.mp4", shots, (512, 512), SRC_FPS, seed=seed).path
            frames = list(sample_frames(path, fps=CONFIG512.fps, grid=GRID512))
            cache[(kind, seed)] = (frames, run_codec(frames, CONFIG512))
        return cache[(kind, seed)]

    return get


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("kind", ["high-cut", "cuts"])
@pytest.mark.parametrize("live", [False, True], ids=["file", "live"])
def test_rate_control_lands_within_5_percent_on_short_cut_videos_at_512(coded512, kind, ratio, live):
    # The old rule sent every hard cut in full and declined one only 1.5-2.5 images over budget:
    # +11% at 1/7 and up to +22% at 1/12 on these montages.
    frames, base = coded512(kind)
    budget = budget_tpm(TokenModel(grid=GRID512), ratio, CONFIG512.fps)
    run = run_codec(frames, CONFIG512, budget, motion=base.fields, live=live)
    per_min = run.tokens / (len(frames) / CONFIG512.fps / 60.0)
    assert abs(per_min - budget) <= 0.05 * budget, f"{kind} 1/{ratio}: {per_min:.0f} tokens/min for {budget:.0f}"
    assert run.plans[0].role == I


def test_a_declined_cut_is_refreshed_within_a_bound_derived_from_the_budget_at_512(tmp_path):
    shots = [synth.Shot(3.0, "brick"), synth.Shot(10.0, "coffee")]
    truth = synth.write_video(tmp_path / "cut.mp4", shots, (512, 512), SRC_FPS)
    frames = list(sample_frames(truth.path, fps=CONFIG512.fps, grid=GRID512))
    model = TokenModel(grid=GRID512)
    config = CONFIG512.with_(plan=PlanConfig(budget_per_min=budget_tpm(model, 4, CONFIG512.fps)))
    out = list(encode_stream(iter(frames), config, "cpu"))  # a live stream: no end to borrow against
    cuts = [i for i, e in enumerate(out) if e.code.reason == "pcost"]
    assert cuts, "the cut must be stored as an anchor"
    c = cuts[0]
    assert out[c].plan.role == P, "the bucket cannot pay for a full image: the cut is a partial refresh"
    owed = out[c].energy > config.plan.cell_threshold
    assert owed.mean() >= 0.9, "a cut between two photos changes nearly every cell"
    # After the debt bound a frame's bucket is at least per_frame - p_overhead; it pays its text
    # overhead and at most 1 + rect_overhead tokens a cell, so it sends at least k cells.
    per_frame = config.plan.budget_per_min / 60.0 / config.fps
    k = math.floor((per_frame - 2 * model.p_overhead) / (1 + model.rect_overhead))
    bound = math.ceil(owed.sum() / k) + 1
    assert c + bound < len(out), "the second shot must outlast the bound"
    seen = np.zeros(model.cells, dtype=bool)
    for n, e in enumerate(out[c : c + bound + 1]):
        for r in e.plan.rects:
            seen[r.row : r.row + r.rows, r.col : r.col + r.cols] = True
        if (owed <= seen).all():
            break
    assert (owed <= seen).all(), f"{int((owed & ~seen).sum())} cells of the new scene unsent {bound} frames after the cut"

    # The same video as a file (its length known): the frames after the cut can repay a full
    # image, so the cut is one, and the file still lands within 5%.
    filed = list(encode_stream(frames, config, "cpu"))
    assert [e.code.reason for e in filed].index("pcost") == c and filed[c].plan.role == I
    spent = sum(e.plan.tokens for e in filed) / (len(filed) / config.fps / 60.0)
    assert abs(spent - config.plan.budget_per_min) <= 0.05 * config.plan.budget_per_min, spent
