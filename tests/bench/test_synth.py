"""The test-video generator tells the truth: decoded timestamps, pans, cuts, sprites and fades match it."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from videomemory.bench import synth


def _decode(path) -> tuple[list[float], list[np.ndarray]]:
    """(times in s from pts, RGB frames as int arrays) of a file's video stream."""
    times, images = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            times.append(float(f.pts * f.time_base))
            images.append(f.to_ndarray(format="rgb24").astype(np.int16))
    return times, images


def _shift_error(a: np.ndarray, b: np.ndarray, dx: int, dy: int, margin: int = 8) -> tuple[float, float]:
    """Mean abs diff of b against a moved by (dx, dy) over the interior, and without the move."""
    h, w = a.shape[:2]
    ys = slice(margin + max(dy, 0), h - margin + min(dy, 0))
    xs = slice(margin + max(dx, 0), w - margin + min(dx, 0))
    moved = np.abs(b[ys, xs] - a[ys.start - dy : ys.stop - dy, xs.start - dx : xs.stop - dx]).mean()
    still = np.abs(b[ys, xs] - a[ys, xs]).mean()
    return float(moved), float(still)


@pytest.mark.parametrize("vfr", [False, True])
def test_frame_count_size_and_timestamps_decode_as_recorded(tmp_path, vfr):
    truth = synth.write_preset("pan", tmp_path / "p.mp4", (160, 120), 2.0, fps=30.0, vfr=vfr, seed=1)
    times, images = _decode(truth.path)
    assert (truth.width, truth.height, truth.vfr) == (160, 120, vfr)
    assert len(images) == len(truth.frames) and [f.index for f in truth.frames] == list(range(len(images)))
    assert all(img.shape == (120, 160, 3) for img in images)
    assert max(abs(t - f.time_s) for t, f in zip(times, truth.frames)) < 1e-3
    steps = np.diff([f.time_s for f in truth.frames])
    assert (steps > 0).all()
    if vfr:
        assert steps.std() > 5e-3 and 0.5 / 30 < steps.mean() < 2 / 30
        assert {round(s * 60) for s in steps} <= {1, 2, 4}  # durations of 1/(2 fps), 1/fps, 2/fps
    else:
        assert np.allclose(steps, 1 / 30) and len(images) == 60
    assert truth.frames[-1].time_s < truth.duration_s == pytest.approx(2.0)


def test_an_exact_time_base_for_ntsc_rates(tmp_path):
    truth = synth.write_video(tmp_path / "n.mp4", [synth.Shot(0.5, "camera")], (64, 48), 29.97)
    times, _ = _decode(truth.path)
    assert truth.frames[10].time_s == pytest.approx(10 / 29.97, abs=1e-12)
    assert max(abs(t - f.time_s) for t, f in zip(times, truth.frames)) < 1e-3


def test_a_pan_moves_the_content_by_the_recorded_offset(tmp_path):
    truth = synth.write_video(tmp_path / "pan.mp4", [synth.Shot(2.0, "coffee", pan=(30.0, -12.0))], (192, 128), 15.0)
    _, images = _decode(truth.path)
    a, b = truth.frames[3], truth.frames[18]  # 1 s apart
    assert a.offset == (6, -2)  # round(30 * 0.2), round(-12 * 0.2)
    dx, dy = b.offset[0] - a.offset[0], b.offset[1] - a.offset[1]
    assert (dx, dy) == (30, -12)
    moved, still = _shift_error(images[3], images[18], dx, dy)
    assert moved < 6 and still > 4 * moved


def test_a_long_fast_pan_never_runs_out_of_picture(tmp_path):
    # 300 px/s for 3 s on a 128 px frame: the content travels ~7 widths of the scaled photo.
    truth = synth.write_video(tmp_path / "fast.mp4", [synth.Shot(3.0, "coffee", pan=(-300.0, 40.0))], (128, 96), 10.0)
    _, images = _decode(truth.path)
    assert truth.frames[-1].offset == (-870, 116)
    for k in range(0, len(images) - 1, 3):
        (x0, y0), (x1, y1) = truth.frames[k].offset, truth.frames[k + 1].offset
        moved, still = _shift_error(images[k], images[k + 1], x1 - x0, y1 - y0, margin=4)
        assert moved < 6 and still > 2 * moved, k


