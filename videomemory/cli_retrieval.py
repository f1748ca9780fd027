"""CLI commands over ``retrieval``: search, clip, reindex (registered on ``videomemory.cli.app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from videomemory import cli_remote as remote
from videomemory.cli import app, friendly_errors, out
from videomemory.cli_memory import StoreOpt, TenantOpt, _store, _video
from videomemory.errors import InvalidArgument

EMBEDDER_HELP = (
    "Image/text embedder: a local CLIP or SigLIP model directory (or a name in the hub cache); "
    "default: the offline 'descriptor-v1' (image queries only, no weights)."
)
EmbedderOpt = typer.Option(None, "--embedder", help=EMBEDDER_HELP)


def _embedder(spec: Optional[str], device: str = "auto"):
    from videomemory.retrieval.embed import load_embedder

    return load_embedder(spec, device)


def ensure_vectors(st, tenant: str, embedder, quiet: bool = False) -> int:
    """Embed the tenant's videos that have no vectors of ``embedder`` yet; returns how many."""
    from videomemory.retrieval.vectors import embed_missing

    def say(video, n) -> None:
        if not quiet:
            out.print(f"  vectors: {video.key[:8]} {Path(video.source_uri).name}: {n} ({embedder.name})", highlight=False)

    return embed_missing(st, tenant, embedder, on_video=say)


def _read_image(path: Path):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidArgument(f"{path}: not an image Pillow can read ({exc})") from None


