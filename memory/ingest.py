"""decode -> code -> store, for one video and for an archive of them.

``ingest_video`` probes the file, derives its content key, and skips it when the store already has
it ready (so re-running a job is cheap and idempotent). Otherwise decoding runs in a thread that
stays a few frames ahead of the encoder (PyAV and torch release the GIL, so the two overlap), frame
and segment rows (one per GOP, made when the next anchor closes it) are appended in batches;
none of it is visible until the commit at the end (``memory.store``). Any failure aborts the ingest
and leaves the store as it was; a kill -9 leaves invisible rows that the next commit removes.

``ingest_archive`` expands folders, globs and list files, runs ``workers`` videos at once, reports
each failure and goes on, and returns one ``IngestResult`` per source.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from videomemory.codec.config import CodecConfig
from videomemory.codec.decode import expected_samples, is_uri, probe, sample_frames
from videomemory.codec.encoder import Encoder
from videomemory.errors import InvalidArgument, NotFound, VideoMemoryError
from videomemory.memory import records
from videomemory.memory.ids import video_key
from videomemory.memory.store import DEFAULT_TENANT, Store

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv .mxf .y4m".split()
)
LIST_EXTENSIONS = frozenset({".txt", ".list", ".lst"})
FRAME_BATCH = 256  # frame rows per append: bounded memory, few LanceDB fragments
PREFETCH = 8  # decoded frames the decoder may run ahead of the encoder

T = TypeVar("T")


@dataclass
class IngestResult:
    """What happened to one source."""

    source: str
    status: str  # indexed | replaced | skipped | failed
    key: str | None = None
    frames: int = 0
    segments: int = 0
    duration_s: float = 0.0
    seconds: float = 0.0  # wall time spent on this source
    stored_bytes: int = 0
    source_bytes: int = 0
    tokens_per_min: float = 0.0
    content_class: str = ""
    error: str = ""  # the message when failed
    error_status: str = ""  # its gRPC status name
    stored_source: str = ""  # when skipped: the source the stored entry was coded from (maybe another path)
    stored_at: str = ""  # when skipped: when that entry was committed (ISO 8601, UTC)

    @property
    def x_realtime(self) -> float:
        """Seconds of video coded per wall second (0 when nothing was coded)."""
        return self.duration_s / self.seconds if self.seconds > 0 and self.status in ("indexed", "replaced") else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["x_realtime"] = round(self.x_realtime, 2)
        return out


@dataclass(frozen=True)
class Progress:
    """A progress event: ``stage`` is start, frame or done (``result`` set on done)."""

    stage: str
    source: str
    frames: int = 0  # sampled frames coded so far
    media_s: float = 0.0  # source time reached, s
    duration_s: float | None = None  # declared duration, when known
    result: IngestResult | None = None


ProgressFn = Callable[[Progress], None]


def _prefetch(items: Iterable[T], depth: int = PREFETCH) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead; errors re-raise here."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put(("error", exc))

    worker = threading.Thread(target=run, name="videomemory-decode", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def _duration_ms(declared_s: float | None, last_ms: int, fps: float) -> int:
    """The video's end: the declared duration when it is past the last sample, else one sample later."""
    step = round(1000 / fps)
    if declared_s and declared_s * 1000 > last_ms:
        return min(round(declared_s * 1000), last_ms + 10 * step)
    return last_ms + step


def _source_uri(source: str) -> str:
    return source if is_uri(source) else str(Path(source).resolve())