def test_a_static_shot_stays_put(tmp_path):
    truth = synth.write_preset("static", tmp_path / "s.mp4", (128, 96), 1.0, fps=10.0)
    _, images = _decode(truth.path)
    assert all(f.offset == (0, 0) and f.boxes == () and f.alpha == 1.0 for f in truth.frames)
    diffs = [np.abs(b - a).mean() for a, b in zip(images, images[1:])]
    assert max(diffs) < 1.0


def test_cuts_change_everything_and_frames_inside_a_shot_do_not(tmp_path):
    truth = synth.write_preset("cuts", tmp_path / "c.mp4", (128, 96), 4.0, fps=10.0, seed=3)
    _, images = _decode(truth.path)
    assert truth.cuts_s == pytest.approx([1.0, 2.0, 3.0])
    assert len({s.image for s in truth.shots}) == 4
    for prev, cur in zip(truth.frames, truth.frames[1:]):
        if cur.shot != prev.shot:
            assert cur.time_s in truth.cuts_s
            assert np.abs(images[cur.index] - images[prev.index]).mean() > 20
        else:
            dx, dy = cur.offset[0] - prev.offset[0], cur.offset[1] - prev.offset[1]
            moved, _ = _shift_error(images[prev.index], images[cur.index], dx, dy)
            assert moved < 6


def test_a_frame_belongs_to_the_shot_containing_its_time(tmp_path):
    shots = [synth.Shot(0.25, "astronaut"), synth.Shot(0.25, "rocket")]
    truth = synth.write_video(tmp_path / "b.mp4", shots, (64, 48), 10.0)
    assert [f.shot for f in truth.frames] == [0, 0, 0, 1, 1]
    assert truth.cuts_s == [pytest.approx(0.3)]
    with pytest.raises(ValueError, match="too short"):
        synth.write_video(tmp_path / "t.mp4", [synth.Shot(0.25, "camera"), synth.Shot(0.01, "coins"), synth.Shot(0.5, "camera")], (64, 48), 10.0)


def test_frame_at_is_the_frame_on_screen(tmp_path):
    truth = synth.write_video(tmp_path / "v.mp4", [synth.Shot(1.0, "camera")], (64, 48), 10.0, vfr=True, seed=5)
    fr = truth.frames
    assert truth.frame_at(0.0) is fr[0]
    for a, b in zip(fr, fr[1:]):
        assert truth.frame_at(a.time_s) is a and truth.frame_at(b.time_s) is b
        assert truth.frame_at((a.time_s + b.time_s) / 2) is a
    assert truth.frame_at(100.0) is fr[-1]
    with pytest.raises(ValueError):
        truth.frame_at(-0.5)


def test_sprite_boxes_mark_where_the_sprite_is(tmp_path):
    sprite = synth.Sprite("coins", (32, 24), (70.0, 20.0), (40.0, 10.0), appear_s=0.5)
    truth = synth.write_video(tmp_path / "o.mp4", [synth.Shot(1.5, "astronaut", sprites=(sprite,))], (128, 96), 10.0)
    _, images = _decode(truth.path)
    assert all(f.boxes == () for f in truth.frames[:5])
    assert truth.frames[5].boxes == ((90, 25, 32, 24),)  # round(70 + 40 * 0.5), round(20 + 10 * 0.5)
    assert truth.frames[8].boxes == ((102, 28, 26, 24),)  # clipped at the right edge (x + w = 128)
    background = images[0]
    for f in truth.frames[5:]:
        (x, y, w, h), img = f.boxes[0], images[f.index]
        assert np.abs(img[y : y + h, x : x + w] - background[y : y + h, x : x + w]).mean() > 10
        outside = np.ones(img.shape[:2], bool)
        outside[max(y - 2, 0) : y + h + 2, max(x - 2, 0) : x + w + 2] = False  # chroma bleeds a little
        assert np.abs(img - background)[outside].mean() < 1.5
    # Entirely outside the frame: no box.
    gone = synth.Sprite("coins", (16, 16), (200.0, 10.0), (0.0, 0.0))
    truth = synth.write_video(tmp_path / "g.mp4", [synth.Shot(0.2, "camera", sprites=(gone,))], (64, 48), 10.0)
    assert all(f.boxes == () for f in truth.frames)


