"""Live streams: frames arrive one by one; every GOP is stored and made visible when it closes.

``LiveIngest.push(image, time_s)`` takes source frames in order (any rate), samples them exactly as
files are sampled (the frame on screen at ``k / fps`` s after the first one), codes them causally
with the same ``Encoder`` as files, and when an anchor closes a GOP writes that GOP's frame rows
and segment row and **publishes** the video row (status ``live``, counts up to the closed GOP):
readers and search see the stream grow GOP by GOP, never a GOP in the middle. ``close`` stores the
last GOP and commits the video as ``ready``. A stream that breaks off (the client goes away, sends a
bad frame) is closed the same way by the server, so every frame it sent is kept: the open GOP is
valid code as it stands, since P-frames only reference the past. A crash of the server leaves the
video ``live`` with its published GOPs; sending the same stream again is then refused with a
message saying so, never silently taken over.

The key of a stream is content-derived like a file's: a hash of the stream's name and its first
frame's pixels, so a client that re-sends the same stream gets the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from videomemory.codec.config import CodecConfig
from videomemory.codec.decode import InstantSampler, SampledFrame, sampling_step
from videomemory.codec.encoder import EncodedFrame, Encoder
from videomemory.errors import FailedPrecondition, InvalidArgument
from videomemory.memory import records
from videomemory.memory.ids import KEY_HEX
from videomemory.memory.store import DEFAULT_TENANT, Ingest, Store, Video

MAX_NAME = 200


def stream_key(name: str, first: np.ndarray) -> str:
    """Content key of a live stream: its name and first frame."""
    h = hashlib.blake2b(digest_size=KEY_HEX // 2, person=b"videomemory.lv")
    h.update(name.encode())
    h.update(repr(first.shape).encode())
    h.update(np.ascontiguousarray(first).tobytes())
    return h.hexdigest()


def _to_grid(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to the grid as decoding does (area average down, bicubic up)."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    down = width * height <= image.shape[0] * image.shape[1]
    resample = Image.Resampling.BOX if down else Image.Resampling.BICUBIC
    return np.array(Image.fromarray(image).resize((width, height), resample))  # a writable copy


class LiveIngest:
    """A stream being indexed: ``push`` frames, ``close`` at the end (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        tenant: str = DEFAULT_TENANT,
        config: CodecConfig = CodecConfig(),
        device: str = "auto",
        on_publish: Callable[[Video, list[EncodedFrame]], None] | None = None,
    ) -> None:
        if not name or len(name) > MAX_NAME:
            raise InvalidArgument(f"a stream needs a name of 1..{MAX_NAME} characters")
        self.store, self.name, self.tenant, self.config = store, name, tenant, config
        self.encoder = Encoder(config, device)
        self.on_publish = on_publish
        self.ingest: Ingest | None = None
        self.video: Video | None = None
        self.key = ""
        self._t0: float | None = None
        self._sampler: InstantSampler[np.ndarray] = InstantSampler(sampling_step(config.fps))
        self._source_index = -1
        self._buf = records.RowBuffer(config.fps)

    def push(self, image: np.ndarray, time_s: float) -> Video | None:
        """Add the next source frame ((H, W, 3) uint8 RGB, its time in s); returns the video when a GOP was published."""
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise InvalidArgument(f"a frame must be an (H, W, 3) uint8 RGB array, got {arr.dtype} {arr.shape}")
        self._source_index += 1
        if self._t0 is None:
            self._t0 = time_s
            self.key = stream_key(self.name, arr)
            self.ingest = self.store.begin(self.tenant, self.key, f"live:{self.name}")
            if self.ingest is None:
                if self.store.status(self.tenant, self.key) == "live":
                    raise FailedPrecondition(
                        f"stream {self.name!r} with this first frame is video {self.key}, which is still live: another "
                        "connection is sending it, or its server stopped mid-stream (its published GOPs are kept); "
                        "delete that video to send it again, or use another stream name")
                raise FailedPrecondition(f"stream {self.name!r} with this first frame is already stored as video {self.key}; "
                                         "delete it or use another stream name")
        kept = self._sampler.push(arr, self._source_index, time_s - self._t0)
        return None if kept is None else self._code(*kept)

    def _code(self, image: np.ndarray, source_index: int, t: float) -> Video | None:
        grid = self.config.grid
        frame = SampledFrame.from_array(_to_grid(image, grid.width, grid.height), self._sampler.emitted - 1, float(t), source_index)
        f = self.encoder.push(frame)
        published = self._publish(f.code.pts_ms) if self._buf.closes_gop(f) else None
        self._buf.add(f)
        return published

    def _row(self, duration_ms: int) -> dict[str, Any]:
        assert self.ingest is not None
        row = records.video_row(self._buf.stats(), config=self.config, duration_ms=duration_ms, segments=self.ingest.segments,
                                stored_bytes=self._buf.stored)
        grid = self.config.grid
        return row | {"source_uri": f"live:{self.name}", "width": grid.width, "height": grid.height}

    def _write_gop(self, end_ms: int) -> list[EncodedFrame]:
        assert self.ingest is not None
        gop = self._buf.close_gop(end_ms)
        self._buf.flush(self.ingest)
        return gop

    def _publish(self, end_ms: int) -> Video:
        assert self.ingest is not None
        gop = self._write_gop(end_ms)
        # The row counts frames of closed GOPs only (the open GOP's frames are not written yet).
        row = self._row(end_ms) | {"frames": self.ingest.frames}
        self.video = self.ingest.publish(row)
        if self.on_publish:
            self.on_publish(self.video, gop)
        return self.video

    def close(self) -> Video:
        """Store the last GOP and commit the stream as a ready video."""
        if self.ingest is None:
            raise InvalidArgument("the stream sent no frames")
        last = self._sampler.finish()  # a stream's last frame has no known end: it counts at its own start
        if last is not None:
            self._code(*last)
        end_ms = self._buf.kept[-1].code.pts_ms + round(1000 / self.config.fps)
        gop = self._write_gop(end_ms)
        self.video = self.ingest.commit(self._row(end_ms) | {"frames": self.ingest.frames})
        if self.on_publish:
            self.on_publish(self.video, gop)
        return self.video
