"""Broken and hostile inputs, written on demand, for tests and for trying the error paths by hand.

``write_bad_inputs(folder)`` writes one file per kind of bad input a user can hand the service
and returns their paths by name. ``write_counter_video`` writes a video whose frame i shows the
number i in its pixels (each frame a flat grey level), so a test can read back which source frame a
sample came from, with constant or variable frame rate.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BAD_INPUTS = (
    "empty",  # 0 bytes
    "text",  # a text file named .mp4
    "random_bytes",  # noise named .mp4
    "truncated",  # the first half of an MP4 whose index (moov) is at the end
    "truncated_data",  # an MP4 with its index first (faststart), cut to a third of its data
    "corrupt",  # an MP4 whose middle third of data is overwritten with noise
    "audio_only",  # an M4A with an AAC track and no video
    "tiny",  # a valid 1x1-pixel video
    "zero_frames",  # an AVI with a declared 64x48 H.264 stream and no frames
    "zero_frames_mp4",  # an MP4 written with no frames: the muxer drops the empty track, no stream is left
)


def write_counter_video(
    path: str | Path,
    n_frames: int,
    fps: float = 30.0,
    size: tuple[int, int] = (64, 48),
    times_ms: list[int] | None = None,
    *,
    faststart: bool = False,
) -> Path:
    """Write an H.264 video whose frame i is flat grey level ``counter_level(i)`` (lossless-safe).

    ``times_ms`` gives each frame's presentation time (variable frame rate); otherwise frame i
    is at ``i / fps``. The time base is 1/1000 s for ``times_ms`` and exact for ``fps``.
    """
    path = Path(path)
    w, h = size
    if times_ms is not None and len(times_ms) != n_frames:
        raise ValueError("times_ms needs one entry per frame")
    with av.open(str(path), mode="w", options={"movflags": "+faststart"} if faststart else {}) as out:
        rate = Fraction(fps).limit_denominator(1000)
        stream = out.add_stream("libx264", rate=rate, options={"crf": "10", "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # PyAV: set the encoder's time base and give frames pts in it; setting frame.time_base
        # as well makes libx264 emit non-monotonic timestamps after a few dozen frames.
        stream.codec_context.time_base = Fraction(1, 1000) if times_ms is not None else 1 / rate
        for i in range(n_frames):
            img = np.full((h, w, 3), counter_level(i), np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = times_ms[i] if times_ms is not None else i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def counter_level(i: int) -> int:
    """Grey level that encodes frame number i (8 levels apart so H.264 noise cannot blur them)."""
    return 16 + 8 * (i % 28)


def read_counter(image: np.ndarray) -> int:
    """Frame number (mod 28) shown by a frame written by ``write_counter_video``."""
    return int(round((float(np.median(image)) - 16) / 8)) % 28


def write_bad_inputs(folder: str | Path) -> dict[str, Path]:
    """Write one file per entry of ``BAD_INPUTS`` into ``folder``; return name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.mp4" for name in BAD_INPUTS}
    paths["audio_only"] = folder / "audio_only.m4a"
    paths["tiny"] = folder / "tiny.mkv"
    paths["zero_frames"] = folder / "zero_frames.avi"  # MP4 and Matroska drop a track with no samples

    paths["empty"].write_bytes(b"")
    paths["text"].write_text("This is a meeting transcript, not a video.\n" * 20)
    paths["random_bytes"].write_bytes(np.random.default_rng(0).bytes(64 * 1024))

    whole = folder / "_whole.mp4"
    write_counter_video(whole, 90, 30.0, (160, 120))
    data = whole.read_bytes()
    paths["truncated"].write_bytes(data[: len(data) // 2])
    whole_fast = folder / "_whole_faststart.mp4"
    write_counter_video(whole_fast, 90, 30.0, (160, 120), faststart=True)
    data = whole_fast.read_bytes()
    paths["truncated_data"].write_bytes(data[: len(data) // 3])
    noise = np.random.default_rng(1).bytes(len(data) // 3)
    paths["corrupt"].write_bytes(data[: len(data) // 3] + noise + data[len(data) // 3 + len(noise) :])
    whole.unlink()
    whole_fast.unlink()

    _write_audio_only(paths["audio_only"])
    _write_tiny(paths["tiny"])
    for name in ("zero_frames", "zero_frames_mp4"):  # AVI keeps the empty stream, MP4 drops the track
        with av.open(str(paths[name]), mode="w") as out:
            stream = out.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            out.start_encoding()  # write the header although no frame follows
    return paths


def _write_audio_only(path: Path) -> None:
    """One second of a 440 Hz tone in AAC, no video stream."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("aac", rate=48000)
        t = np.arange(48000) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        samples_per_frame = stream.codec_context.frame_size or 1024
        for start in range(0, len(tone), samples_per_frame):
            chunk = tone[start : start + samples_per_frame][None, :]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
            frame.sample_rate = 48000
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _write_tiny(path: Path) -> None:
    """A valid three-frame 1x1 video (FFV1 in Matroska; H.264 needs even sizes)."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 1, 1, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((1, 1, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
