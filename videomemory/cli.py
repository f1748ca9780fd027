"""The ``videomemory`` command line: a thin shell over the library calls."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from videomemory.errors import VideoMemoryError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Store and serve video as a predictive visual code (anchors + P-frames) for agents.",
)
# Piped or redirected, rich would cut tables to 80 columns ("fr…", "ro…"); a file gets them whole.
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True, soft_wrap=True)  # an error message stays one line, whatever the terminal width
F = TypeVar("F", bound=Callable[..., object])


def friendly_errors(fn: F) -> F:
    """Print a VideoMemoryError as one actionable line and exit 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except VideoMemoryError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except Exception as exc:  # a --server call: the server's status and message, not a traceback
            import grpc

            if not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
                raise
            err.print(f"[bold red]error:[/] {exc.code().name}: {exc.details()}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _codec_config(
    fps: float, grid: str, gamma: Optional[float], k_max: int, search: str, source: Path | None, budget: Optional[float] = None
):
    from videomemory.codec.config import CodecConfig, GopConfig, Grid, MotionConfig, PlanConfig

    if grid == "fit":
        if source is None:
            raise typer.BadParameter("--grid fit needs a video file")
        from videomemory.codec.decode import probe

        info = probe(source)
        g = Grid.fit(round(info.height * info.display_aspect), info.height)  # as shown: rotated, pixel aspect applied
    else:
        g = Grid.parse(grid)
    gop = GopConfig(k_max=k_max) if gamma is None else GopConfig(gamma_per_block=gamma, k_max=k_max)
    plan = PlanConfig(budget_per_min=budget)
    return CodecConfig(fps=fps, grid=g, motion=MotionConfig(method=search), gop=gop, plan=plan)


def _encode_stream(video: Path, config, device: str, strict: bool = True) -> Iterator:
    from videomemory.codec.decode import expected_samples, probe, sample_frames
    from videomemory.codec.encoder import Encoder

    encoder = Encoder(config, device, expected_samples(probe(video).duration_s, config.fps))
    for frame in sample_frames(video, fps=config.fps, grid=config.grid, strict=strict):
        yield encoder.push(frame)


class _Plans:
    """Tokens per frame under the asked plan, and running totals of all four (for the summary)."""

    def __init__(self, config, plan: str) -> None:
        from videomemory.codec import tokens

        if plan not in tokens.PLANS:
            raise typer.BadParameter(f"--plan must be one of {', '.join(tokens.PLANS)}")
        budget = config.plan.budget_per_min
        if plan == "uniform" and budget is None:
            raise typer.BadParameter("--plan uniform spreads full frames over a budget: give --budget TOKENS_PER_MIN")
        self.t, self.plan, self.model = tokens, plan, tokens.TokenModel(grid=config.grid)
        self.uniform = tokens.UniformSampler(self.model, budget / (60.0 * config.fps)) if budget else None
        self.fps = config.fps
        self.totals = {name: 0 for name in tokens.PLANS if name != "uniform" or self.uniform}

    def tokens(self, encoded) -> int:
        """Record one frame under every plan; return its tokens under the asked one."""
        per = {
            "adaptive": encoded.plan.tokens,
            "paper": self.t.plan_paper(encoded.code.role, self.model).tokens,
            "flat": self.model.anchor_tokens,
        }
        if self.uniform is not None:
            per["uniform"] = self.uniform.push().tokens
        for name, n in per.items():
            self.totals[name] += n
        return per[self.plan]


def _warm_kernels(device: str = "auto") -> None:
    """Compile or load the CPU motion kernels before timing a video, and say so when it took a while."""
    from videomemory.codec.config import resolve_device

    if resolve_device(device).type != "cpu":
        return
    from videomemory.codec import motion_cpu

    secs = motion_cpu.warm()
    if secs > 2:
        err.print(f"Compiled the CPU motion kernels in {secs:.0f} s (once after an install; cached in codec/__pycache__).")


