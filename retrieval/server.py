"""The gRPC server: ``videomemory.v1.VideoMemory`` as a thin shell over the library, plus health and reflection.

Each RPC authenticates the caller (an API key in metadata maps to a tenant), parses resource
names (another tenant's name is NOT_FOUND, like a missing one), calls the library function of the
same name, and converts the result. Library errors become statuses in ``retrieval.status``.
A path the server opens for a client must resolve (symlinks followed) under a configured ingest
root, and a network URI must start with a configured URI root (no '.' or '..' segments); anything
else is PERMISSION_DENIED. Deadlines are checked before heavy work, and a
cancelled or expired ingest stops and stores nothing.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import tempfile
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from PIL import Image, UnidentifiedImageError

from videomemory.codec.config import CodecConfig, PlanConfig
from videomemory.codec.decode import is_uri
from videomemory.errors import Cancelled, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, VideoMemoryError
from videomemory.memory import ids
from videomemory.memory.ingest import Progress, ingest_video
from videomemory.memory.live import LiveIngest
from videomemory.memory.resolve import Resolved, resolve_citations, resolve_frame
from videomemory.memory.store import Store, Video
from videomemory.memory.usage import Usage, usage
from videomemory.retrieval.clips import get_clip, png_bytes
from videomemory.retrieval.embed import Embedder, load_embedder
from videomemory.retrieval.search import SearchFilter, search
from videomemory.retrieval.status import to_status
from videomemory.retrieval.vectors import embed_gops, embed_video
from videomemory.v1 import video_memory_pb2 as pb
from videomemory.v1 import video_memory_pb2_grpc as rpc

log = logging.getLogger("videomemory.server")
SERVICE = "videomemory.v1.VideoMemory"
MAX_MESSAGE = 16 * 1024 * 1024  # bytes a request may have (an upload chunk, an image query)
MAX_RESPONSE = 64 * 1024 * 1024  # bytes a response may have (a clip with images)
MAX_UPLOAD = 8 * 1024**3  # bytes of one uploaded video
MAX_TEXT = 100_000  # characters of ResolveCitations text
KEY_HEADERS = ("x-api-key", "authorization")


@dataclass
class ServerConfig:
    """How the server runs."""

    store: str | None = None  # store URI; None: the default store
    host: str = "127.0.0.1"
    port: int = 50051  # 0: pick a free port
    workers: int = 8  # RPCs served at once
    ingest_roots: list[str] = field(default_factory=list)  # folders clients may ingest from by path
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> tenant
    single_tenant: str | None = None  # "--insecure-single-tenant": every call is this tenant, no key needed
    embedder: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


def load_api_keys(path: str | None = None, env: str = "VIDEOMEMORY_API_KEYS") -> dict[str, str]:
    """API keys: a JSON file ``{"KEY": "tenant", ...}`` and/or ``$VIDEOMEMORY_API_KEYS`` as ``KEY=tenant,KEY2=tenant2``."""
    keys: dict[str, str] = {}
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"API key file {path}: {exc}; expected JSON like {{\"KEY\": \"tenant\"}}") from None
        keys.update({str(k): str(v) for k, v in data.items()})
    for item in filter(None, (os.environ.get(env) or "").split(",")):
        key, sep, tenant = item.partition("=")
        if not sep:
            raise InvalidArgument(f"${env} must be KEY=tenant pairs separated by commas")
        keys[key.strip()] = tenant.strip()
    for tenant in keys.values():
        ids.check_tenant(tenant)
    return keys


def _abort(context: grpc.ServicerContext, error: VideoMemoryError, field: str = "", resource: tuple[str, str] | None = None) -> None:
    context.abort_with_status(to_status(error, field, resource))


def _video_pb(v: Video) -> pb.Video:
    out = pb.Video(
        name=v.name, source_uri=v.source_uri, duration_ms=v.duration_ms, width=v.width, height=v.height, fps=v.fps,
        grid_width=v.grid_width, grid_height=v.grid_height, frames=v.frames, segments=v.segments, tokens=v.tokens,
        tokens_per_minute=v.tokens_per_min, stored_bytes=v.stored_bytes, source_bytes=v.source_bytes,
        content_class=v.content_class,
    )
    if v.created_at is not None:
        out.create_time.FromDatetime(v.created_at)
    return out


def _seal(live: LiveIngest | None) -> Video | None:
    """Close a stream that broke off so every frame it sent is kept; None when it never started or cannot be closed."""
    if live is None or live.ingest is None:
        return None
    try:
        return live.close()
    except VideoMemoryError as exc:  # e.g. the store failed: the published GOPs stay visible as they were
        log.warning("stream %s could not be closed after it broke off: %s", live.name, exc)
        return None


def _decode_image(data: bytes, field_name: str) -> np.ndarray:
    """An encoded image from a request as (H, W, 3) uint8 RGB, or InvalidArgument."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.array(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InvalidArgument(f"{field_name} is not a PNG/JPEG/WebP Pillow can read ({exc})") from None


