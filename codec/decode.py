"""Decode a video with PyAV and sample it to the codec's frame rate, by timestamp.

Sampling follows what a viewer would see: the sampled frame k is the source frame *on screen* at
``T_k = k / fps`` seconds after the first frame (the last frame whose time is <= T_k; a frame stays
on screen until the next one starts, the last one for its own duration). Times come from pts, not
from frame counts, so variable-frame-rate footage samples correctly. A source frame is used at
most once: when the source is slower than ``fps``, the instants it covers collapse to one sample.

Frames come out as a player shows them: a display matrix (a phone's portrait recording is coded
sideways and tagged "rotate 90") is applied, rotation and mirroring, as FFmpeg's player does.

Every frame carries its source frame index (decode order = display order after the decoder), its
time in ms since the first frame (the basis of stable frame IDs) and its sampled index.

Every failure a user can cause (missing file, not a video, no video stream, zero frames, a size
outside [MIN_SIDE, MAX_SIDE], damaged or truncated data) raises ``InvalidVideo`` (or ``NotFound``
for a missing path) with a message that says what to do. PyAV's own errors are caught here and
nowhere else.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Generic, TypeVar

import av
import numpy as np
from av.sidedata.sidedata import Type as _SideData
from av.video.reformatter import Interpolation

from videomemory.codec.config import Grid
from videomemory.errors import InvalidArgument, InvalidVideo, NotFound

MIN_SIDE = 16  # px; below this a 16x16 motion block does not fit
MAX_SIDE = 8192  # px; above this one decoded frame alone is hundreds of MB
TRUNCATION_SLACK_S = 1.0  # decoded end may fall short of the declared duration by this much
TRUNCATION_RATIO = 0.9  # ... or by 10%, whichever is larger

T = TypeVar("T")

_HINT_REENCODE = "re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4`"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a file's video stream (its header, and the first frame's display matrix)."""

    source: str
    width: int  # as displayed: after the display matrix's rotation (coded 1920x1080 tagged "rotate 90": 1080x1920)
    height: int
    duration_s: float | None  # declared duration, None when the container does not say
    avg_fps: float | None
    n_frames: int | None  # declared frame count, None when unknown
    codec: str
    time_base: Fraction | None
    rotation: int = 0  # degrees counter-clockwise that a player turns the coded frames (0, 90, 180, 270)
    pixel_aspect: float = 1.0  # width / height of one pixel as displayed (anamorphic SD video: 8/9, 32/27)

    @property
    def display_aspect(self) -> float:
        """Width / height of the picture as a player shows it (pixel aspect included)."""
        return self.width * self.pixel_aspect / self.height


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: RGB pixels on the grid, and where it came from in the source."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    sampled_index: int  # 0, 1, 2, ... at the sampling rate
    source_index: int  # index of the frame in the decoded source stream
    pts_ms: int  # source time in ms since the first frame (rounded)
    time_s: float = 0.0  # exact source time in seconds since the first frame

    @classmethod
    def from_array(cls, image: np.ndarray, sampled_index: int, time_s: float, source_index: int | None = None) -> "SampledFrame":
        """Wrap a live frame (an (H, W, 3) uint8 RGB array, copied: the caller may reuse its buffer) so the encoder can take it."""
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise InvalidArgument(f"a frame must be an (H, W, 3) uint8 RGB array, got {arr.dtype} {arr.shape}")
        if not (MIN_SIDE <= arr.shape[0] <= MAX_SIDE and MIN_SIDE <= arr.shape[1] <= MAX_SIDE):
            raise InvalidArgument(f"frame size {arr.shape[1]}x{arr.shape[0]} is outside {MIN_SIDE}..{MAX_SIDE} px per side")
        if time_s < 0:
            raise InvalidArgument(f"frame time must be >= 0 s, got {time_s}")
        return cls(
            image=arr.copy(order="C"),  # the encoder keeps it as the next reference: a reused buffer must not alias it
            sampled_index=sampled_index,
            source_index=sampled_index if source_index is None else source_index,
            pts_ms=round(time_s * 1000),
            time_s=float(time_s),
        )


NETWORK_TIMEOUT_US = 15_000_000  # a stalled network read fails after 15 s instead of hanging


def is_uri(source: str | os.PathLike[str]) -> bool:
    """True for a network URI (``scheme://...`` other than ``file://``), which FFmpeg opens itself."""
    text = str(source)
    return "://" in text and not text.startswith("file://")


