"""``videomemory bench ...``: the benchmarks that are part of the product's acceptance tests.

A thin shell: each command parses its options and calls the library function (heavy imports are
deferred to the call, so ``videomemory --help`` stays fast).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

bench = typer.Typer(no_args_is_help=True, add_completion=False, help="Benchmarks: the matched-budget evaluation suite; issue 3's checks on generated videos.")


def parse_ratios(text: str) -> tuple[float, ...]:
    """"4,7,12" -> (4.0, 7.0, 12.0); each ratio must be a finite number >= 1."""
    try:
        ratios = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint="--budgets") from None
    if not ratios or any(not (r >= 1 and math.isfinite(r)) for r in ratios):
        raise typer.BadParameter("each budget ratio must be a number >= 1 (the budget is 1/ratio of flat)", param_hint="--budgets")
    return ratios


@bench.command("eval")
def eval_command(
    quick: bool = typer.Option(False, "--quick", help="CI size: 2 videos per class of 12 s on a 256x256 grid (forecast videos of 70 s at 128x128)."),
    out: Path = typer.Option(Path("results/eval"), "--out", help="Folder for eval.json, eval.md and the PNGs."),
    budgets: str = typer.Option("4,7,12", "--budgets", help="Budget ratios: each budget is 1/ratio of flat's tokens per minute."),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, help="Videos per class (default 10; 2 with --quick)."),
    duration: Optional[float] = typer.Option(None, "--duration", min=4.0, help="Seconds per video (default 16; 12 with --quick)."),
    size: Optional[int] = typer.Option(None, "--size", help="Grid side in px, a multiple of 32 (default 512; 256 with --quick)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes."),
    motion: str = typer.Option("median", "--motion", help="How the adaptive receiver warps: median (one vector) or blocks (the field)."),
    pixels: str = typer.Option("source", "--pixels", help="adaptive's sent pixels: source (as every baseline: compares plans) or code (rebuilt from the stored code, the product's)."),
    embedder: Optional[str] = typer.Option(None, "--embedder", help="Also report embedding cosine: 'descriptor' or a local CLIP/SigLIP dir."),
    no_scenedetect: bool = typer.Option(False, "--no-scenedetect", help="Skip the PySceneDetect comparison."),
    forecast_per_class: int = typer.Option(2, "--forecast-per-class", min=0, help="Long videos per class for the first-minute cost forecast (3 min at 256x256; 70 s at 128x128 with --quick); 0: skip."),
    anchor_format: str = typer.Option("jpeg", "--anchor-format", help="How the suite's codec stores anchors: jpeg (fast) or avif (the product's)."),
) -> None:
    """Compare flat, uniform, evs, paper and adaptive at matched tokens per minute, per content class."""
    ratios = parse_ratios(budgets)
    if motion not in ("median", "blocks"):
        raise typer.BadParameter("choose median or blocks", param_hint="--motion")
    if pixels not in ("source", "code"):
        raise typer.BadParameter("choose source or code", param_hint="--pixels")
    if size is not None and (size <= 0 or size % 32):
        raise typer.BadParameter(f"{size} is not a positive multiple of 32", param_hint="--size")
    from videomemory.bench.eval_suite import Settings, report, run_suite

    changes = {k: v for k, v in {"per_class": per_class, "duration_s": duration, "size": size}.items() if v is not None}
    if anchor_format not in ("jpeg", "avif", "webp", "png"):
        raise typer.BadParameter("choose jpeg, avif, webp or png", param_hint="--anchor-format")
    common = {"ratios": ratios, "workers": workers, "motion": motion, "pixels": pixels, "embedder": embedder,
              "scenedetect": not no_scenedetect, "anchor_format": anchor_format, "forecast_per_class": forecast_per_class}
    settings = Settings.quick_mode(**common, **changes) if quick else Settings(**common, **changes)  # type: ignore[arg-type]
    result = run_suite(settings, out)
    typer.echo(report(result))
    typer.echo(f"wrote {out / 'eval.json'}, {out / 'eval.md'}, {out / 'fidelity_vs_tokens.png'}, "
               f"{out / 'cost_spread.png'} in {result['wall_s']:.0f} s")


@bench.command("truth")
def truth_command(
    videos: list[Path] = typer.Argument(None, help="Videos `videomemory synth` wrote (their .json ground truth beside them)."),
    sweep: bool = typer.Option(False, "--sweep", help="Also write and check the built-in corpus (36 videos, ~8 min)."),
    duration: float = typer.Option(20.0, "--duration", min=4.0, help="Seconds per video of the sweep."),
    grid: str = typer.Option("512x512", "--grid", help="The codec's grid WIDTHxHEIGHT."),
    out: Path = typer.Option(Path("results/codec_truth.json"), "--out", help="Where to write the JSON."),
) -> None:
    """Check cut recall, false anchors, static GOPs and the pan's vectors against the ground truth."""
    if not videos and not sweep:
        raise typer.BadParameter("give generated videos (videomemory synth PRESET PATH) or --sweep", param_hint="VIDEOS")
    from videomemory.bench import codec_truth
    from videomemory.bench.common import write_json
    from videomemory.codec.config import Grid
    from videomemory.errors import InvalidArgument

    try:
        Grid.parse(grid)
    except InvalidArgument as e:
        raise typer.BadParameter(str(e), param_hint="--grid") from None
    try:
        result = codec_truth.run(list(videos or []), grid, duration if sweep else None)
    except FileNotFoundError as e:
        raise typer.BadParameter(str(e), param_hint="VIDEOS") from None
    codec_truth.show(result["rows"], result["verdicts"])
    write_json(result, out)