def _png(image: np.ndarray) -> bytes:
    return png_bytes(image, compress_level=1)  # fast: responses are built per call


def _resolved_pb(tenant: str, r: Resolved) -> pb.ResolvedFrame:
    return pb.ResolvedFrame(
        requested=r.requested, frame=r.frame.tenant_name(tenant), tag=r.frame.tag, exact=r.exact, source_uri=r.source_uri,
        time_seconds=r.time_s, source_index=r.source_index, segment=r.segment, segment_start_ms=r.segment_start_ms,
        segment_end_ms=r.segment_end_ms, role=r.role, anchor=r.anchor.tenant_name(tenant), sent=r.sent, psnr_db=r.psnr,
        notes=list(r.notes), png=_png(r.image) if r.image is not None else b"", image_origin=r.image_origin,
    )


class VideoMemoryService(rpc.VideoMemoryServicer):
    """The RPCs: each authenticates, parses names, calls the library, converts the answer."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = Store(config.store)
        self.embedder: Embedder = load_embedder(config.embedder)
        self.roots = [Path(r).resolve() for r in config.ingest_roots if not is_uri(r)]
        self.uri_roots = [r if r.endswith("/") else r + "/" for r in config.ingest_roots if is_uri(r)]
        self._ingest_lock = threading.Lock()  # one ingest codes at a time; others queue

    # ------------------------------------------------------------------ plumbing

    def _tenant(self, context: grpc.ServicerContext) -> str:
        if self.config.single_tenant:
            return self.config.single_tenant
        meta = {k.lower(): v for k, v in context.invocation_metadata()}
        key = meta.get("x-api-key") or meta.get("authorization", "").removeprefix("Bearer ").strip()
        tenant = self.config.api_keys.get(key) if key else None
        if tenant is None:
            why = "no API key in the call metadata" if not key else "the API key is not valid"
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{why}: send 'x-api-key: KEY' (keys are configured on the server)")
        return tenant  # type: ignore[return-value]

    def _video_key(self, tenant: str, name: str, field_name: str) -> str:
        """The key of ``tenants/{tenant}/videos/{key}``; another tenant's name is NOT_FOUND."""
        parts = name.strip().split("/")
        if len(parts) == 4 and parts[0] == "tenants" and parts[2] == "videos":
            owner, key = parts[1], parts[3]
        elif len(parts) == 2 and parts[0] == "videos":
            owner, key = tenant, parts[1]
        else:
            raise ids.MalformedId(f"{field_name} {name!r} is malformed: expected 'tenants/{{tenant}}/videos/{{video}}'")
        ids.check_key(key)
        if owner != tenant:
            raise NotFound(f"video {name} is not in this store for your tenant")
        return key

    def _call(self, context: grpc.ServicerContext, fn, field_name: str = "", resource: tuple[str, str] | None = None):
        try:
            return fn()
        except VideoMemoryError as exc:
            _abort(context, exc, field_name, resource)

    def _check_time(self, context: grpc.ServicerContext, seconds: float = 0.05) -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining < seconds:
            raise DeadlineExceeded("the deadline passed before the work could start; allow more time")

    # ------------------------------------------------------------------ videos

    def GetVideo(self, request: pb.GetVideoRequest, context: grpc.ServicerContext) -> pb.Video:
        tenant = self._tenant(context)
        return self._call(context, lambda: _video_pb(self.store.get_video(tenant, self._video_key(tenant, request.name, "name"))),
                          "name", ("videomemory.v1.Video", request.name))

    def ListVideos(self, request: pb.ListVideosRequest, context: grpc.ServicerContext) -> pb.ListVideosResponse:
        tenant = self._tenant(context)

        def run() -> pb.ListVideosResponse:
            size = request.page_size or 100
            after = request.page_token
            if after and len(after) != ids.KEY_HEX:
                raise InvalidArgument("page_token is malformed: pass the next_page_token of the previous page unchanged")
            page = self.store.list_videos(tenant, page_size=size, after_key=after)
            more = len(page) == size and bool(self.store.list_videos(tenant, page_size=1, after_key=page[-1].key))
            return pb.ListVideosResponse(videos=[_video_pb(v) for v in page], next_page_token=page[-1].key if more else "")

        return self._call(context, run, "page_size")

    def DeleteVideo(self, request: pb.DeleteVideoRequest, context: grpc.ServicerContext):
        from google.protobuf import empty_pb2

        tenant = self._tenant(context)

        def run():
            self.store.delete_video(tenant, self._video_key(tenant, request.name, "name"))
            return empty_pb2.Empty()

        return self._call(context, run, "name", ("videomemory.v1.Video", request.name))

    # ------------------------------------------------------------------ ingest

    def _allowed_path(self, uri: str) -> str:
        """``uri`` when it lies under an ingest root (a folder, or a URI prefix such as ``https://media/x/``)."""
        if is_uri(uri):
            parts = urlsplit(uri)
            segments = unquote(parts.path).split("/")
            if ".." in segments or "." in segments:
                raise PermissionDenied(f"{uri}: '.' and '..' are not allowed in an ingest URI")
            for root in self.uri_roots:
                r = urlsplit(root)
                if (parts.scheme, parts.netloc) == (r.scheme, r.netloc) and unquote(parts.path).startswith(unquote(r.path)):
                    return uri
            where = ", ".join(self.uri_roots) or "none configured (start the server with --ingest-root https://host/path/)"
            raise PermissionDenied(f"{uri}: not under the server's ingest URI roots ({where}); upload the bytes instead")
        path = Path(uri.removeprefix("file://")).resolve()  # follows symlinks and '..'
        if not any(path == root or root in path.parents for root in self.roots):
            where = ", ".join(map(str, self.roots)) or "none configured (start the server with --ingest-root DIR)"
            raise PermissionDenied(f"{uri}: not under the server's ingest roots ({where}); upload the bytes instead")
        return str(path)

    def _receive(self, first: pb.IngestVideoRequest, rest: Iterator[pb.IngestVideoRequest], context) -> Iterator[pb.IngestVideoProgress | str]:
        """Write an upload to the store's upload folder; yields progress, then the file's path."""
        folder = Path(self.store.uri) / "_uploads" if "://" not in self.store.uri else Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        suffix = Path(first.file_name).suffix[:8] if first.file_name else ".bin"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=suffix)
        received = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for msg in [first, *rest]:
                    if not context.is_active():
                        raise InvalidArgument("the upload was cancelled")
                    received += len(msg.chunk)
                    if received > MAX_UPLOAD:
                        raise InvalidArgument(f"the upload is over {MAX_UPLOAD // 1024**3} GiB; put the file under an ingest root instead")
                    f.write(msg.chunk)
                    yield pb.IngestVideoProgress(state=pb.IngestVideoProgress.RECEIVING, received_bytes=received)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        yield tmp

    def IngestVideo(self, request_iterator: Iterator[pb.IngestVideoRequest], context: grpc.ServicerContext):
        tenant = self._tenant(context)
        try:
            first = next(request_iterator)
        except StopIteration:
            _abort(context, InvalidArgument("send at least one IngestVideoRequest (a uri, or the first chunk)"), "source")
            return
        try:
            kind = first.WhichOneof("source")
            if kind is None:
                raise InvalidArgument("set `uri` or start sending `chunk`s")
            config = CodecConfig(fps=first.fps or 2.0, plan=PlanConfig(budget_per_min=first.budget_tokens_per_minute or None))
            if kind == "uri":
                path = self._allowed_path(first.uri)
            else:
                path = ""
                for item in self._receive(first, request_iterator, context):
                    if isinstance(item, str):
                        path = item
                    else:
                        yield item
            yield from self._code(tenant, path, config, first.replace, context)
        except VideoMemoryError as exc:
            _abort(context, exc, "uri" if exc.status != "NOT_FOUND" else "", None)

    def _code(self, tenant: str, path: str, config: CodecConfig, replace: bool, context: grpc.ServicerContext) -> Iterator[pb.IngestVideoProgress]:
        """Ingest and embed in a worker thread, streaming its progress; a cancelled call aborts it (nothing stored)."""
        events: queue.Queue[tuple[str, object]] = queue.Queue()

        def on_progress(p: Progress) -> None:
            if not context.is_active():
                raise InvalidArgument("the call was cancelled or its deadline passed; nothing was stored")
            if p.stage == "frame" and p.frames % 8 == 1:
                events.put(("progress", pb.IngestVideoProgress(
                    state=pb.IngestVideoProgress.CODING, frames=p.frames, media_seconds=p.media_s, duration_seconds=p.duration_s or 0.0)))

        def work() -> None:
            try:
                with self._ingest_lock:
                    self._check_time(context, 0.5)
                    result = ingest_video(self.store, path, tenant=tenant, config=config, replace=replace, on_progress=on_progress)
                    video = self.store.get_video(tenant, result.key)  # type: ignore[arg-type]
                    if not self.store.has_embeddings(video, self.embedder.name):
                        embed_video(self.store, video, self.embedder)
                events.put(("done", (result, video)))
            except BaseException as exc:  # noqa: BLE001 - handed to the RPC thread
                events.put(("error", exc))

        threading.Thread(target=work, name="videomemory-ingest", daemon=True).start()
        while True:
            kind, value = events.get()
            if kind == "progress":
                yield value  # type: ignore[misc]
            elif kind == "error":
                raise value  # type: ignore[misc]
            else:
                result, video = value  # type: ignore[misc]
                yield pb.IngestVideoProgress(state=pb.IngestVideoProgress.DONE, frames=result.frames, media_seconds=result.duration_s,
                                             duration_seconds=result.duration_s, already_indexed=result.status == "skipped",
                                             video=_video_pb(video))
                return

    def IngestFrames(self, request_iterator: Iterator[pb.IngestFramesRequest], context: grpc.ServicerContext) -> pb.IngestFramesResponse:
        tenant = self._tenant(context)

        def run() -> pb.IngestFramesResponse:
            live: LiveIngest | None = None
            received = published = 0
            try:
                for msg in request_iterator:
                    if live is None:
                        config = CodecConfig(fps=msg.fps or 2.0)

                        def on_publish(video: Video, gop: list) -> None:
                            nonlocal published
                            published += 1
                            embed_gops(self.store, video, self.embedder, {video.segments - 1})

                        live = LiveIngest(self.store, msg.stream, tenant=tenant, config=config, on_publish=on_publish)
                    if not context.is_active():
                        raise Cancelled("the stream was cancelled")
                    live.push(_decode_image(msg.image, "image"), msg.time_ms / 1000.0)
                    received += 1
            except BaseException as exc:  # the client went away or sent a bad frame: keep what it sent
                kept = _seal(live)
                if kept is not None and isinstance(exc, VideoMemoryError):
                    exc.args = (f"{exc} (frame {received}); the {kept.frames} sampled frames before it were kept as "
                                f"{kept.name}, ready",)
                raise
            if live is None:
                raise InvalidArgument("the stream sent no frames")
            video = live.close()
            return pb.IngestFramesResponse(video=_video_pb(video), frames_received=received, segments_published=published)

        return self._call(context, run, "image")

    # ------------------------------------------------------------------ search, clips, frames

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        tenant = self._tenant(context)

        def run() -> pb.SearchResponse:
            kind = request.WhichOneof("query")
            if kind is None:
                raise InvalidArgument("set one query: text, image or frame")
            image = _decode_image(request.image, "image") if kind == "image" else None
            flt = SearchFilter(
                videos=tuple(self._video_key(tenant, v, "videos") for v in request.videos),
                start_ms=request.start_ms or None,
                end_ms=request.end_ms or None,
                content_classes=tuple(request.content_classes),
            )
            self._check_time(context)
            page = search(self.store, tenant, self.embedder, text=request.text if kind == "text" else None, image=image,
                          frame=request.frame if kind == "frame" else None, filters=flt,
                          page_size=request.page_size or 10, page_token=request.page_token)
            hits = [
                pb.SearchHit(frame=h.frame.tenant_name(tenant), tag=h.tag, score=h.score, video=f"tenants/{tenant}/videos/{h.video_key}",
                             segment_start_ms=h.start_ms, segment_end_ms=h.end_ms, content_class=h.content_class, kind=h.kind)
                for h in page.hits
            ]
            return pb.SearchResponse(hits=hits, next_page_token=page.next_page_token, embedder=page.embedder)

        return self._call(context, run, "query")

    def GetClip(self, request: pb.GetClipRequest, context: grpc.ServicerContext) -> pb.Clip:
        tenant = self._tenant(context)

        def run() -> pb.Clip:
            key = self._video_key(tenant, request.video, "video")
            self._check_time(context)
            c = get_clip(self.store, tenant, key, request.start_ms, request.end_ms, request.token_budget, request.plan or "adaptive",
                         cancelled=lambda: not context.is_active())
            parts = []
            for p, (png, crop_pngs) in zip(c.parts, c.pngs()):  # most of a response's cost; kept for the next clip
                crops = [pb.Crop(x0=x.box[0], y0=x.box[1], x1=x.box[2], y1=x.box[3], tokens=x.cells, png=data)
                         for x, data in zip(p.crops, crop_pngs)]
                parts.append(pb.ClipPart(
                    frame=p.frame.tenant_name(tenant), tag=p.tag, time_seconds=p.time_s, role=p.role, resynthesised=p.resynthesised,
                    tokens=p.tokens, image_tokens=p.image_tokens, text_tokens=p.text_tokens, png=png, crops=crops,
                    motion_mean_px=p.motion.get("mean_px", 0.0), trimmed=p.trimmed, text=p.text(),
                ))
            code = []
            if request.include_code:
                code = [pb.GopCode(anchor_format=g.anchor.format, anchor=g.anchor.data, p_codes=[x.to_bytes() for x in g.p_codes])
                        for g in c.gops]
            return pb.Clip(video=c.video.name, start_ms=c.start_ms, end_ms=c.end_ms, tokens=c.tokens, token_budget=c.token_budget,
                           coverage=c.coverage, header=c.header(), parts=parts,
                           dropped_frames=[f.tenant_name(tenant) for f in c.dropped], code=code)

        return self._call(context, run, "token_budget", ("videomemory.v1.Video", request.video))

    def GetUsage(self, request: pb.GetUsageRequest, context: grpc.ServicerContext) -> pb.Usage:
        tenant = self._tenant(context)
        mix = dict(request.forecast_minutes_by_class) or None
        return self._call(context, lambda: _usage_pb(usage(self.store, tenant, request.forecast_minutes or 60.0, mix)),
                          "forecast_minutes_by_class")

    def _frame_ref(self, tenant: str, ref: str) -> str:
        """A frame name under the caller's tenant, or a cite tag, as the library takes it."""
        text = ref.strip()
        if text.startswith("tenants/"):
            owner, _ = ids.parse_name(text)
            if owner != tenant:
                raise NotFound(f"frame {text} is not in this store for your tenant")
        return text

    def ResolveFrame(self, request: pb.ResolveFrameRequest, context: grpc.ServicerContext) -> pb.ResolvedFrame:
        tenant = self._tenant(context)

        def run() -> pb.ResolvedFrame:
            ref = self._frame_ref(tenant, request.frame)
            r = resolve_frame(self.store, tenant, ref, image=request.include_image, full_resolution=request.full_resolution)
            return _resolved_pb(tenant, r)

        return self._call(context, run, "frame", ("videomemory.v1.Frame", request.frame))

    def ResolveCitations(self, request: pb.ResolveCitationsRequest, context: grpc.ServicerContext) -> pb.ResolveCitationsResponse:
        tenant = self._tenant(context)

        def run() -> pb.ResolveCitationsResponse:
            if len(request.text) > MAX_TEXT:
                raise InvalidArgument(f"text is {len(request.text):,} characters; at most {MAX_TEXT:,}")
            out = []
            for c in resolve_citations(self.store, tenant, request.text, image=request.include_images):
                item = pb.Citation(tag=c.tag, start=c.start, error=c.error, error_code=c.error_status)
                if c.resolved is not None:
                    item.resolved.CopyFrom(_resolved_pb(tenant, c.resolved))
                out.append(item)
            return pb.ResolveCitationsResponse(citations=out)

        return self._call(context, run, "text")