@app.command()
@friendly_errors
def search(
    query: Optional[str] = typer.Argument(None, help="Text to search for (needs --embedder with a text model)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Search with an image file instead."),
    frame: Optional[str] = typer.Option(None, "--frame", help="Search with a stored frame (name or cite tag): more like this."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    embedder: Optional[str] = EmbedderOpt,
    video: list[str] = typer.Option([], "--video", help="Only these videos (key or prefix; repeatable)."),
    start: Optional[float] = typer.Option(None, "--from", help="Only moments at or after this source second."),
    end: Optional[float] = typer.Option(None, "--to", help="Only moments before this source second."),
    content_class: list[str] = typer.Option([], "--class", help="Only segments of this content class (repeatable)."),
    limit: int = typer.Option(10, "--limit", help="Hits per page (1..100)."),
    page_token: str = typer.Option("", "--page-token", help="Continue a previous search (its next page token)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per hit, then the page info."),
    server: Optional[str] = remote.ServerOpt,
    api_key: Optional[str] = remote.ApiKeyOpt,
) -> None:
    """Find the moments that match a text, an image or a frame; one hit per segment."""
    if server:
        with remote.client(server, api_key) as c:
            page = c.search(text=query, image=image.read_bytes() if image else None, frame=frame, page_size=limit,
                            page_token=page_token, videos=[remote.video_name(c, v) for v in video],
                            start_ms=round(start * 1000) if start else 0, end_ms=round(end * 1000) if end else 0,
                            content_classes=list(content_class))
            for hit in page.hits:
                remote.emit(hit)
            typer.echo(json.dumps({"next_page_token": page.next_page_token, "embedder": page.embedder}))
        return
    from videomemory.retrieval.search import SearchFilter
    from videomemory.retrieval.search import search as run_search

    st = _store(store)
    emb = _embedder(embedder)
    ensure_vectors(st, tenant, emb, quiet=as_json)
    keys = tuple(_video(st, tenant, v).key for v in video)
    flt = SearchFilter(
        videos=keys,
        start_ms=None if start is None else round(start * 1000),
        end_ms=None if end is None else round(end * 1000),
        content_classes=tuple(content_class),
    )
    img = _read_image(image) if image is not None else None
    page = run_search(st, tenant, emb, text=query, image=img, frame=frame, filters=flt, page_size=limit, page_token=page_token)
    if as_json:
        for hit in page.hits:
            typer.echo(json.dumps(hit.to_dict()))
        typer.echo(json.dumps({"next_page_token": page.next_page_token, "index": page.index_status, "embedder": page.embedder}))
        return
    table = Table(title=f"{len(page.hits)} hits ({page.embedder}; index {page.index_status})", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for name in ("#", "score", "frame", "segment s", "class", "video"):
        table.add_column(name, justify="right" if name in ("#", "score") else "left")
    for i, hit in enumerate(page.hits, 1):
        table.add_row(str(i), f"{hit.score:.3f}", escape(hit.tag), f"{hit.start_ms / 1000:.1f}-{hit.end_ms / 1000:.1f}",
                      hit.content_class, escape(Path(hit.source_uri).name))
    out.print(table)
    for note in page.notes:
        out.print(note)
    if page.next_page_token:
        out.print(f"more: --page-token {page.next_page_token}", highlight=False)


@app.command()
@friendly_errors
def clip(
    key: str = typer.Argument(..., help="Video key (16 hex digits) or a unique prefix."),
    start: float = typer.Option(..., "--start", help="Start, source seconds."),
    end: float = typer.Option(..., "--end", help="End, source seconds (exclusive)."),
    budget: int = typer.Option(4000, "--budget", help="Token budget of the package."),
    plan: str = typer.Option("adaptive", "--plan", help="adaptive (anchor + changed cells) or flat (every frame full)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write the package (PNGs + clip.json + code/) here."),
    messages: bool = typer.Option(False, "--messages", help="Also write messages.json (OpenAI-style, images inline)."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the package as JSON (no pixels)."),
    server: Optional[str] = remote.ServerOpt,
    api_key: Optional[str] = remote.ApiKeyOpt,
) -> None:
    """Cut a self-contained clip that fits a token budget: anchor (re-synthesised if needed) + changed cells."""
    from videomemory.retrieval.clips import get_clip

    if server:
        with remote.client(server, api_key) as c:
            msg = c.get_clip(remote.video_name(c, key), round(start * 1000), round(end * 1000), budget, plan=plan)
            if out_dir is not None:
                remote.save_clip(msg, out_dir)
            remote.emit(msg)
        return

    st = _store(store)
    v = _video(st, tenant, key)
    c = get_clip(st, tenant, v.key, round(start * 1000), round(end * 1000), budget, plan)
    if out_dir is not None:
        c.save(out_dir)
        if messages:
            (out_dir / "messages.json").write_text(json.dumps(c.to_messages()))
    if as_json:
        typer.echo(json.dumps(c.to_dict()))
        return
    out.print(escape(c.header()), highlight=False)
    for p in c.parts:
        out.print(f"  {p.tokens:>4} tok  {escape(p.text())}{'  (trimmed)' if p.trimmed else ''}", highlight=False)
    out.print(
        f"{c.tokens} tokens of {c.token_budget}; {len(c.parts)} parts, {len(c.dropped)} frames dropped for the budget; "
        f"covers {c.coverage:.0%} of the range" + (f"; written to {out_dir}" if out_dir else "")
    )


@app.command()
@friendly_errors
def reindex(
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    embedder: Optional[str] = EmbedderOpt,
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the FAISS index from the store even if it is fresh."),
) -> None:
    """Embed videos that have no vectors yet and bring the tenant's search index up to date."""
    from videomemory.retrieval.index import TenantIndex

    st = _store(store)
    emb = _embedder(embedder)
    n = ensure_vectors(st, tenant, emb)
    idx = TenantIndex.open(st, tenant, emb.name, rebuild=rebuild)
    total = 0 if idx.vectors is None else idx.vectors.ntotal
    factory = "" if idx.vectors is None else f", {idx.vectors.factory}"
    out.print(f"{n} videos embedded; index {idx.status}: {total} vectors ({emb.name}{factory}) in {idx.folder}", highlight=False)


@app.command()
@friendly_errors
def serve(
    store: Optional[str] = StoreOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(50051, "--port", help="Port (0: pick a free one; the chosen port is printed)."),
    workers: int = typer.Option(8, "--workers", help="RPCs served at once."),
    ingest_root: list[str] = typer.Option([], "--ingest-root", help="Folder (or URI prefix, e.g. https://media.example/archive/) clients may ingest from (repeatable)."),
    api_keys: Optional[str] = typer.Option(None, "--api-keys", help="JSON file {\"KEY\": \"tenant\"}; also $VIDEOMEMORY_API_KEYS=KEY=tenant,..."),
    insecure_single_tenant: bool = typer.Option(False, "--insecure-single-tenant", help="No keys: every call is tenant 'default' (local use only)."),
    embedder: Optional[str] = EmbedderOpt,
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", help="PEM certificate chain (with --tls-key: serve TLS)."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", help="PEM private key."),
) -> None:
    """Serve the gRPC API (videomemory.v1, health, reflection) over the store."""
    from videomemory.retrieval.server import ServerConfig, build_server, load_api_keys

    config = ServerConfig(
        store=store, host=host, port=port, workers=workers, ingest_roots=list(ingest_root),
        api_keys=load_api_keys(api_keys), single_tenant="default" if insecure_single_tenant else None,
        embedder=embedder, tls_cert=tls_cert, tls_key=tls_key,
    )
    server, bound, service = build_server(config)
    server.start()
    typer.echo(f"videomemory serving {service.store.uri} on {host}:{bound}", err=False)
    import sys

    sys.stdout.flush()
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        server.stop(grace=2.0)