def test_fades_dim_the_frame_linearly(tmp_path):
    shot = synth.Shot(2.0, "coffee", fade_in_s=1.0, fade_out_s=0.5)
    truth = synth.write_video(tmp_path / "f.mp4", [shot], (64, 48), 10.0)
    _, images = _decode(truth.path)
    alphas = [f.alpha for f in truth.frames]
    assert alphas[0] == 0.0 and alphas[5] == pytest.approx(0.5) and alphas[10:16] == [1.0] * 6
    assert alphas[19] == pytest.approx(0.2)  # (2.0 - 1.9) / 0.5
    means = [img.mean() for img in images]
    assert means[0] < 20 < means[10]  # black is 16 in limited-range YUV, decoded back to ~0
    assert means[5] == pytest.approx(means[10] * 0.5, rel=0.1)


def test_noise_is_optional_and_seeded(tmp_path):
    a = synth.write_video(tmp_path / "a.mp4", [synth.Shot(0.3, "camera")], (64, 48), 10.0, noise=8.0, seed=1)
    _, images = _decode(a.path)
    assert np.abs(images[1] - images[0]).mean() > 2  # each frame gets its own noise


@pytest.mark.parametrize("size", [(64, 48), (1920, 1080)])
def test_extreme_sizes(tmp_path, size):
    truth = synth.write_preset("pan", tmp_path / "s.mp4", size, 0.5, fps=30.0)
    times, images = _decode(truth.path)
    assert len(images) == 15 and images[0].shape == (size[1], size[0], 3)
    assert truth.frames[-1].offset == (round(48 * size[0] / 512 * 14 / 30), round(16 * size[0] / 512 * 14 / 30))


@pytest.mark.parametrize("size", [(65, 48), (64, 47), (46, 64), (32, 32), (1922, 64), (64, 1922)])
def test_bad_sizes_are_refused(tmp_path, size):
    with pytest.raises(ValueError, match="even|within"):
        synth.write_video(tmp_path / "x.mp4", [synth.Shot(1.0, "camera")], size)
    with pytest.raises(ValueError):
        synth.preset("static", size)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        synth.preset("nope")
    with pytest.raises(ValueError, match="unknown photo"):
        synth.write_video(tmp_path / "x.mp4", [synth.Shot(1.0, "eagle")], (64, 48))
    with pytest.raises(ValueError):
        synth.write_video(tmp_path / "x.mp4", [], (64, 48))
    with pytest.raises(ValueError):
        synth.write_video(tmp_path / "x.mp4", [synth.Shot(0.0, "camera")], (64, 48))


def test_photos_load_offline():
    for name in synth.PHOTOS:
        img = synth._photo(name)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.float32
    assert set(synth.BACKGROUNDS) <= set(synth.PHOTOS) and set(synth.SPRITE_PHOTOS) <= set(synth.PHOTOS)


CUTS = {"static": 0, "pan": 0, "fast_pan": 0, "objects": 0, "cuts": 3, "fade": 1, "mixed": 3}


@pytest.mark.parametrize("name", synth.PRESETS)
def test_every_preset_covers_its_duration_and_serialises(tmp_path, name):
    shots = synth.preset(name, (128, 96), 8.0, seed=2)
    assert sum(s.duration_s for s in shots) == pytest.approx(8.0)
    assert synth.preset(name, (128, 96), 8.0, seed=2) == shots  # deterministic
    truth = synth.write_video(tmp_path / f"{name}.mp4", shots, (128, 96), 5.0)
    assert len(truth.cuts_s) == CUTS[name] == len(shots) - 1
    d = truth.to_dict()
    text = json.dumps(d)
    assert d["duration_s"] == pytest.approx(8.0) and len(d["frames"]) == len(truth.frames)
    assert synth.GroundTruth.from_dict(json.loads(text)) == truth
    truth.save_json(tmp_path / f"{name}.json")
    assert synth.GroundTruth.load_json(tmp_path / f"{name}.json") == truth