def _usage_pb(u: Usage) -> pb.Usage:
    return pb.Usage(
        videos=u.videos, minutes=u.minutes, tokens=u.tokens, tokens_per_minute=u.tokens_per_minute, stored_bytes=u.stored_bytes,
        by_class=[pb.ClassUsage(content_class=c.content_class, segments=c.segments, minutes=c.minutes, tokens=c.tokens,
                                tokens_per_minute=c.tokens_per_minute) for c in u.by_class],
        video_tokens_per_minute_std=u.video_tpm_std, forecast_minutes=u.forecast_minutes, forecast_tokens=u.forecast_tokens,
        forecast_tokens_low=u.forecast_low, forecast_tokens_high=u.forecast_high,
    )


def build_server(config: ServerConfig, interceptors: tuple[grpc.ServerInterceptor, ...] = ()) -> tuple[grpc.Server, int, VideoMemoryService]:
    """A started-ready server with the service, health and reflection; returns (server, bound port, service)."""
    if not config.single_tenant and not config.api_keys:
        raise FailedPrecondition("no API keys configured: pass --api-keys FILE or set $VIDEOMEMORY_API_KEYS, "
                                 "or --insecure-single-tenant for local use")
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_RESPONSE)]
    pool = futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="videomemory-rpc")
    server = grpc.server(pool, options=options, interceptors=interceptors)
    service = VideoMemoryService(config)
    rpc.add_VideoMemoryServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    names = (pb.DESCRIPTOR.services_by_name["VideoMemory"].full_name, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert and config.tls_key:
        creds = grpc.ssl_server_credentials([(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise FailedPrecondition(f"cannot listen on {address}: is the port in use?")
    return server, port, service
