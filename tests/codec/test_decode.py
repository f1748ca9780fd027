"""codec.decode: timestamp sampling (CFR, VFR, slow sources), resizing, orientation (display matrix, pixel aspect), and every bad input."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from videomemory.bench.bad_inputs import BAD_INPUTS, read_counter, write_bad_inputs, write_counter_video
from videomemory.codec.config import Grid
from videomemory.codec.decode import MAX_SIDE, SampledFrame, frame_at, probe, sample_frames
from videomemory.errors import InvalidArgument, InvalidVideo, NotFound


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_inputs(tmp_path_factory.mktemp("bad"))


def _sampled(path, fps=2.0, grid=None, **kw):
    return [(f.source_index, f.pts_ms, read_counter(f.image)) for f in sample_frames(path, fps=fps, grid=grid, **kw)]


def test_cfr_source_is_sampled_by_time_not_by_count(tmp_path):
    path = write_counter_video(tmp_path / "cfr.mp4", 75, 30.0)  # 2.5 s
    got = _sampled(path)
    # instants 0, 0.5, 1.0, 1.5, 2.0 s show frames 0, 15, 30, 45, 60; 2.5 s is past the last frame's end
    assert got == [(i, i * 1000 // 30, i % 28) for i in (0, 15, 30, 45, 60)]


def test_vfr_source_gets_the_frame_on_screen_at_each_instant(tmp_path):
    times = [0, 100, 150, 700, 720, 740, 1300, 1900, 1950, 2400]
    path = write_counter_video(tmp_path / "vfr.mp4", len(times), 30.0, times_ms=times)
    got = _sampled(path)
    # 0 s -> frame 0; 0.5 s -> frame 2 (150 ms); 1.0 s -> frame 5 (740 ms); 1.5 s -> frame 6; 2.0 s -> frame 8
    assert got == [(i, times[i], i) for i in (0, 2, 5, 6, 8)]


def test_times_are_relative_to_the_first_frame(tmp_path):
    times = [1000 + 100 * i for i in range(12)]  # the stream starts at 1 s
    path = write_counter_video(tmp_path / "late.mp4", len(times), 10.0, times_ms=times)
    got = _sampled(path)
    assert [pts for _, pts, _ in got] == [0, 500, 1000]
    assert [src for src, _, _ in got] == [0, 5, 10]


def test_a_source_slower_than_the_rate_gives_each_frame_once(tmp_path):
    path = write_counter_video(tmp_path / "slow.mp4", 4, 1.0)
    got = _sampled(path, fps=2.0)
    assert [src for src, _, _ in got] == [0, 1, 2, 3]
    assert [pts for _, pts, _ in got] == [0, 1000, 2000, 3000]


def test_frames_are_resized_to_the_grid(tmp_path):
    path = write_counter_video(tmp_path / "g.mp4", 3, 30.0, size=(160, 120))
    frames = list(sample_frames(path, fps=30.0, grid=Grid(64, 96)))
    assert [f.image.shape for f in frames] == [(96, 64, 3)] * 3
    assert all(f.image.dtype == np.uint8 for f in frames)
    assert [f.sampled_index for f in frames] == [0, 1, 2]
    native = list(sample_frames(path, fps=30.0, grid=None))
    assert native[0].image.shape == (120, 160, 3)


def test_a_downscaled_frame_keeps_its_colour_at_every_pixel(tmp_path):
    """Content moved by 2 source px is, at half the size, the same image moved by exactly 1 px:
    luma and chroma. swscale's RGB output by default keeps chroma at half the output width, so
    colour moved by an odd number of grid px landed half a chroma sample off (measured here: a
    mean error of 1.7 per value, 54 at most; with chroma at every px, 0)."""
    import skimage.data

    photo = np.tile(skimage.data.astronaut(), (1, 3, 1))[:256, :520]
    path = tmp_path / "shift.mp4"
    with av.open(str(path), "w") as out:  # lossless 4:2:0: the only loss is the subsampled chroma
        stream = out.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt, stream.options = 512, 256, "yuv420p", {"qp": "0"}
        for off in (0, 2):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[:, off : off + 512]), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    a, b = (f.image.astype(np.int16) for f in sample_frames(path, fps=2.0, grid=Grid(256, 128)))
    moved = np.abs(a[:, 1:-4] - b[:, :-5])
    assert moved.max() <= 1, (moved.mean(), moved.max())


def test_probe_reports_the_stream(tmp_path):
    info = probe(write_counter_video(tmp_path / "p.mp4", 30, 30.0, size=(96, 64)))
    assert (info.width, info.height, info.codec) == (96, 64, "h264")
    assert info.avg_fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(1.0, abs=0.05)


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no such file"):
        list(sample_frames(tmp_path / "nope.mp4"))


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_every_bad_input_raises_the_documented_error(bad, name):
    with pytest.raises(InvalidVideo) as err:
        list(sample_frames(bad[name]))
    e = err.value
    assert e.status == "INVALID_ARGUMENT"
    assert str(bad[name]) in str(e)
    assert e.reason and e.hint  # what went wrong, and what to do about it
    assert "Traceback" not in str(e)


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty", "empty"),
        ("text", "not a video"),
        ("random_bytes", "not a video"),
        ("truncated", "truncated"),
        ("truncated_data", "truncated"),
        ("corrupt", "damaged"),
        ("audio_only", "no video stream"),
        ("tiny", "1x1"),
        ("zero_frames", "no decodable frames"),
        ("zero_frames_mp4", "no streams at all"),
    ],
)
def test_bad_input_messages_say_what_is_wrong(bad, name, words):
    with pytest.raises(InvalidVideo, match=words):
        list(sample_frames(bad[name]))


def test_probe_refuses_bad_input_too(bad):
    for name in ("text", "audio_only", "tiny"):
        with pytest.raises(InvalidVideo):
            probe(bad[name])


def test_lenient_decoding_keeps_the_frames_before_the_damage(bad):
    frames = _sampled(bad["truncated_data"], fps=30.0, strict=False)
    assert frames and [c for _, _, c in frames] == list(range(len(frames)))


def test_huge_resolution_is_refused_before_decoding(tmp_path):
    path = tmp_path / "wide.mkv"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("ffv1", rate=1)
        stream.width, stream.height, stream.pix_fmt = MAX_SIDE + 16, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, MAX_SIDE + 16, 3), np.uint8), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
    with pytest.raises(InvalidVideo, match="at most"):
        list(sample_frames(path))


def test_bad_sampling_rate_is_an_invalid_argument(tmp_path):
    path = write_counter_video(tmp_path / "r.mp4", 3, 30.0)
    with pytest.raises(InvalidArgument, match="sampling rate"):
        list(sample_frames(path, fps=0))


def test_live_frames_are_validated():
    ok = SampledFrame.from_array(np.zeros((32, 48, 3), np.uint8), sampled_index=3, time_s=1.25)
    assert (ok.pts_ms, ok.source_index) == (1250, 3)
    for bad_image in (np.zeros((32, 48), np.uint8), np.zeros((32, 48, 3), np.float32), np.zeros((4, 4, 3), np.uint8)):
        with pytest.raises(InvalidArgument):
            SampledFrame.from_array(bad_image, sampled_index=0, time_s=0.0)


def test_instant_sampler_keeps_the_frame_on_screen_at_each_instant_for_files_and_streams():
    from fractions import Fraction

    from videomemory.codec.decode import InstantSampler, sampling_step

    step = sampling_step(2.0)  # instants 0, 0.5, 1.0, ...
    s: InstantSampler[str] = InstantSampler(step)
    times = [0.0, 0.2, 0.2, 0.6, 0.7, 3.0]  # a duplicate time, then a gap that spans 4 instants
    kept = [s.push(f"f{i}", i, t) for i, t in enumerate(times)]
    # f0 is on screen at 0; the duplicate f2 replaces f1 (at 0.2) and is on screen at 0.5; f3 (0.6) never is
    # (f4 is, from 1.0 to 2.5, and counts once); f5 waits for its end.
    assert [k[0] if k else None for k in kept] == [None, "f0", None, "f2", None, "f4"]
    assert kept[3] == ("f2", 2, 0.2)  # the replacing frame keeps the replaced one's time
    assert s.finish(end=Fraction(3)) is None  # a file whose last frame ends as instant 3.0 begins: not shown
    s2: InstantSampler[str] = InstantSampler(step)
    for i, t in enumerate([0.0, 3.0]):
        s2.push(f"f{i}", i, t)
    assert s2.finish() == ("f1", 1, 3.0) and s2.emitted == 2  # a stream: its last frame counts at its own start (instant 3.0)
    # A time far in the future costs no loop over the instants in between.
    s3: InstantSampler[str] = InstantSampler(step)
    s3.push("a", 0, 0.0)
    assert s3.push("b", 1, 1e12)[0] == "a" and s3.emitted == 1


_QUADRANTS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))  # top-left, top-right, bottom-left, bottom-right


def _write_oriented(path, rotation, hflip=False, vflip=False, size=(96, 64)):
    """A 1 s video of four coloured quadrants whose container says "turn me" (a phone's portrait
    recording); returns the picture as coded."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2], img[: h // 2, w // 2 :], img[h // 2 :, : w // 2], img[h // 2 :, w // 2 :] = _QUADRANTS
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10, options={"crf": "0"})
        s.width, s.height, s.pix_fmt = w, h, "yuv444p"
        s.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for _ in range(10):
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return img


