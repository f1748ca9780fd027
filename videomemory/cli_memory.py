"""CLI commands over ``memory``: index, list, inspect, cite, plot (registered on ``videomemory.cli.app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from videomemory.cli import _codec_config, app, err, friendly_errors, out
from videomemory.errors import InvalidArgument, NotFound

STORE_HELP = "Store directory or LanceDB URI (default: $VIDEOMEMORY_STORE or ~/.local/share/videomemory/store)."
StoreOpt = typer.Option(None, "--store", help=STORE_HELP)
TenantOpt = typer.Option("default", "--tenant", help="Tenant whose videos are read or written.")


def _store(store: Optional[str]):
    from videomemory.memory.store import Store

    return Store(store)


def _video(st, tenant: str, key: str):
    """A video by full key or unique key prefix (6+ hex digits)."""
    key = key.strip().lower()
    if len(key) == 16:
        return st.get_video(tenant, key)
    if len(key) < 6:
        raise InvalidArgument(f"video key {key!r} is too short: give the 16 hex digits or a prefix of 6 or more")
    found = st.find_videos(tenant, key)
    if not found:
        raise NotFound(f"no video of tenant {tenant!r} has a key starting with {key!r} (see `videomemory list`)")
    if len(found) > 1:
        raise InvalidArgument(f"key prefix {key!r} matches {len(found)} videos; give more digits")
    return found[0]


def _kb(n: float) -> str:
    return f"{n / 1e3:,.0f}"


@app.command()
@friendly_errors
def index(
    paths: list[str] = typer.Argument(..., help="Video files, folders (recursive), globs, or .txt files with one path or URI per line."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    fps: float = typer.Option(2.0, help="Sampling rate in frames per second."),
    grid: str = typer.Option("512x512", help="Model grid WIDTHxHEIGHT (multiples of 32)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Rate control: tokens per minute to aim for."),
    workers: int = typer.Option(1, "--workers", help="Videos coded at once (decoding always overlaps coding)."),
    replace: bool = typer.Option(False, "--replace", help="Re-code videos already in the store (atomic swap)."),
    lenient: bool = typer.Option(False, "--lenient", help="Keep the frames before damage in truncated files."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per video, then a summary."),
) -> None:
    """Index videos into the store: resumable (done videos are skipped), one bad file never stops the job."""
    from videomemory.memory.ingest import expand_sources, ingest_archive

    st = _store(store)
    config = _codec_config(fps, grid, None, 16, "fast", None, budget)
    sources = expand_sources(paths)
    if not sources:
        raise NotFound(f"no video files found in {' '.join(paths)}")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=as_json, transient=False,
    ) as bar:
        overall = bar.add_task("videos", total=len(sources))
        current: dict[str, int] = {}

        def on_progress(p) -> None:
            if p.stage == "start":
                total = round(p.duration_s) if p.duration_s else None
                current[p.source] = bar.add_task(f"  {Path(p.source).name[:40]} (s)", total=total)
            elif p.stage == "frame" and p.source in current:
                bar.update(current[p.source], completed=int(p.media_s))
            elif p.stage == "done":
                task = current.pop(p.source, None)
                if task is not None:
                    bar.remove_task(task)
                bar.advance(overall)

        results = ingest_archive(
            st, sources, tenant=tenant, config=config, device=device, workers=workers,
            replace=replace, strict=not lenient, on_progress=on_progress,
        )
    done = [r for r in results if r.status in ("indexed", "replaced")]
    failed = [r for r in results if r.status == "failed"]
    media = sum(r.duration_s for r in done)
    wall = sum(r.seconds for r in done)
    summary = {
        "store": st.uri,
        "tenant": tenant,
        "videos": len(results),
        "indexed": len(done),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": len(failed),
        "media_s": round(media, 2),
        "x_realtime": round(media / wall, 2) if wall else 0.0,
        "stored_bytes": sum(r.stored_bytes for r in done),
        "source_bytes": sum(r.source_bytes for r in done),
    }
    if as_json:
        for r in results:
            typer.echo(json.dumps(r.to_dict()))
        typer.echo(json.dumps({"summary": summary}))
    else:
        table = Table(title=f"Indexed into {st.uri} (tenant {tenant})")
        for name in ("video", "status", "key", "frames", "GOPs", "length s", "x-realtime", "stored KB", "KB/min", "tokens/min", "class"):
            table.add_column(name, justify="left" if name in ("video", "status", "key", "class") else "right")
        for r in results:
            per_min = r.stored_bytes / (r.duration_s / 60) if r.duration_s else 0
            if r.status == "failed":
                table.add_row(Path(r.source).name, "[red]failed[/]", "", "", "", "", "", "", "", "", "")
                continue
            table.add_row(
                Path(r.source).name, r.status, r.key or "", str(r.frames), str(r.segments), f"{r.duration_s:.1f}",
                f"{r.x_realtime:.1f}" if r.x_realtime else "-", _kb(r.stored_bytes), _kb(per_min),
                f"{r.tokens_per_min:,.0f}", r.content_class,
            )
        out.print(table)
        for r in failed:
            err.print(f"[bold red]failed:[/] {r.error}", highlight=False)
        out.print(
            f"{summary['indexed']} indexed, {summary['skipped']} already there, {summary['failed']} failed; "
            f"{media:.1f} s of video at {summary['x_realtime']}x realtime."
        )
    if failed:
        raise typer.Exit(1)


@app.command(name="list")
@friendly_errors
def list_videos(store: Optional[str] = StoreOpt, tenant: str = TenantOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the tenant's indexed videos."""
    st = _store(store)
    videos, after = [], ""
    while True:
        page = st.list_videos(tenant, page_size=1000, after_key=after)
        videos += page
        if len(page) < 1000:
            break
        after = page[-1].key
    if as_json:
        for v in videos:
            typer.echo(json.dumps(v.to_dict(), default=str))
        return
    table = Table(title=f"{len(videos)} videos in {st.uri} (tenant {tenant})")
    for name in ("key", "source", "length s", "frames", "GOPs", "tokens/min", "class"):
        table.add_column(name)
    for v in videos:
        table.add_row(v.key, v.source_uri, f"{v.duration_ms / 1000:.1f}", str(v.frames), str(v.segments), f"{v.tokens_per_min:,.0f}", v.content_class)
    out.print(table)