def _print_gop_table(
    codes_iter: Iterator, as_json: bool, title: str, plans: "_Plans", png: tuple[Path, float, float] | None = None,
    vectors: bool = False,
) -> list:
    """Print per-frame rows (and per-GOP lengths) as they come; return the frame summaries
    (``vectors``: with each P-frame's whole motion field)."""
    rows: list[dict] = []
    psnrs: list[float] = []
    stored = 0
    gop_rows: list[dict] = []
    t0 = time.perf_counter()

    from videomemory.codec.encoder import reported_psnr
    from videomemory.codec.stats import content_stats

    pending: list[dict] = []  # frame records of the open GOP (its length is known when it closes)
    pending_frames: list = []  # ... and its encoded frames, for the GOP's content class
    table = Table(title=title, show_lines=False)
    columns = ("frame", "pts ms", "src", "role", "pcost/block", "motion px", "why anchor", "GOP", "GOP len",
               "class", "flat", "tokens", "PSNR dB")
    for col in columns:
        table.add_column(col, justify="right" if col not in ("role", "why anchor", "class") else "left")

    def close_gop() -> None:
        if not pending:
            return
        stats = content_stats(pending_frames, plans.fps)  # codec.stats: class and hybrid routing flag
        rec = {
            "type": "gop",
            "gop": pending[0]["gop"],
            "start_ms": pending[0]["pts_ms"],
            "end_ms": pending[-1]["pts_ms"],
            "frames": len(pending),
            "p_frames": len(pending) - 1,
            "anchor_reason": pending[0]["reason"],
            "content_class": stats.content_class,
            "hybrid_flat": stats.hybrid_flat,
        }
        gop_rows.append(rec)
        if as_json:
            print(json.dumps(rec), flush=True)
        else:
            for i, r in enumerate(pending):
                table.add_row(
                    str(r["sampled_index"]),
                    str(r["pts_ms"]),
                    str(r["source_index"]),
                    "[bold cyan]I[/]" if r["role"] == "I" else "P",
                    "-" if r["pcost_per_block"] is None else f"{r['pcost_per_block']:.0f}",
                    "-" if "motion_mean_px" not in r else f"{r['motion_mean_px']:.1f}",
                    r["reason"],
                    str(r["gop"]),
                    str(len(pending)) if i == 0 else "",
                    stats.content_class if i == 0 else "",
                    ("yes" if stats.hybrid_flat else "no") if i == 0 else "",
                    str(r["tokens"]),
                    f"{r['psnr_db']:.1f}",
                    end_section=i == len(pending) - 1,
                )
        pending.clear()
        pending_frames.clear()

    for encoded in codes_iter:
        code = encoded.code
        db = reported_psnr(encoded.psnr)  # an exact rebuild reads 99 dB, as the store keeps it: JSON has no infinity
        rec = {"type": "frame", **code.summary(vectors), "tokens": plans.tokens(encoded), "psnr_db": round(db, 2)}
        rec["bytes"] = encoded.nbytes
        psnrs.append(db)
        stored += encoded.nbytes
        if png is not None and png[1] <= code.pts_ms / 1000.0 <= png[2]:
            from PIL import Image

            Image.fromarray(encoded.image).save(png[0] / f"{code.pts_ms:09d}ms.png")
        if pending and rec["gop"] != pending[-1]["gop"]:
            close_gop()
        rows.append(rec)
        pending.append(rec)
        pending_frames.append(encoded)
        if as_json:
            print(json.dumps(rec), flush=True)
    close_gop()
    seconds = time.perf_counter() - t0
    lengths = [g["frames"] for g in gop_rows]
    p_counts = sorted(g["p_frames"] for g in gop_rows)
    summary = {
        "type": "summary",
        "frames": len(rows),
        "gops": len(gop_rows),
        "gop_lengths": lengths,
        "mean_gop_length": round(sum(lengths) / len(lengths), 2) if lengths else 0,
        "median_p_per_gop": p_counts[len(p_counts) // 2] if p_counts else 0,
        "seconds": round(seconds, 3),
        "plan": plans.plan,
        "tokens_per_min": {k: round(v / minutes, 1) for k, v in plans.totals.items()} if (minutes := len(rows) / plans.fps / 60.0) else {},
        "psnr_min_db": round(min(psnrs), 2) if psnrs else None,
        "psnr_mean_db": round(sum(psnrs) / len(psnrs), 2) if psnrs else None,
        "stored_bytes": stored,
    }
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        out.print(table)
        out.print(
            f"{summary['frames']} sampled frames, {summary['gops']} GOPs "
            f"(lengths {', '.join(map(str, lengths))}); mean GOP {summary['mean_gop_length']} frames, "
            f"median {summary['median_p_per_gop']} P-frames per GOP; coded in {seconds:.2f} s"
        )
        if rows:
            rates = ", ".join(f"{k} {v:,.0f}" for k, v in summary["tokens_per_min"].items())
            out.print(
                f"Tokens per minute: {rates} (table shows {plans.plan}). Rebuilt frames: PSNR min "
                f"{summary['psnr_min_db']} dB, mean {summary['psnr_mean_db']} dB; stored code {stored / 1e3:,.0f} KB."
            )
    return rows


@app.command()
@friendly_errors
def encode(
    video: Path = typer.Argument(..., help="A video file (anything FFmpeg reads)."),
    fps: float = typer.Option(2.0, help="Sampling rate in frames per second (by timestamp)."),
    grid: str = typer.Option("512x512", help="Model grid WIDTHxHEIGHT (multiples of 32), or 'fit' to keep the aspect."),
    gamma: Optional[float] = typer.Option(None, help="Anchor threshold per 16x16 block (default: calibrated value)."),
    k_max: int = typer.Option(16, "--k-max", help="Longest run of P-frames before a forced anchor."),
    search: str = typer.Option("fast", help="Motion search: fast or exhaustive (slow reference)."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line: frames, GOPs, then a summary."),
    lenient: bool = typer.Option(False, "--lenient", help="Keep the frames before damage in a truncated or corrupt file."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Rate control: tokens per minute to aim for."),
    plan: str = typer.Option("adaptive", "--plan", help="Tokens shown per frame: adaptive, paper, flat or uniform."),
    png: Optional[Path] = typer.Option(None, "--png", help="Write the rebuilt frames as PNGs into this folder."),
    png_from: float = typer.Option(0.0, "--from", help="First second written with --png."),
    png_to: float = typer.Option(float("inf"), "--to", help="Last second written with --png."),
    vectors: bool = typer.Option(
        False, "--vectors",
        help="Add each frame's motion field to the JSON (implies --json): 'vectors', per block row the "
             "(dy, dx) of each 16x16 block, where its content was in the previous sampled frame "
             "(a picture panning right by 24 px gives dx = -24), and 'block_cost', SAD + the rate of "
             "the vector (lambda|d - g|, g the frame's 'global_motion')."),
) -> None:
    """Code a video: anchors, P-frames, tokens per frame and minute, PSNR of the rebuilt frames."""
    config = _codec_config(fps, grid, gamma, k_max, search, video, budget)
    plans = _Plans(config, plan)
    if png is not None:
        png.mkdir(parents=True, exist_ok=True)
    title = f"{video.name} at {fps:g} fps on {config.grid.width}x{config.grid.height}"
    _warm_kernels(device)
    frames = _encode_stream(video, config, device, strict=not lenient)
    _print_gop_table(frames, as_json or vectors, title, plans, None if png is None else (png, png_from, png_to), vectors)


@app.command()
@friendly_errors
def synth(
    preset: str = typer.Argument(..., help="mixed, static, pan, fast_pan, objects, cuts, fade"),
    path: Path = typer.Argument(..., help="Where to write the .mp4 (ground truth goes beside it as .json)."),
    size: str = typer.Option("512x512", help="WIDTHxHEIGHT, even numbers."),
    duration: float = typer.Option(20.0, help="Seconds."),
    fps: float = typer.Option(30.0, help="Source frame rate."),
    vfr: bool = typer.Option(False, help="Variable frame rate."),
    seed: int = typer.Option(0),
) -> None:
    """Write a generated test video with known ground truth (cuts, pans, objects) from real photographs."""
    from videomemory.bench import synth as s

    w, h = (int(v) for v in size.lower().split("x"))
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = s.write_preset(preset, path, (w, h), duration, fps, vfr=vfr, seed=seed)
    path.with_suffix(".json").write_text(json.dumps(truth.to_dict(), indent=1))
    cuts = f"cuts at {', '.join(f'{c:g}' for c in truth.cuts_s)} s" if truth.cuts_s else "no cuts"
    out.print(f"wrote {path} ({w}x{h}, {duration:g} s, {cuts}; ground truth in {path.with_suffix('.json').name})")


@app.command()
def version() -> None:
    """Print the installed version."""
    from videomemory import __version__

    typer.echo(__version__)


from videomemory import cli_memory  # noqa: E402,F401 - registers index, list, inspect, cite, plot, demo
from videomemory import cli_retrieval  # noqa: E402,F401 - registers search, clip, reindex
from videomemory.cli_bench import bench  # noqa: E402

app.add_typer(bench, name="bench")  # videomemory bench eval


@app.callback()
@friendly_errors
def _torch_threads() -> None:
    # Before every command: torch's CPU threads, VIDEOMEMORY_TORCH_THREADS else 1 (set_cpu_threads).
    from videomemory.codec.config import set_cpu_threads

    set_cpu_threads()


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m videomemory``."""
    app(prog_name="videomemory")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