def test_preset_motion_scales_with_width():
    assert synth.preset("pan", (512, 512))[0].pan == (48.0, 16.0)
    assert synth.preset("pan", (256, 128))[0].pan == (24.0, 8.0)
    assert synth.preset("fast_pan", (1024, 512))[0].pan == (400.0, 0.0)
    objects = synth.preset("objects", (512, 512), 12.0)[0].sprites
    assert len(objects) == 3 and sorted(s.appear_s for s in objects) == [0.0, 0.0, 6.0]
    assert all(25 <= np.hypot(*s.velocity) <= 85 and 60 <= s.size[0] <= 100 for s in objects)
    fade = synth.preset("fade", (512, 512), 12.0)
    assert (fade[0].fade_in_s, fade[0].fade_out_s) == (1.0, 1.0)


@pytest.mark.parametrize("zoom", [1.0, -0.5])
def test_a_zoom_scales_the_background_about_the_centre(tmp_path, zoom):
    """After 1 s at zoom z the background is scaled by 1 + z about the frame centre: the centre
    crop of the first frame, resized by that factor, is the later frame (zooming in), or the later
    frame's centre crop is the first frame resized (zooming out)."""
    from skimage.transform import resize

    w, h = 192, 128
    truth = synth.write_video(tmp_path / "z.mp4", [synth.Shot(1.2, "coffee", zoom=zoom)], (w, h), 10.0)
    _, images = _decode(truth.path)
    first, later = images[0].astype(np.float64), images[10].astype(np.float64)
    scale = 1.0 + zoom
    assert truth.frames[0].scale == 1.0 and truth.frames[10].scale == pytest.approx(scale)
    assert truth.frames[5].scale == pytest.approx(scale**0.5) and truth.frames[10].offset == (0, 0)
    big, small = (first, later) if scale > 1 else (later, first)  # small shows the same as big's centre

    def error(f: float) -> float:
        """Mean abs difference of the two views when the scale factor between them is f."""
        cw, ch = round(w / f), round(h / f)
        crop = big[(h - ch) // 2 : (h + ch) // 2, (w - cw) // 2 : (w + cw) // 2]
        if scale > 1:
            want, got = resize(crop, (h, w), order=1), small
        else:
            want, got = resize(small, (ch, cw), order=1, anti_aliasing=True), crop
        m = 6  # px margin: interpolation at the borders
        return float(np.abs(want - got)[m:-m, m:-m].mean())

    f = max(scale, 1 / scale)
    err, unscaled = error(f), np.abs(later - first).mean()
    assert err < 6 and unscaled > 3 * err and error(1.1 * f) > 3 * err, (err, unscaled, error(1.1 * f))
    back = synth.GroundTruth.from_dict(truth.to_dict())
    assert back.shots[0].zoom == zoom and back.frames[10].scale == pytest.approx(scale)


def test_zoom_must_be_above_minus_one(tmp_path):
    with pytest.raises(ValueError, match="zoom"):
        synth.write_video(tmp_path / "z.mp4", [synth.Shot(1.0, "coffee", zoom=-1.0)], (64, 64), 10.0)


def test_the_zoom_renderer_at_scale_one_is_the_pan_renderer():
    """Same offset and mirrored tiling conventions: a zoom too small to change the scale renders the
    pan's exact pixels, also far beyond the photo (where the background is tiled)."""
    pan = synth.Shot(3.0, "coffee", pan=(-300.0, 40.0))
    times = [i / 10 for i in range(30)]
    a = synth._ShotRenderer(pan, 128, 96, times)
    b = synth._ShotRenderer(synth.Shot(3.0, "coffee", pan=(-300.0, 40.0), zoom=1e-300), 128, 96, times)
    assert all(np.array_equal(a.render(t)[0], b.render(t)[0]) for t in times)