@app.command()
@friendly_errors
def inspect(
    key: str = typer.Argument(..., help="Video key (16 hex digits) or a unique prefix."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    as_json: bool = typer.Option(False, "--json", help="The video, then one JSON object per GOP."),
) -> None:
    """Show a stored video and its GOP table."""
    from videomemory.memory.ids import FrameId

    st = _store(store)
    video = _video(st, tenant, key)
    segments = st.segments(video).to_pylist()
    if as_json:
        typer.echo(json.dumps({"video": video.to_dict()}, default=str))
        for s in segments:
            s = {k: v for k, v in s.items() if k not in ("tenant", "ingest_id")}
            s["anchor"] = FrameId(video.key, s["start_ms"]).name
            typer.echo(json.dumps(s))
        return
    out.print(
        f"[bold]{video.name}[/]  {video.source_uri}\n"
        f"{video.width}x{video.height} {video.source_codec}, {video.duration_ms / 1000:.1f} s; coded at {video.fps:g} fps "
        f"on {video.grid_width}x{video.grid_height}: {video.frames} frames, {video.segments} GOPs, "
        f"{video.tokens_per_min:,.0f} tokens/min, {video.content_class}"
        f"{' (routed to flat)' if video.hybrid_flat else ''}, {_kb(video.stored_bytes)} KB stored"
    )
    table = Table(title="GOPs")
    for name in ("GOP", "anchor", "start s", "end s", "frames", "why", "pcost/blk mean", "max", "motion px", "tokens", "KB", "class"):
        table.add_column(name, justify="right")
    for s in segments:
        table.add_row(
            str(s["gop"]), escape(FrameId(video.key, s["start_ms"]).tag), f"{s['start_ms'] / 1000:.2f}", f"{s['end_ms'] / 1000:.2f}",
            str(s["frames"]), s["anchor_reason"] or "",
            "-" if s["pcost_mean"] is None else f"{s['pcost_mean']:.0f}", "-" if s["pcost_max"] is None else f"{s['pcost_max']:.0f}",
            f"{s['motion_px']:.1f}", str(s["tokens"]), _kb(s["stored_bytes"]),
            s["content_class"] + ("*" if s["hybrid_flat"] else ""),
        )
    out.print(table)
    out.print("* routed to flat encoding (the predictive code does not pay off there)")


@app.command()
@friendly_errors
def cite(
    text: str = typer.Argument(..., help="Text with cite tags such as [v3f9a2c1d@12.500] (a model's answer), or one frame name."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write each cited frame as a PNG into this folder."),
    full_resolution: bool = typer.Option(False, "--full-resolution", help="Decode images from the source file when it is reachable."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per citation."),
) -> None:
    """Resolve the cite tags in a text (or one frame name) to source moments, and optionally their images."""
    from videomemory.memory.resolve import Citation, resolve_citations, resolve_frame

    st = _store(store)
    want_image = out_dir is not None
    if text.strip().startswith(("videos/", "tenants/")):
        cites = [Citation(text.strip(), 0, resolve_frame(st, tenant, text, image=want_image, full_resolution=full_resolution))]
    else:
        cites = resolve_citations(st, tenant, text, image=want_image, full_resolution=full_resolution)
    if not cites:
        raise InvalidArgument("no cite tags found: they look like [v3f9a2c1d@12.500] (key prefix @ seconds)")
    if out_dir is not None:
        from PIL import Image

        out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in cites:
        row = c.to_dict()
        if c.resolved is not None and c.resolved.image is not None and out_dir is not None:
            path = out_dir / f"{c.resolved.frame.key}_{c.resolved.frame.ms}_{c.resolved.image_origin}.png"
            Image.fromarray(c.resolved.image).save(path)
            row["image_path"] = str(path)
        rows.append(row)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str))
    else:
        for row in rows:
            tag = escape(row["tag"])
            if "error" in row:
                out.print(f"{tag}  [red]{row['error_status']}[/]: {escape(row['error'])}")
                continue
            anchor = row["anchor"].rsplit("/", 1)[1]
            out.print(
                f"{tag} -> {row['frame']}\n    {escape(row['source_uri'])} at {row['time_s']:.3f} s (source frame "
                f"{row['source_index']}); {row['role']}-frame of GOP {row['segment']}, anchor at {anchor} ms",
                highlight=False,
            )
            for note in row["notes"] + ([f"image: {row['image_path']}"] if "image_path" in row else []):
                out.print(f"    {escape(note)}", highlight=False)
    if any("error" in r for r in rows):
        raise typer.Exit(1)


@app.command()
@friendly_errors
def plot(
    key: str = typer.Argument(..., help="Video key (16 hex digits) or a unique prefix."),
    out_file: Path = typer.Option(..., "--out", help="PNG file to write."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
) -> None:
    """Timeline of a stored video: pcost per block, anchors, tokens per frame and content class per GOP."""
    from videomemory.plots import plot_timeline

    st = _store(store)
    video = _video(st, tenant, key)
    plot_timeline(video, st.frames(video, columns=["ms", "role", "pcost_per_block", "image_tokens", "overhead_tokens", "plan_role"]),
                  st.segments(video), out_file)
    out.print(f"wrote {out_file}")
