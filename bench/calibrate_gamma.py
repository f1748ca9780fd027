"""Calibrate the anchor threshold gamma (pcost per 16x16 block) on generated footage.

For every preset and seed it writes a video with known cuts, codes it at 2 fps, and splits the
pcost-per-block series into frames that show a new shot (cuts) and all others. A good gamma lies
above every non-cut frame (no false anchors on pans and moving objects) and below every cut
frame (recall 100%). The script prints that band per preset, the band over the whole corpus, the
default it recommends (the geometric middle of the band) and, for reference, the gamma that
PAPER's target of a median 8 P-frames per GOP would give on the same corpus.

    python -m videomemory.bench.calibrate_gamma [--size 512x512] [--seeds 3] [--json results/gamma.json]
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from videomemory.bench import synth
from videomemory.bench.codec_truth import cut_frames
from videomemory.codec.config import CodecConfig, GopConfig, Grid
from videomemory.codec.decode import sample_frames
from videomemory.codec.gop import calibrate_gamma, encode, median_p_per_gop

app = typer.Typer(add_completion=False)
# A fade changes every pixel's brightness from one sampled frame to the next: anchors there are
# expected (the content does change), so fades do not bound gamma from below. They are reported.
GRADUAL = ("fade",)


def pcost_series(name: str, size: tuple[int, int], duration: float, seed: int, folder: Path) -> dict:
    """Code one generated video; return its pcost-per-block series and which frames are cuts."""
    truth = synth.write_video(folder / f"{name}-{seed}.mp4", synth.preset(name, size, duration, seed=seed), size, 10.0, seed=seed)
    config = CodecConfig(grid=Grid(*size))
    frames = list(sample_frames(truth.path, fps=config.fps, grid=config.grid))
    codes = list(encode(frames, config, "auto"))
    cuts = set(cut_frames(truth, frames))
    is_cut = [i in cuts for i in range(len(frames))]
    return {"preset": name, "seed": seed, "series": [c.pcost_per_block for c in codes], "is_cut": is_cut}


@app.command()
def main(
    size: str = typer.Option("512x512", help="Video and grid size WIDTHxHEIGHT."),
    seeds: int = typer.Option(3, help="Videos per preset."),
    duration: float = typer.Option(30.0, help="Seconds per video."),
    json_out: Path = typer.Option(Path("results/gamma.json"), "--json"),
) -> None:
    """Print the cut / non-cut pcost band per preset and the recommended gamma."""
    w, h = (int(v) for v in size.split("x"))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in synth.PRESETS:
            for seed in range(seeds):
                runs.append(pcost_series(name, (w, h), duration, seed, Path(tmp)))
    table = Table(title=f"pcost per block at {size}, 2 fps ({seeds} videos per preset, {duration:g} s each)")
    for col in ("preset", "frames", "cuts", "max non-cut", "p99 non-cut", "min cut"):
        table.add_column(col, justify="right")
    rows = []
    for name in synth.PRESETS:
        mine = [r for r in runs if r["preset"] == name]
        non = sorted(v for r in mine for v, c in zip(r["series"], r["is_cut"]) if v is not None and not c)
        cut = [v for r in mine for v, c in zip(r["series"], r["is_cut"]) if c]
        row = {
            "preset": name,
            "frames": sum(len(r["series"]) for r in mine),
            "cuts": len(cut),
            "max_non_cut": max(non) if non else None,
            "p99_non_cut": non[int(0.99 * (len(non) - 1))] if non else None,
            "min_cut": min(cut) if cut else None,
        }
        rows.append(row)
        fmt = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
        table.add_row(name, str(row["frames"]), str(row["cuts"]), fmt(row["max_non_cut"]), fmt(row["p99_non_cut"]), fmt(row["min_cut"]))
    console = Console()
    console.print(table)
    lo = max(r["max_non_cut"] for r in rows if r["max_non_cut"] is not None and r["preset"] not in GRADUAL)
    hi = min(r["min_cut"] for r in rows if r["min_cut"] is not None)
    recommended = math.sqrt(lo * hi) if hi > lo else None
    paper = calibrate_gamma([r["series"] for r in runs], target_median_p=8)

    def median_p(gamma: float) -> float:
        return median_p_per_gop([r["series"] for r in runs], GopConfig(gamma_per_block=gamma))

    result = {
        "size": size,
        "seeds": seeds,
        "duration_s": duration,
        "presets": rows,
        "band": [lo, hi],
        "recommended_gamma_per_block": recommended,
        "median_p_per_gop_at_recommended": median_p(recommended) if recommended else None,
        "gamma_for_median_8": paper,
        "default_in_code": GopConfig().gamma_per_block,
        "median_p_per_gop_at_default": median_p(GopConfig().gamma_per_block),
    }
    console.print(
        f"band: non-cut max {lo:,.0f} < gamma < cut min {hi:,.0f}"
        + (f"; recommended {recommended:,.0f} (median P/GOP {result['median_p_per_gop_at_recommended']})" if recommended else "; NO SEPARATING GAMMA")
        + f"; median-8 calibration gives {paper:,.0f}; default in code {GopConfig().gamma_per_block:,.0f} (median P/GOP {result['median_p_per_gop_at_default']})"
    )
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=1))
    console.print(f"wrote {json_out}")


if __name__ == "__main__":
    app()
