"""``--server HOST:PORT``: the CLI commands through the gRPC API instead of a local store.

Each function mirrors a local command and prints one JSON object per line (the API's messages as
JSON, images left out), so scripts get the same shape from a local store and a remote server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import typer
from google.protobuf.json_format import MessageToDict

from videomemory.errors import InvalidArgument

ServerOpt = typer.Option(None, "--server", help="Go through a videomemory server (HOST:PORT) instead of a local store.")
ApiKeyOpt = typer.Option(None, "--api-key", help="API key for --server (default: $VIDEOMEMORY_API_KEY).")
_BINARY = {"png", "anchor", "pCodes", "p_codes"}


def client(server: str, api_key: Optional[str]):
    """A client for ``--server``."""
    from videomemory.retrieval.client import VideoMemoryClient

    return VideoMemoryClient(server, api_key or os.environ.get("VIDEOMEMORY_API_KEY"))


def _strip(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in _BINARY}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def emit(message: Any) -> None:
    """Print a message as one JSON line, without image or code bytes."""
    typer.echo(json.dumps(_strip(MessageToDict(message, preserving_proto_field_name=True))))


def index(c, sources: list[str], upload: bool, fps: float, replace: bool) -> int:
    """Ingest each source through the server; returns how many failed."""
    import grpc

    failed = 0
    for source in sources:
        try:
            video = c.ingest_video(source, upload=upload, fps=fps, replace=replace)
            typer.echo(json.dumps({"source": source, "status": "indexed", "video": video.name, "frames": video.frames}))
        except grpc.RpcError as exc:
            failed += 1
            typer.echo(json.dumps({"source": source, "status": "failed", "error": exc.details(), "error_status": exc.code().name}))
    return failed


def save_clip(clip: Any, folder: Path) -> None:
    """Write a clip message as the local ``Clip.save`` does: PNGs and clip.json."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = _strip(MessageToDict(clip, preserving_proto_field_name=True))
    for part, rec in zip(clip.parts, meta.get("parts", [])):
        stem = f"{round(part.time_seconds * 1000):09d}"
        if part.png:
            rec["image"] = f"{stem}_full.png"
            (folder / rec["image"]).write_bytes(part.png)
        for i, (crop, crec) in enumerate(zip(part.crops, rec.get("crops", []))):
            crec["image"] = f"{stem}_crop{i}.png"
            (folder / crec["image"]).write_bytes(crop.png)
    (folder / "clip.json").write_text(json.dumps(meta, indent=1))


def video_name(c, key: str) -> str:
    """A video's resource name from a key or a unique key prefix, via ListVideos."""
    key = key.strip().lower()
    if key.startswith("tenants/"):
        return key
    found = [v.name for v in c.iter_videos(page_size=1000) if v.name.rsplit("/", 1)[1].startswith(key)]
    if len(found) != 1:
        raise InvalidArgument(f"video key {key!r} matches {len(found)} videos on the server; give more digits")
    return found[0]