def _corner_colours(img):
    """Which of the quadrants' colours each corner shows (top-left, top-right, bottom-left, bottom-right)."""
    h, w = img.shape[:2]
    px = [img[y, x].astype(int) for y, x in ((h // 8, w // 8), (h // 8, w - 1 - w // 8), (h - 1 - h // 8, w // 8),
                                             (h - 1 - h // 8, w - 1 - w // 8))]
    return [int(np.argmin(np.abs(np.array(_QUADRANTS) - p).sum(1))) for p in px]


ORIENTATIONS = [(0, False, False), (90, False, False), (-90, False, False), (180, False, False),
                (0, True, False), (0, False, True), (90, True, False), (-90, False, True)]


@pytest.mark.parametrize("rotation, hflip, vflip", ORIENTATIONS)
def test_frames_come_out_as_a_player_shows_them(tmp_path, rotation, hflip, vflip):
    # PyAV's documented meaning: turn `rotation` degrees counter-clockwise, then mirror.
    coded = _write_oriented(tmp_path / "r.mp4", rotation, hflip, vflip)
    shown = np.rot90(coded, rotation // 90)
    shown = shown[:, ::-1] if hflip else shown
    shown = shown[::-1] if vflip else shown
    want = _corner_colours(shown)

    native = next(sample_frames(tmp_path / "r.mp4", grid=None)).image
    assert native.shape == shown.shape and native.flags.c_contiguous
    assert _corner_colours(native) == want
    assert _corner_colours(next(sample_frames(tmp_path / "r.mp4", grid=Grid(64, 128))).image) == want
    assert _corner_colours(frame_at(tmp_path / "r.mp4", 0.5)) == want

    info = probe(tmp_path / "r.mp4")
    assert (info.height, info.width) == shown.shape[:2]
    if not (hflip or vflip):
        assert info.rotation == rotation % 360


def test_a_portrait_recording_gets_a_portrait_grid(tmp_path):
    _write_oriented(tmp_path / "phone.mp4", -90, size=(320, 176))  # coded landscape, shown portrait
    info = probe(tmp_path / "phone.mp4")
    assert (info.width, info.height, info.rotation) == (176, 320, 270)
    g = Grid.fit(round(info.height * info.display_aspect), info.height)
    assert g.height > g.width
    frame = next(sample_frames(tmp_path / "phone.mp4", grid=g))
    assert frame.image.shape == (g.height, g.width, 3)


def test_anamorphic_pixels_count_in_the_shown_aspect(tmp_path):
    # anamorphic video (DVD, broadcast SD): pixels wider than tall, so the picture is wider than its grid
    with av.open(str(tmp_path / "sar.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        s.sample_aspect_ratio = Fraction(16, 9)
        for _ in range(5):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((64, 96, 3), np.uint8), format="rgb24")))
        c.mux(s.encode())
    info = probe(tmp_path / "sar.mp4")
    assert (info.width, info.height) == (96, 64)
    assert info.display_aspect == pytest.approx(96 / 64 * 16 / 9)