def _open(source: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open ``source`` (a path, ``file://`` or a network URI) for reading; failures become NotFound or InvalidVideo."""
    if is_uri(source):
        try:
            return av.open(str(source), mode="r", options={"rw_timeout": str(NETWORK_TIMEOUT_US)}, timeout=NETWORK_TIMEOUT_US / 1e6)
        except av.error.FFmpegError as e:
            if isinstance(e, (av.error.FileNotFoundError, av.error.HTTPNotFoundError)):
                raise NotFound(f"{source}: not found at that URI") from e
            raise InvalidVideo(str(source), f"cannot be opened as a video ({_ffmpeg_reason(e)})",
                               "check the URI is reachable from this machine and serves a video") from e
    path = Path(str(source).removeprefix("file://"))
    if not path.exists():
        raise NotFound(f"{source}: no such file")
    if path.is_dir():
        raise InvalidArgument(f"{source}: is a directory; give a video file (folders are indexed by `videomemory index`)")
    if path.stat().st_size == 0:
        raise InvalidVideo(str(source), "the file is empty (0 bytes)", "was the copy or download interrupted?")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise InvalidVideo(
            str(source),
            f"not a video FFmpeg can read ({_ffmpeg_reason(e)})",
            "the file is damaged, truncated before its index, or not a video; " + _HINT_REENCODE,
        ) from e


def _ffmpeg_reason(e: Exception) -> str:
    """A short reason from a PyAV error, without the file path it repeats."""
    text = getattr(e, "strerror", None) or str(e)
    return str(text).split(":")[0].strip() or type(e).__name__


def _video_stream(container: av.container.InputContainer, source: str) -> av.video.stream.VideoStream:
    """The main video stream; cover art and thumbnails attached to audio files do not count."""
    streams = [
        s
        for s in container.streams.video
        if not (s.disposition & av.stream.Disposition.attached_pic)
    ]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        if not kinds:  # e.g. a recording stopped before its first frame: the muxer wrote no track
            raise InvalidVideo(source, "holds no streams at all (0 frames)",
                               "the recording or export wrote no frames; record or export it again")
        raise InvalidVideo(
            source,
            f"has no video stream (streams found: {', '.join(kinds)})",
            "an audio-only file or a subtitle track cannot be indexed as video",
        )
    stream = max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))
    w, h = stream.codec_context.width, stream.codec_context.height
    if w and h:
        _check_size(source, w, h)
    return stream


def _check_size(source: str, w: int, h: int) -> None:
    """Refuse frames too small for one motion block or too large to decode safely."""
    if min(w, h) < MIN_SIDE:
        raise InvalidVideo(source, f"frames are {w}x{h} px; at least {MIN_SIDE}x{MIN_SIDE} is needed", "is this a placeholder or a broken export?")
    if max(w, h) > MAX_SIDE:
        raise InvalidVideo(source, f"frames are {w}x{h} px; at most {MAX_SIDE} px per side is supported", "downscale it first, e.g. `ffmpeg -i IN -vf scale=3840:-2 OUT.mp4`")


