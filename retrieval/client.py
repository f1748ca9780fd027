"""A small typed Python client for ``videomemory.v1.VideoMemory``: the same method names, the messages back.

``VideoMemoryClient(target, api_key)`` sends the key with every call, retries UNAVAILABLE (the
channel's retry policy: 4 attempts, exponential back-off), and gives every call a deadline.
Errors arrive as ``grpc.RpcError``; ``videomemory.retrieval.status.details_of`` unpacks their
google.rpc details.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc

from videomemory.v1 import video_memory_pb2 as pb
from videomemory.v1 import video_memory_pb2_grpc as rpc

CHUNK = 2 * 1024 * 1024  # bytes per upload message
_RETRY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "videomemory.v1.VideoMemory"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class VideoMemoryClient:
    """Typed calls to a videomemory server."""

    def __init__(self, target: str, api_key: str | None = None, *, timeout: float = 60.0, tls: bool = False,
                 root_cert: bytes | None = None) -> None:
        """Connect to ``target``; ``tls`` verifies the server with the system roots or ``root_cert`` (PEM)."""
        options = [("grpc.service_config", _RETRY), ("grpc.enable_retries", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        creds = grpc.ssl_channel_credentials(root_certificates=root_cert) if tls or root_cert else None
        self.channel = grpc.secure_channel(target, creds, options) if creds else grpc.insecure_channel(target, options)
        self.stub = rpc.VideoMemoryStub(self.channel)
        self.metadata = (("x-api-key", api_key),) if api_key else ()
        self.timeout = timeout

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> "VideoMemoryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _kw(self, timeout: float | None) -> dict:
        return {"metadata": self.metadata, "timeout": self.timeout if timeout is None else timeout}

    def ingest_video(
        self, source: str | Path, *, upload: bool = False, fps: float = 0.0, replace: bool = False,
        on_progress: Callable[[pb.IngestVideoProgress], None] | None = None, timeout: float | None = 3600.0,
    ) -> pb.Video:
        """Index a video by server-side path (under its ingest roots) or by uploading the file; returns the Video."""
        def requests() -> Iterator[pb.IngestVideoRequest]:
            if not upload:
                yield pb.IngestVideoRequest(uri=str(source), fps=fps, replace=replace)
                return
            path = Path(source)
            with path.open("rb") as f:
                first = True
                while chunk := f.read(CHUNK):
                    if first:
                        yield pb.IngestVideoRequest(chunk=chunk, file_name=path.name, fps=fps, replace=replace)
                        first = False
                    else:
                        yield pb.IngestVideoRequest(chunk=chunk)

        video = None
        for progress in self.stub.IngestVideo(requests(), **self._kw(timeout)):
            if on_progress:
                on_progress(progress)
            if progress.state == pb.IngestVideoProgress.DONE:
                video = progress.video
        assert video is not None, "the server ended the ingest without a DONE message"
        return video

    def search(self, *, text: str | None = None, image: bytes | None = None, frame: str | None = None,
               page_size: int = 10, page_token: str = "", timeout: float | None = None, **filters) -> pb.SearchResponse:
        """One page of hits; ``filters``: videos, start_ms, end_ms, content_classes."""
        query = {k: v for k, v in (("text", text), ("image", image), ("frame", frame)) if v is not None}
        req = pb.SearchRequest(page_size=page_size, page_token=page_token, **query, **filters)
        return self.stub.Search(req, **self._kw(timeout))

    def get_clip(self, video: str, start_ms: int, end_ms: int, token_budget: int, *, plan: str = "adaptive",
                 include_code: bool = False, timeout: float | None = None) -> pb.Clip:
        """A self-contained clip of a video's time range within a token budget."""
        req = pb.GetClipRequest(video=video, start_ms=start_ms, end_ms=end_ms, token_budget=token_budget, plan=plan,
                                include_code=include_code)
        return self.stub.GetClip(req, **self._kw(timeout))

    def resolve_frame(self, frame: str, *, include_image: bool = False, full_resolution: bool = False,
                      timeout: float | None = None) -> pb.ResolvedFrame:
        """A frame name or cite tag back to its source moment."""
        req = pb.ResolveFrameRequest(frame=frame, include_image=include_image, full_resolution=full_resolution)
        return self.stub.ResolveFrame(req, **self._kw(timeout))

    def resolve_citations(self, text: str, *, include_images: bool = False, timeout: float | None = None) -> pb.ResolveCitationsResponse:
        """Every cite tag in a text, each resolved or with its error."""
        return self.stub.ResolveCitations(pb.ResolveCitationsRequest(text=text, include_images=include_images), **self._kw(timeout))

    def get_video(self, name: str, timeout: float | None = None) -> pb.Video:
        """One video by name."""
        return self.stub.GetVideo(pb.GetVideoRequest(name=name), **self._kw(timeout))

    def list_videos(self, page_size: int = 100, page_token: str = "", timeout: float | None = None) -> pb.ListVideosResponse:
        """One page of the tenant's videos."""
        return self.stub.ListVideos(pb.ListVideosRequest(page_size=page_size, page_token=page_token), **self._kw(timeout))

    def iter_videos(self, page_size: int = 100) -> Iterator[pb.Video]:
        """Every video of the tenant, page after page."""
        token = ""
        while True:
            page = self.list_videos(page_size, token)
            yield from page.videos
            token = page.next_page_token
            if not token:
                return

    def delete_video(self, name: str, timeout: float | None = None) -> None:
        """Delete a video and everything stored for it."""
        self.stub.DeleteVideo(pb.DeleteVideoRequest(name=name), **self._kw(timeout))

    def get_usage(self, forecast_minutes: float = 60.0, by_class: dict[str, float] | None = None,
                  timeout: float | None = None) -> pb.Usage:
        """Tokens per minute by content class, and the cost forecast of more footage."""
        req = pb.GetUsageRequest(forecast_minutes=forecast_minutes, forecast_minutes_by_class=by_class or {})
        return self.stub.GetUsage(req, **self._kw(timeout))

    def ingest_frames(self, stream: str, frames: Iterator[tuple[bytes, int]], *, fps: float = 0.0,
                      timeout: float | None = 3600.0) -> pb.IngestFramesResponse:
        """Index a live stream from (encoded image, time in ms) pairs; GOPs become searchable as they close."""
        def requests() -> Iterator[pb.IngestFramesRequest]:
            for i, (image, time_ms) in enumerate(frames):
                yield pb.IngestFramesRequest(stream=stream if i == 0 else "", fps=fps if i == 0 else 0.0, image=image, time_ms=time_ms)

        return self.stub.IngestFrames(requests(), **self._kw(timeout))
