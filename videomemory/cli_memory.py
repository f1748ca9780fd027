"""CLI commands over ``memory``: index, list, inspect, cite, plot (registered on ``videomemory.cli.app``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from videomemory import cli_remote as remote
from videomemory.cli import _codec_config, _warm_kernels, app, err, friendly_errors, out
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


def _already(r) -> str:
    """Why an ingest was skipped, saying where and when the stored copy came from."""
    when = f" on {r.stored_at.replace('T', ' ')}" if r.stored_at else ""
    where = "" if r.stored_source == r.source else f" from {r.stored_source}"
    return f"already indexed{when}{where} (the same content; nothing re-coded, `index --replace` re-codes it)"


def _print_video(video, segments: list[dict]) -> None:
    """A stored video's summary line and its GOP table."""
    from videomemory.memory.ids import FrameId

    out.print(
        f"[bold]{video.name}[/]  {video.source_uri}\n"
        f"{video.width}x{video.height} {video.source_codec}, {video.duration_ms / 1000:.1f} s; coded at {video.fps:g} fps "
        f"on {video.grid_width}x{video.grid_height}: {video.frames} frames, {video.segments} GOPs, "
        f"{video.tokens_per_min:,.0f} tokens/min, {video.content_class}"
        f"{' (routed to flat)' if video.hybrid_flat else ''}, {_kb(video.stored_bytes)} KB stored"
    )
    table = Table(title="GOPs (anchor = the cite tag of the GOP's first frame)", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in ("GOP", "anchor", "n", "why", "pcost/blk", "motion", "tokens", "KB", "class"):
        table.add_column(name, justify="left" if name in ("anchor", "why", "class") else "right", no_wrap=True)
    for s in segments:
        pcost = "-" if s["pcost_mean"] is None else f"{s['pcost_mean']:.0f}-{s['pcost_max']:.0f}"
        table.add_row(
            str(s["gop"]), escape(FrameId(video.key, s["start_ms"]).tag), str(s["frames"]), s["anchor_reason"] or "", pcost, f"{s['motion_px']:.1f}", str(s["tokens"]),
            _kb(s["stored_bytes"]), s["content_class"] + ("*" if s["hybrid_flat"] else ""),
        )
    out.print(table)
    out.print("* routed to flat encoding (the predictive code does not pay off there)")


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
    embedder: Optional[str] = typer.Option(None, "--embedder", help="Search vectors: a local CLIP/SigLIP model directory; default the offline descriptor."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per video, then a summary."),
    server: Optional[str] = remote.ServerOpt,
    api_key: Optional[str] = remote.ApiKeyOpt,
    upload: bool = typer.Option(False, "--upload", help="With --server: send the files' bytes instead of their paths."),
) -> None:
    """Index videos into the store and embed them for search: resumable, one bad file never stops the job."""
    from videomemory.memory.ingest import expand_sources, ingest_archive

    if server:
        with remote.client(server, api_key) as c:
            sources = paths if not upload else expand_sources(paths)
            if remote.index(c, sources, upload, fps, replace):
                raise typer.Exit(1)
        return

    st = _store(store)
    config = _codec_config(fps, grid, None, 16, "fast", None, budget)
    sources = expand_sources(paths)
    if not sources:
        raise NotFound(f"no video files found in {' '.join(paths)}")
    _warm_kernels(device)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), console=err, disable=as_json, transient=False,
    ) as bar:
        overall = bar.add_task("videos", total=len(sources), info="")
        current: dict[str, tuple[int, float]] = {}  # source -> (task, start time)

        def on_progress(p) -> None:
            if p.stage == "start":
                total = round(p.duration_s) if p.duration_s else None
                task = bar.add_task(f"  {Path(p.source).name[:32]} (s)", total=total, info="")
                current[p.source] = (task, time.perf_counter())
            elif p.stage == "frame" and p.source in current:
                task, t0 = current[p.source]
                elapsed = time.perf_counter() - t0
                speed = f"{p.frames} frames, {p.media_s / elapsed:.1f}x realtime" if elapsed > 0 else f"{p.frames} frames"
                bar.update(task, completed=int(p.media_s), info=speed)
            elif p.stage == "done":
                entry = current.pop(p.source, None)
                if entry is not None:
                    bar.remove_task(entry[0])
                bar.advance(overall)

        results = ingest_archive(
            st, sources, tenant=tenant, config=config, device=device, workers=workers,
            replace=replace, strict=not lenient, on_progress=on_progress,
        )
    from videomemory.cli_retrieval import _embedder, ensure_vectors

    ensure_vectors(st, tenant, _embedder(embedder, device), quiet=True)
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
        table = Table(title=f"Indexed into {st.uri} (tenant {tenant})", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for name in ("video", "status", "key", "frames", "GOPs", "secs", "x-rt", "KB/min", "tok/min", "class"):
            table.add_column(name, justify="left" if name in ("video", "status", "key", "class") else "right")
        for r in results:
            per_min = r.stored_bytes / (r.duration_s / 60) if r.duration_s else 0
            name = Path(r.source).name
            if r.status == "failed":
                table.add_row(escape(name), "[red]failed[/]", *[""] * 8)
                continue
            table.add_row(
                escape(name), r.status, (r.key or "")[:8], str(r.frames), str(r.segments), f"{r.duration_s:.1f}",
                f"{r.x_realtime:.1f}" if r.x_realtime else "-", _kb(per_min), f"{r.tokens_per_min:,.0f}", r.content_class,
            )
        out.print(table)
        for r in failed:
            err.print(f"[bold red]failed:[/] {r.error}", highlight=False)
        for r in results:
            if r.status == "skipped" and r.stored_source != r.source:
                out.print(f"{escape(Path(r.source).name)}: {escape(_already(r))}", highlight=False)
        out.print(
            f"{summary['indexed']} indexed, {summary['skipped']} already there, {summary['failed']} failed; "
            f"{media:.1f} s of video at {summary['x_realtime']}x realtime."
        )
    if failed:
        raise typer.Exit(1)


@app.command(name="list")
@friendly_errors
def list_videos(
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    server: Optional[str] = remote.ServerOpt,
    api_key: Optional[str] = remote.ApiKeyOpt,
) -> None:
    """List the tenant's indexed videos."""
    if server:
        with remote.client(server, api_key) as c:
            for v in c.iter_videos():
                remote.emit(v)
        return
    st = _store(store)
    videos = st.all_videos(tenant)
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
    _print_video(video, segments)


@app.command()
@friendly_errors
def cite(
    text: str = typer.Argument(..., help="Text with cite tags such as [v3f9a2c1d@12.500] (a model's answer), or one frame name."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write each cited frame as a PNG into this folder."),
    full_resolution: bool = typer.Option(False, "--full-resolution", help="Decode images from the source file when it is reachable."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per citation."),
    server: Optional[str] = remote.ServerOpt,
    api_key: Optional[str] = remote.ApiKeyOpt,
) -> None:
    """Resolve the cite tags in a text (or one frame name) to source moments, and optionally their images."""
    if server:
        with remote.client(server, api_key) as c:
            cites = c.resolve_citations(text, include_images=out_dir is not None).citations
            for cite in cites:
                if out_dir is not None and cite.resolved.png:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    (out_dir / (cite.resolved.frame.replace("/", "_") + ".png")).write_bytes(cite.resolved.png)
                remote.emit(cite)
        if not cites or any(c.error for c in cites):
            raise typer.Exit(1)
        return
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


@app.command()
@friendly_errors
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the generated video, the clip package, a cited frame, a timeline."),
    video: Optional[Path] = typer.Option(None, help="Use this video instead of a generated one."),
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
) -> None:
    """The whole job, offline: index a video, search it with an image, cut a clip package, resolve a citation."""
    from PIL import Image

    from videomemory.codec.config import CodecConfig
    from videomemory.codec.decode import frame_at
    from videomemory.memory.ingest import ingest_video
    from videomemory.memory.resolve import resolve_citations
    from videomemory.plots import plot_timeline
    from videomemory.retrieval.clips import get_clip
    from videomemory.retrieval.embed import load_embedder
    from videomemory.retrieval.search import SearchFilter, search
    from videomemory.retrieval.vectors import embed_video

    out_dir.mkdir(parents=True, exist_ok=True)
    if video is None:
        from videomemory.bench import synth as s

        video = out_dir / "demo.mp4"
        shots = s.preset("mixed", (640, 360), 24.0, 0)  # static, pan, objects, brisk pan
        truth = s.write_video(video, shots, (640, 360), 30.0)
        (out_dir / "demo.json").write_text(json.dumps(truth.to_dict(), indent=1))
        out.print(f"Generated {video}: 24 s, 640x360, hard cuts at {', '.join(f'{c:g} s' for c in truth.cuts_s)} (ground truth in demo.json).")
    st = _store(store)
    _warm_kernels()
    result = ingest_video(st, video, tenant=tenant, config=CodecConfig())
    v = st.get_video(tenant, result.key)
    embedder = load_embedder(None)
    if not st.has_embeddings(v, embedder.name):
        embed_video(st, v, embedder)
    what = _already(result) if result.status == "skipped" else (
        f"indexed in {result.seconds:.1f} s ({result.x_realtime:.1f}x realtime)")
    out.print(f"[bold]1. Index[/]  {video.name}: {what} into {st.uri}, tenant {tenant!r}, key {v.key}.")
    _print_video(v, st.segments(v).to_pylist())

    t_query = round(0.6 * v.duration_ms / 1000, 1)
    query = frame_at(video, t_query)
    Image.fromarray(query).save(out_dir / "query.png")
    page = search(st, tenant, embedder, image=query, filters=SearchFilter(videos=(v.key,)), page_size=3)
    out.print(f"[bold]2. Search[/]  with the source frame at {t_query} s as an image query ({embedder.name}, offline; "
              "text queries need --embedder with a CLIP/SigLIP model):")
    for i, hit in enumerate(page.hits, 1):
        out.print(f"   {i}. {escape(hit.tag)} score {hit.score:.3f}, segment {hit.start_ms / 1000:.1f}-{hit.end_ms / 1000:.1f} s "
                  f"({hit.content_class})", highlight=False)
    top = page.hits[0]
    start = max(top.start_ms, top.frame.ms - 1500 + 250)  # a start between samples, inside the segment
    c = get_clip(st, tenant, v.key, start, start + 4000, 600)
    pkg = out_dir / "clip"
    c.save(pkg)
    (pkg / "messages.json").write_text(json.dumps(c.to_messages("What changes in this clip? Cite frames by their tags.")))
    out.print(f"[bold]3. Clip[/]  {start / 1000:.2f}-{(start + 4000) / 1000:.2f} s in 600 tokens -> {pkg}/clip.json "
              f"(+ PNGs, code/, messages.json):")
    for p in c.parts:
        out.print(f"   {p.tokens:>4} tok  {escape(p.text())}", highlight=False)
    out.print(f"   {c.tokens} tokens; {len(c.dropped)} frames dropped for the budget; covers {c.coverage:.0%} of the range")

    deep = max(c.parts, key=lambda p: p.frame.ms)
    answer = f"The scene changes at {deep.tag}."
    cite = resolve_citations(st, tenant, answer, image=True)[0]
    r = cite.resolved
    assert r is not None and r.image is not None
    png = out_dir / f"cited_{r.frame.key}_{r.frame.ms}.png"
    Image.fromarray(r.image).save(png)
    out.print(
        f"[bold]4. Cite[/]  a model answering \"{escape(answer)}\" -> {r.frame.name}: {r.role}-frame {r.time_s:.3f} s into "
        f"{escape(r.source_uri)} (source frame {r.source_index}), GOP {r.segment} from anchor {r.anchor.ms} ms, "
        f"rebuilt at {r.psnr:.1f} dB -> {png}",
        highlight=False,
    )
    timeline = plot_timeline(v, st.frames(v, columns=["ms", "role", "pcost_per_block", "image_tokens", "overhead_tokens", "plan_role"]),
                             st.segments(v), out_dir / "timeline.png")
    out.print(f"Timeline plot (pcost, anchors, tokens per frame, content class): {timeline}. Nothing here needed model weights.")


@app.command()
@friendly_errors
def usage(
    store: Optional[str] = StoreOpt,
    tenant: str = TenantOpt,
    minutes: float = typer.Option(60.0, "--minutes", help="Forecast: minutes of new footage in the tenant's usual mix."),
    mix: list[str] = typer.Option([], "--mix", help="Forecast a mix instead, CLASS=MINUTES (repeatable), e.g. static=600."),
    as_json: bool = typer.Option(False, "--json"),
    server: Optional[str] = remote.ServerOpt,
    api_key: Optional[str] = remote.ApiKeyOpt,
) -> None:
    """Tokens per minute by content class, and what more footage would cost."""
    from videomemory.memory.usage import usage as tenant_usage

    by_class: dict[str, float] = {}
    for item in mix:
        cls, sep, value = item.partition("=")
        try:
            by_class[cls.strip()] = float(value)
        except ValueError:
            raise InvalidArgument(f"--mix {item!r}: expected CLASS=MINUTES, e.g. static=600") from None
        if not sep:
            raise InvalidArgument(f"--mix {item!r}: expected CLASS=MINUTES, e.g. static=600")
    if server:
        with remote.client(server, api_key) as c:
            remote.emit(c.get_usage(minutes, by_class or None))
        return
    u = tenant_usage(_store(store), tenant, minutes, by_class or None)
    if as_json:
        typer.echo(json.dumps(u.to_dict()))
        return
    table = Table(title=f"Tenant {tenant}: {u.videos} videos, {u.minutes:.1f} min, {u.tokens:,} tokens "
                        f"({u.tokens_per_minute:,.0f}/min; videos differ by ±{u.video_tpm_std:,.0f}/min)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in ("class", "segments", "minutes", "tokens", "tokens/min"):
        table.add_column(name, justify="left" if name == "class" else "right")
    for c in u.by_class:
        table.add_row(c.content_class, str(c.segments), f"{c.minutes:.1f}", f"{c.tokens:,}", f"{c.tokens_per_minute:,.0f}")
    out.print(table)
    what = ", ".join(f"{m:g} min {c}" for c, m in by_class.items()) if by_class else f"{u.forecast_minutes:g} min in this mix"
    out.print(f"Forecast for {what}: {u.forecast_tokens:,.0f} tokens ({u.forecast_low:,.0f} to {u.forecast_high:,.0f}).")