def ingest_video(
    store: Store,
    source: str | os.PathLike[str],
    *,
    tenant: str = DEFAULT_TENANT,
    config: CodecConfig = CodecConfig(),
    device: str = "auto",
    replace: bool = False,
    strict: bool = True,
    on_progress: ProgressFn | None = None,
    key: str | None = None,
) -> IngestResult:
    """Decode, code and store one video atomically; a no-op when it is already in the store.

    ``key`` skips hashing when the caller already has the content key.
    """
    t0 = time.perf_counter()
    source = str(source).removeprefix("file://")  # a local file by URI is stored by its path
    info = probe(source)
    key = key or video_key(source)
    result = IngestResult(source, "indexed", key=key, duration_s=info.duration_s or 0.0)
    result.source_bytes = 0 if is_uri(source) else Path(source).stat().st_size
    ingest = store.begin(tenant, key, _source_uri(source), replace=replace)
    if ingest is None:
        video = store.get_video(tenant, key)
        result.status, result.frames, result.segments = "skipped", video.frames, video.segments
        result.duration_s, result.stored_bytes = video.duration_ms / 1000, video.stored_bytes
        result.tokens_per_min, result.content_class = video.tokens_per_min, video.content_class
        result.stored_source = video.source_uri
        result.stored_at = video.created_at.isoformat(timespec="seconds") if video.created_at else ""
        result.seconds = time.perf_counter() - t0
        return result
    if on_progress:
        on_progress(Progress("start", source, duration_s=info.duration_s))
    encoder = Encoder(config, device, expected_samples(info.duration_s, config.fps))
    buf = records.RowBuffer(config.fps)
    try:
        for frame in _prefetch(sample_frames(source, config.fps, config.grid, strict=strict)):
            f = encoder.push(frame)
            if buf.closes_gop(f):
                buf.close_gop(f.code.pts_ms)
            buf.add(f)
            if len(buf.rows) >= FRAME_BATCH:  # one append per batch: few LanceDB fragments and versions
                buf.flush(ingest)
            if on_progress:
                on_progress(Progress("frame", source, len(buf.kept), frame.time_s, info.duration_s))
        duration_ms = _duration_ms(info.duration_s, buf.kept[-1].code.pts_ms, config.fps)
        buf.close_gop(duration_ms)
        buf.flush(ingest)
        stats = buf.stats()
        row = records.video_row(stats, config=config, duration_ms=duration_ms, segments=ingest.segments, stored_bytes=buf.stored)
        row |= {
            "source_uri": _source_uri(source),
            "source_bytes": result.source_bytes,
            "source_codec": info.codec,
            "width": info.width,
            "height": info.height,
            "source_fps": info.avg_fps,
            "ingest_seconds": time.perf_counter() - t0,
        }
        ingest.commit(row)
    except BaseException:
        ingest.abort()
        raise
    result.status = "replaced" if replace and ingest._expected != ingest.ingest_id else "indexed"
    result.frames, result.segments, result.stored_bytes = len(buf.kept), ingest.segments, buf.stored
    result.duration_s = duration_ms / 1000
    result.tokens_per_min, result.content_class = stats.tokens_per_min, stats.content_class
    result.seconds = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------- archives


def _read_list(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line if "://" in line or Path(line).is_absolute() else str(path.parent / line))
    return out


def expand_sources(items: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Folders (recursive, video extensions), globs, list files (.txt: one path or URI a line), files, URIs."""
    out: list[str] = []
    for item in map(str, items):
        path = Path(item)
        if "://" in item:
            out.append(item)
        elif path.is_dir():
            out += sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        elif any(ch in item for ch in "*?["):
            out += sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            out += _read_list(path)
        elif path.exists():
            out.append(item)
        else:
            raise NotFound(f"{item}: no such file, folder or glob match")
    seen: set[str] = set()
    return [s for s in out if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]


def _failed(source: str, exc: BaseException, t0: float) -> IngestResult:
    if isinstance(exc, VideoMemoryError):
        message, status = str(exc), exc.status
    else:  # a bug: still report it against the file and go on with the others
        message, status = f"internal error: {type(exc).__name__}: {exc}", "INTERNAL"
    return IngestResult(source, "failed", error=message, error_status=status, seconds=time.perf_counter() - t0)


def ingest_archive(
    store: Store,
    sources: Iterable[str | os.PathLike[str]],
    *,
    tenant: str = DEFAULT_TENANT,
    config: CodecConfig = CodecConfig(),
    device: str = "auto",
    workers: int = 1,
    replace: bool = False,
    strict: bool = True,
    on_progress: ProgressFn | None = None,
) -> list[IngestResult]:
    """Ingest every video of ``sources``; failures are reported in the results, not raised."""
    if not 1 <= workers <= 64:
        raise InvalidArgument(f"workers {workers} must be within 1..64")
    files = expand_sources(sources)
    key_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
    guard = threading.Lock()

    def one(source: str) -> IngestResult:
        t0 = time.perf_counter()
        try:
            # Same content under two paths: the second waits for the first, then skips.
            key = video_key(source)
            with guard:
                lock = key_locks[key]
            with lock:
                result = ingest_video(
                    store, source, tenant=tenant, config=config, device=device,
                    replace=replace, strict=strict, on_progress=on_progress, key=key,
                )
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the archive
            result = _failed(source, exc, t0)
        if on_progress:
            on_progress(Progress("done", source, result.frames, result.duration_s, result.duration_s, result))
        return result

    if workers == 1:
        results = [one(s) for s in files]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="videomemory-ingest") as pool:
            results = list(pool.map(one, files))
    if sum(r.status in ("indexed", "replaced") for r in results) >= 8:
        store.optimize()
    return results