def _declared_timing(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[Fraction | None, float | None]:
    """The stream's declared frame rate and duration in seconds (None where the file says nothing)."""
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return stream.average_rate or stream.guessed_rate, duration


def probe(source: str | os.PathLike[str]) -> VideoInfo:
    """Read the container header of a video file, and its first frame's display matrix."""
    with _open(source) as container:
        stream = _video_stream(container, str(source))
        cc = stream.codec_context
        rate, duration = _declared_timing(container, stream)
        try:  # the display matrix reaches PyAV on decoded frames only
            orient = _orientation(next(container.decode(stream)))
        except (av.error.FFmpegError, StopIteration):
            orient = _UPRIGHT  # sample_frames says what is wrong with the data
        sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
        w, h = (cc.height, cc.width) if orient[0] else (cc.width, cc.height)
        return VideoInfo(
            source=str(source),
            width=w,
            height=h,
            duration_s=duration,
            avg_fps=float(rate) if rate else None,
            n_frames=stream.frames or None,
            codec=cc.name,
            time_base=stream.time_base,
            rotation=_ROTATION[orient],
            pixel_aspect=float(1 / sar if orient[0] else sar) if sar else 1.0,
        )


def stream_packets(source: str | os.PathLike[str]) -> Iterator[tuple[bytes, bytes]]:
    """Demux (no decode) the main video stream: a header, then per packet its time and its bytes.

    The first item is the stream header (codec, size, extradata) with empty bytes; each packet's
    header is its pts relative to the first packet, in ms, so a re-mux into another container
    yields the same items. This feeds ``memory.ids.video_key``.
    """
    name = str(source)
    with _open(source) as container:
        stream = _video_stream(container, name)
        cc = stream.codec_context
        yield f"{cc.name}:{cc.width}x{cc.height}".encode(), bytes(cc.extradata or b"")
        first: int | None = None
        n = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's flush packet
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is not None and first is None:
                    first = ts
                rel = -1 if ts is None or packet.time_base is None else round((ts - first) * packet.time_base * 1000)
                n += 1
                yield rel.to_bytes(8, "little", signed=True), bytes(packet)
        except av.error.FFmpegError as e:
            raise InvalidVideo(name, f"the container is damaged after {n} packets ({_ffmpeg_reason(e)})", _HINT_REENCODE) from e
        if n == 0:
            raise InvalidVideo(name, "the video stream has no data (0 packets)", "the file is empty or truncated; " + _HINT_REENCODE)


Orientation = tuple[bool, bool, bool]  # (transpose, then flip the rows, then flip the columns)
_UPRIGHT: Orientation = (False, False, False)
# The counter-clockwise rotation of each orientation (a mirrored one: of the rotation before its mirror).
_ROTATION = {(False, False, False): 0, (True, True, False): 90, (False, True, True): 180, (True, False, True): 270,
             (False, False, True): 0, (True, True, True): 90, (False, True, False): 180, (True, False, False): 270}


def _orientation(frame: av.VideoFrame) -> Orientation:
    """How to turn a decoded frame into what a player shows, from its display matrix (none: upright).

    The matrix maps a coded pixel (x, y) to the shown (a*x + c*y, b*x + d*y) (libavutil/display.h;
    a, b, c, d are its entries 0, 1, 3, 4). Angles between quarter turns go to the nearest one.
    """
    # Looked up by key: PyAV 18.1.0 iterated the container's values, 18.1.1 iterates its keys.
    data = frame.side_data.get(_SideData.DISPLAYMATRIX)
    if data is None:
        return _UPRIGHT
    a, b, _, c, d = struct.unpack("=9i", bytes(data)[:36])[:5]
    if abs(a) + abs(d) >= abs(b) + abs(c):
        return False, d < 0, a < 0  # x' = a*x, y' = d*y
    return True, b < 0, c < 0  # x' = c*y, y' = b*x: the shown rows are the coded columns


def _orient(rgb: np.ndarray, orient: Orientation) -> np.ndarray:
    """An (H, W, 3) image turned as ``orient`` says (C-contiguous: the kernels and torch need it)."""
    if orient == _UPRIGHT:
        return np.ascontiguousarray(rgb)  # PyAV 18.1.1 gives a frame's rows with their padding, a strided view
    transpose, flip_rows, flip_cols = orient
    if transpose:
        rgb = rgb.transpose(1, 0, 2)
    return np.ascontiguousarray(rgb[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1])


def _to_rgb(frame: av.VideoFrame, grid: Grid | None, orient: Orientation = _UPRIGHT) -> np.ndarray:
    """RGB pixels of a decoded frame as shown, resized to the grid (area filter down, bicubic up).

    The resize asks swscale for chroma at every output pixel (``FULL_CHR_H_INT``). By default its
    RGB output takes chroma at half the output width, one value per pair of pixels: content that
    moved an odd number of grid pixels then carries its colour edges half a chroma sample off,
    and the RGB block cost prefers an even vector next to the pan. A 1920x1080 pan onto the 512^2
    grid had 90.7% of its interior blocks on the pan (the worst pair 86.6%), the misses all at
    even dx; with full chroma 97.7% (95.4%), and the residual there fell from 2.17 to 1.46 per value.
    """
    gw, gh = (frame.width, frame.height) if grid is None else (grid.height, grid.width) if orient[0] else (grid.width, grid.height)
    if (frame.width, frame.height) == (gw, gh):  # the coded size the grid asks for (turned, if the frames are)
        return _orient(_full_chroma(frame).to_ndarray(format="rgb24"), orient)
    down = gw * gh <= frame.width * frame.height
    interpolation = (Interpolation.AREA if down else Interpolation.BICUBIC) | Interpolation.FULL_CHR_H_INT
    return _orient(frame.to_ndarray(width=gw, height=gh, format="rgb24", interpolation=interpolation), orient)


def _full_chroma(frame: av.VideoFrame) -> av.VideoFrame:
    """The frame with its chroma interpolated to full resolution (bilinear), if it was subsampled.

    Without a resize, swscale converts 4:2:0 to RGB by repeating each chroma sample over 2x2
    pixels. Content that moved an odd number of pixels then carries its colour edges one pixel off
    between frames, and the RGB block cost prefers a wrong vector next to the true one. On a
    generated 640x480 pan at odd speeds (variable frame rate), 18 of 59 frames had under 95% of
    their interior blocks on the pan (the worst 77.2%); interpolated, none did (the worst 96.5%),
    and the residual fell from 1.15 to 0.81 per value.
    """
    fmt = frame.format
    if all(c.width == frame.width and c.height == frame.height for c in fmt.components):
        return frame
    deep = max(c.bits for c in fmt.components) > 8
    full = "yuv444p16le" if deep else "yuvj444p" if fmt.name.startswith("yuvj") else "yuv444p"
    return frame.reformat(format=full, interpolation="BILINEAR")


def _frame_time(frame: av.VideoFrame, index: int, fallback_rate: Fraction | None) -> Fraction | None:
    """Exact presentation time of a decoded frame in seconds (None if it cannot be known)."""
    if frame.pts is not None and frame.time_base is not None:
        return frame.pts * frame.time_base
    if fallback_rate:
        return Fraction(index) / fallback_rate
    return None


def expected_samples(duration_s: float | None, fps: float) -> int | None:
    """How many frames sampling a file of this declared duration gives (instants ``k / fps`` before its end); None if unknown."""
    if duration_s is None or not duration_s > 0:
        return None
    return max(1, math.ceil(duration_s * fps - 1e-6))


def sampling_step(fps: float) -> Fraction:
    """Seconds between sampling instants, exact (so instant k is exactly ``k / fps``)."""
    if not fps > 0:
        raise InvalidArgument(f"sampling rate must be > 0 frames/s, got {fps}")
    return Fraction(fps).limit_denominator(1_000_000) ** -1


class InstantSampler(Generic[T]):
    """Which frames of a stream are on screen at the sampling instants ``k * step`` (files and live alike).

    ``push`` frames in arrival order with their time since the first frame; it returns the
    previous frame once a later one shows that it was on screen at an instant (each frame at most
    once). A frame whose time is not after the pending one's replaces it (duplicate or
    out-of-order timestamps). ``finish`` decides the last frame: a file knows when it leaves the
    screen (its end time); a live stream does not, so its last frame counts only at instants up to
    its own start.
    """

    def __init__(self, step: Fraction | float) -> None:
        self.step = step
        self.pending: tuple[T, int, Fraction | float] | None = None  # (frame, source index, time)
        self.emitted = 0
        self._k = 0  # the next sampling instant is k * step

    def push(self, frame: T, index: int, t: Fraction | float) -> tuple[T, int, Fraction | float] | None:
        """Take the next frame; return the pending one if it was on screen at an instant."""
        out = None
        if self.pending is not None:
            if t <= self.pending[2]:
                self.pending = (frame, index, self.pending[2])
                return None
            if self._k * self.step < t:
                out = self.pending
                self.emitted += 1
                self._k = math.ceil(Fraction(t) / Fraction(self.step))  # the first instant at or after t (O(1) for any gap)
        self.pending = (frame, index, t)
        return out

    def finish(self, end: Fraction | float | None = None) -> tuple[T, int, Fraction | float] | None:
        """The last frame if it is on screen at an instant before ``end`` (None: only at its start), or if nothing was kept."""
        if self.pending is None:
            return None
        last, self.pending = self.pending, None
        shown = self._k * self.step < end if end is not None else self._k * self.step <= last[2]
        if shown or self.emitted == 0:
            self.emitted += 1
            return last
        return None


def sample_frames(
    source: str | os.PathLike[str],
    fps: float = 2.0,
    grid: Grid | None = Grid(),
    *,
    strict: bool = True,
) -> Iterator[SampledFrame]:
    """Decode ``source`` and yield the frames on screen at ``k / fps`` s, resized to ``grid``.

    ``grid=None`` keeps the source size. The decoder runs on all cores (frame threads). With
    ``strict`` (the default) a file whose data ends well before its declared duration, or that
    fails to decode midway, raises ``InvalidVideo`` *after* the frames decoded so far, so a caller
    that commits atomically (as ingest does) stores nothing; ``strict=False`` keeps what decoded.
    """
    step = sampling_step(fps)
    name = str(source)
    with _open(source) as container:
        stream = _video_stream(container, name)
        stream.thread_type = "AUTO"
        rate, declared = _declared_timing(container, stream)

        t0: Fraction | None = None
        sampler: InstantSampler[av.VideoFrame] = InstantSampler(step)
        index = -1
        last_end = Fraction(0)
        error: Exception | None = None
        orient = _UPRIGHT  # the display matrix, read off the first frame (it is the stream's)

        def emit(kept: tuple[av.VideoFrame, int, Fraction]) -> SampledFrame:
            frame, src, t = kept
            return SampledFrame(
                image=_to_rgb(frame, grid, orient),
                sampled_index=sampler.emitted - 1,
                source_index=src,
                pts_ms=round(t * 1000),
                time_s=float(t),
            )

        try:
            for frame in container.decode(stream):
                index += 1
                if index == 0:
                    _check_size(name, frame.width, frame.height)
                    orient = _orientation(frame)
                t_abs = _frame_time(frame, index, rate)
                if t_abs is None:
                    raise InvalidVideo(name, "frames carry no timestamps and the stream declares no frame rate", _HINT_REENCODE)
                if t0 is None:
                    t0 = t_abs
                kept = sampler.push(frame, index, t_abs - t0)
                if kept is not None:
                    yield emit(kept)
                last_end = sampler.pending[2]  # type: ignore[index]
        except av.error.FFmpegError as e:
            error = e

        if sampler.pending is not None:
            last_frame, _, last_t = sampler.pending
            last_end = last_t + frame_duration(last_frame, rate)
            kept = sampler.finish(last_end)
            if kept is not None:
                yield emit(kept)

        if index < 0:
            reason = "contains a video stream but no decodable frames"
            if error is not None:
                reason = f"no frame could be decoded ({_ffmpeg_reason(error)})"
            raise InvalidVideo(name, reason, "the file is empty, damaged or truncated; " + _HINT_REENCODE)
        if strict and error is not None:
            raise InvalidVideo(
                name,
                f"decoding failed after {index + 1} frames ({float(last_end):.2f} s): {_ffmpeg_reason(error)}",
                "the file is damaged; re-encode it, or pass strict=False / --lenient to keep the frames before the damage",
            )
        if strict and declared and float(last_end) < min(declared * TRUNCATION_RATIO, declared - TRUNCATION_SLACK_S):
            raise InvalidVideo(
                name,
                f"the data ends at {float(last_end):.2f} s but the file declares {declared:.2f} s",
                "the file looks truncated (interrupted copy or recording); re-copy it, or pass "
                "strict=False / --lenient to keep the frames that are there",
            )


def frame_at(source: str | os.PathLike[str], time_s: float) -> np.ndarray:
    """The source frame on screen ``time_s`` after the first frame, full resolution, (H, W, 3) uint8 RGB.

    Seeks to the key frame before it and decodes forward, so it costs one GOP of the source.
    """
    name = str(source)
    with _open(source) as container:
        stream = _video_stream(container, name)
        stream.thread_type = "AUTO"
        rate, _ = _declared_timing(container, stream)
        try:
            first = next(container.decode(stream))
            orient = _orientation(first)
            t0 = _frame_time(first, 0, rate) or Fraction(0)
            target = t0 + Fraction(time_s).limit_denominator(1_000_000)
            if stream.time_base is not None and target > t0:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            else:
                container.seek(0, stream=stream, backward=True)
            shown: av.VideoFrame | None = None
            for i, frame in enumerate(container.decode(stream)):
                t = _frame_time(frame, i, rate)
                if t is not None and t > target + Fraction(1, 2000) and shown is not None:
                    break
                shown = frame
        except (av.error.FFmpegError, StopIteration) as e:
            raise InvalidVideo(name, f"cannot decode the frame at {time_s:.3f} s ({_ffmpeg_reason(e)})", _HINT_REENCODE) from e
        if shown is None:
            raise InvalidVideo(name, f"no frame at {time_s:.3f} s", _HINT_REENCODE)
        return _to_rgb(shown, None, orient)


def frame_duration(frame: av.VideoFrame, rate: Fraction | None) -> Fraction:
    """How long a frame stays on screen: its own duration, else 1 / the stream's frame rate."""
    if frame.duration and frame.time_base is not None:
        return frame.duration * frame.time_base
    if rate:
        return 1 / Fraction(rate)
    return Fraction(0)
