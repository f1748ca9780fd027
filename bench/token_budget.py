"""Token budget per content class: what the adaptive plan spends against paper / flat / uniform.

For every generator preset (a content class) and seed it writes a video, samples it at 2 fps on a
grid the size of the video, codes it once with the default codec (adaptive plan, no budget), and
measures, per minute of video:

* tokens of the four plans (``codec.tokens.PLANS``): ``adaptive`` (what the codec sends),
  ``paper`` (AdaCodec's N_I per stored anchor, N_P = 16 per P-frame, on the same stored roles),
  ``flat`` (every sampled frame a full image) and ``uniform`` (evenly spaced full images within
  the adaptive total: the matched-budget baseline, it spends at most that);
* the adaptive saving against flat, in %;
* PSNR of the rebuilt frames against the sampled ones (mean over frames that differ, and min;
  the table's min is the worst frame over all seeds);
* stored code size in KB (1000 bytes) per minute, and the size of the same sampled frames as
  JPEG quality 90 (Pillow defaults), with the ratio code / JPEG;
* drift along the P-chain: per GOP, the first P-frame's PSNR minus the last's, the worst over
  full GOPs (anchor + K_max P-frames: issue 4's "within 1 dB over a 17-frame GOP") and over
  every GOP with at least two P-frames (shorter GOPs end at a cut or a failed prediction);
* with ``--budget``: a second pass under rate control, its achieved tokens/min and the error
  against the budget, in %.

The baselines come from the same run, on the same sampled frames and the same stored roles, so
a difference between plans is the plan alone: not the video, not the decoder, not the machine.
Figures are the mean and std (sample std; 0 with one seed) over seeds.

    python -m videomemory.bench.token_budget [--size 512] [--seeds 3] [--duration 60] [--quick]
                                             [--budget TPM] [--json results/token_budget.json]
                                             [--residual anchor_psnr=0,anchor_quality=90,frame_intra=false]
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer
from PIL import Image
from rich.console import Console
from rich.table import Table

from videomemory.bench import synth
from videomemory.codec.config import CodecConfig, Grid, PlanConfig, ResidualConfig
from videomemory.codec.decode import SampledFrame, sample_frames
from videomemory.codec.encoder import encode_stream
from videomemory.codec.tokens import FramePlan, TokenModel, plan_flat, plan_paper, plan_uniform, summarise
from videomemory.errors import VideoMemoryError

app = typer.Typer(add_completion=False)

#: Generator preset -> the content class it stands for, in table order.
CLASSES: dict[str, str] = {
    "static": "static",
    "objects": "low-motion",
    "pan": "low-motion",
    "fast_pan": "high-motion",
    "cuts": "high-cut",
    "fade": "fade",
    "mixed": "mixed",
}
SOURCE_FPS = 10.0  # frames/s of the generated files: enough for 2 fps sampling, quick to write
JPEG_QUALITY = 90
QUICK = {"size": 256, "seeds": 1, "duration": 20.0}
#: Per-seed figures that are aggregated (mean, std) per preset.
METRICS = (
    "adaptive_tpm", "paper_tpm", "flat_tpm", "uniform_tpm", "saving_vs_flat_pct",
    "psnr_mean", "psnr_min", "code_kb_per_min", "jpeg90_kb_per_min", "code_vs_jpeg90",
    "budget_tpm", "budget_error_pct", "encode_s", "drift_full_db", "drift_any_db",
)


def tokens_per_minute(plans: Sequence[FramePlan], fps: float) -> float:
    """Tokens per minute of video of a plan sequence."""
    return float(summarise(plans, fps)["tokens_per_minute"])


def jpeg_bytes(image: np.ndarray, quality: int = JPEG_QUALITY) -> int:
    """Size in bytes of one (H, W, 3) uint8 image as a Pillow JPEG at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.tell()


def psnr_stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and min PSNR over frames that differ from the source, and how many are identical."""
    finite = [v for v in values if math.isfinite(v)]
    return {
        "psnr_mean": statistics.fmean(finite) if finite else None,
        "psnr_min": min(finite) if finite else None,
        "identical_frames": len(values) - len(finite),
    }


def drift(psnrs: Sequence[float], roles: Sequence[str], k_max: int) -> dict[str, float | int | None]:
    """Worst first-P minus last-P PSNR per GOP: over full GOPs (1 + k_max frames) and over every GOP
    with at least two P-frames; None when there is no such GOP. GOPs whose first or last P-frame is
    identical to its source (inf dB: black frames of a fade) are left out."""
    gops: list[list[float]] = []
    for p, r in zip(psnrs, roles):
        if r == "I" or not gops:
            gops.append([])
        gops[-1].append(p)
    gaps = [(len(g), g[1] - g[-1]) for g in gops if len(g) >= 3 and math.isfinite(g[1]) and math.isfinite(g[-1])]
    full = [d for n, d in gaps if n == k_max + 1]
    return {
        "drift_full_db": max(full) if full else None,
        "drift_any_db": max(d for _, d in gaps) if gaps else None,
        "full_gops": len(full),
    }


def plan_rates(roles: Sequence[str], adaptive: Sequence[FramePlan], model: TokenModel, fps: float) -> dict[str, float | int]:
    """Tokens/min of the four plans, given the stored roles and the adaptive plans of a video."""
    n = len(roles)
    total = sum(p.tokens for p in adaptive)
    flat = tokens_per_minute([plan_flat(model)] * n, fps)
    adapt = tokens_per_minute(adaptive, fps)
    return {
        "adaptive_tokens": total,
        "adaptive_tpm": adapt,
        "paper_tpm": tokens_per_minute([plan_paper(r, model) for r in roles], fps),
        "flat_tpm": flat,
        "uniform_tpm": tokens_per_minute(plan_uniform(n, total, model), fps),
        "saving_vs_flat_pct": 100.0 * (1.0 - adapt / flat) if flat else 0.0,
    }


def budget_rate(frames: Sequence[SampledFrame], config: CodecConfig, budget: float, device: str) -> dict[str, float]:
    """Code the frames again under rate control; achieved tokens/min and error vs the budget in %."""
    budgeted = config.with_(plan=PlanConfig(budget_per_min=budget))
    plans = [e.plan for e in encode_stream(frames, budgeted, device)]
    achieved = tokens_per_minute(plans, config.fps)
    return {"budget_tpm": achieved, "budget_error_pct": 100.0 * (achieved - budget) / budget}


def residual_config(spec: str) -> ResidualConfig:
    """``ResidualConfig`` from "field=value,..." (e.g. "anchor_quality=90,anchor_psnr=0,frame_intra=false")."""
    types = {f.name: f.type for f in fields(ResidualConfig)}
    changes: dict[str, object] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = item.partition("=")
        if key not in types or not value:
            raise ValueError(f"{item!r}: expected FIELD=VALUE with FIELD one of {', '.join(types)}")
        kind = types[key] if isinstance(types[key], str) else types[key].__name__
        changes[key] = value.lower() in ("1", "true", "yes") if kind == "bool" else {"int": int, "float": float}.get(kind, str)(value)
    return ResidualConfig(**changes)


def measure_video(
    name: str, size: int, duration: float, seed: int, folder: Path, budget: float | None, device: str,
    residual: ResidualConfig = ResidualConfig(),
) -> dict:
    """Write, sample and code one generated video; return its per-seed figures."""
    truth = synth.write_video(
        folder / f"{name}-{seed}.mp4", synth.preset(name, (size, size), duration, seed=seed, fps=SOURCE_FPS),
        (size, size), SOURCE_FPS, seed=seed,
    )
    config = CodecConfig(grid=Grid(size, size), residual=residual)
    model = TokenModel(grid=config.grid)
    frames = list(sample_frames(truth.path, fps=config.fps, grid=config.grid))
    t0 = time.perf_counter()
    coded = [(e.plan, e.code.role, e.psnr, e.nbytes) for e in encode_stream(frames, config, device)]
    encode_s = time.perf_counter() - t0
    plans, roles, psnrs, nbytes = (list(col) for col in zip(*coded))
    minutes = len(frames) / config.fps / 60.0
    code_kb = sum(nbytes) / 1000.0 / minutes
    jpeg_kb = sum(jpeg_bytes(f.image) for f in frames) / 1000.0 / minutes
    record = {
        "preset": name,
        "seed": seed,
        "frames": len(frames),
        "stored_anchors": sum(r == "I" for r in roles),
        "full_images_sent": sum(p.role == "I" for p in plans),
        "encode_s": encode_s,
        **plan_rates(roles, plans, model, config.fps),
        **psnr_stats(psnrs),
        **drift(psnrs, roles, config.gop.k_max),
        "code_kb_per_min": code_kb,
        "jpeg90_kb_per_min": jpeg_kb,
        "code_vs_jpeg90": code_kb / jpeg_kb if jpeg_kb else None,
    }
    if budget is not None:
        record.update(budget_rate(frames, config, budget, device))
    return record


def mean_std(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean and sample std of the values that are not None (std 0 with one value)."""
    v = [x for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}


def aggregate(records: Sequence[dict]) -> dict[str, dict[str, float | None]]:
    """Mean and std over seeds of every metric in the per-seed records; ``psnr_worst``: the lowest min."""
    out = {k: mean_std([r.get(k) for r in records]) for k in METRICS if any(k in r for r in records)}
    mins = [r["psnr_min"] for r in records if r.get("psnr_min") is not None]
    out["psnr_worst"] = {"min": min(mins) if mins else None}
    for key in ("drift_full_db", "drift_any_db"):  # the worst GOP over all seeds
        values = [r[key] for r in records if r.get(key) is not None]
        out[key + "_worst"] = {"max": max(values) if values else None}
    return out


def run(
    size: int, seeds: int, duration: float, presets: Sequence[str], budget: float | None = None,
    threads: int = 1, device: str = "auto", residual: str = "",
) -> dict:
    """Measure every preset and seed; return the JSON-ready results."""
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vm-tokens-") as tmp:
        for name in presets:
            per_seed = [measure_video(name, size, duration, seed, Path(tmp), budget, device, residual_config(residual))
                        for seed in range(seeds)]
            rows.append({"preset": name, "class": CLASSES[name], "seeds": per_seed, "aggregate": aggregate(per_seed)})
    grid = Grid(size, size)
    return {
        "benchmark": "token_budget",
        "settings": {
            "size": size,
            "seeds": seeds,
            "duration_s": duration,
            "source_fps": SOURCE_FPS,
            "sample_fps": CodecConfig().fps,
            "tokens_per_image": grid.tokens_per_image,
            "budget_per_min": budget,
            "jpeg_quality": JPEG_QUALITY,
            "device": device,
            "residual": residual,
            "torch_threads": threads,
            "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "presets": rows,
    }


def _fmt(agg: dict, key: str, spec: str, with_std: bool = False) -> str:
    """One aggregate as table text: mean (and ±std), or "-" when missing."""
    m = agg.get(key, {}).get("mean")
    if m is None:
        return "-"
    return f"{m:{spec}}±{agg[key]['std']:{spec}}" if with_std else f"{m:{spec}}"


def _worst(agg: dict) -> str:
    """The lowest per-frame PSNR over all seeds as table text."""
    w = agg["psnr_worst"]["min"]
    return "-" if w is None else f"{w:.1f}"


def _drift(agg: dict, key: str) -> str:
    """The worst first-P minus last-P gap over all seeds as table text ("-": no such GOP)."""
    w = agg.get(key + "_worst", {}).get("max")
    return "-" if w is None else f"{w:.2f}"


def show(result: dict, console: Console | None = None) -> None:
    """Print the per-preset aggregates as a table."""
    s = result["settings"]
    budget = s["budget_per_min"]
    t = Table(title=f"tokens per minute at {s['size']}x{s['size']} ({s['tokens_per_image']} per image), "
                    f"{s['sample_fps']:g} fps, {s['seeds']} seed(s) x {s['duration_s']:g} s"
                    + (f", budget {budget:g}/min" if budget is not None else ""))
    heads = ["preset", "class", "adaptive", "paper", "flat", "uniform", "saving", "PSNR mean/min",
             "drift full/any dB", "code KB/min", "JPEG90 KB/min", "code/JPEG"] + (["budget tpm (err)"] if budget is not None else [])
    for h in heads:
        t.add_column(h, justify="right")
    for row in result["presets"]:
        a = row["aggregate"]
        cells = [
            row["preset"], row["class"], _fmt(a, "adaptive_tpm", ".0f", True), _fmt(a, "paper_tpm", ".0f", True),
            _fmt(a, "flat_tpm", ".0f"), _fmt(a, "uniform_tpm", ".0f"), _fmt(a, "saving_vs_flat_pct", ".1f") + "%",
            f"{_fmt(a, 'psnr_mean', '.1f')}/{_worst(a)}",
            f"{_drift(a, 'drift_full_db')}/{_drift(a, 'drift_any_db')}", _fmt(a, "code_kb_per_min", ".0f"),
            _fmt(a, "jpeg90_kb_per_min", ".0f"), _fmt(a, "code_vs_jpeg90", ".2f"),
        ]
        if budget is not None:
            cells.append(f"{_fmt(a, 'budget_tpm', '.0f')} ({_fmt(a, 'budget_error_pct', '+.1f')}%)")
        t.add_row(*cells)
    (console or Console(width=200)).print(t)  # wide enough for every column, also when piped


@app.command()
def main(
    size: int = typer.Option(512, help="Video and grid side in px (square; a multiple of 32)."),
    seeds: int = typer.Option(3, min=1, help="Videos per preset."),
    duration: float = typer.Option(60.0, min=1.0, help="Seconds per video."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: size 256, 1 seed, 20 s."),
    budget: Optional[float] = typer.Option(None, help="Also code under rate control at this many tokens/min."),
    presets: str = typer.Option(",".join(CLASSES), help="Comma-separated presets to run."),
    threads: int = typer.Option(1, min=1, help="torch threads for the codec."),
    device: str = typer.Option("auto", help="Codec device: auto, cpu or cuda."),
    residual: str = typer.Option("", help="ResidualConfig changes, FIELD=VALUE,... (e.g. anchor_psnr=0,anchor_quality=90)."),
    json_out: Path = typer.Option(Path("results/token_budget.json"), "--json", help="Where to write the JSON."),
) -> None:
    """Print tokens/min per content class for adaptive / paper / flat / uniform, PSNR and code size."""
    if quick:
        size, seeds, duration = QUICK["size"], QUICK["seeds"], QUICK["duration"]
    names = [p.strip() for p in presets.split(",") if p.strip()]
    unknown = [p for p in names if p not in CLASSES]
    if unknown or not names:
        raise typer.BadParameter(f"unknown preset(s) {unknown}; choose from {', '.join(CLASSES)}", param_hint="--presets")
    if size <= 0 or size % 32:
        raise typer.BadParameter(f"{size} is not a positive multiple of 32", param_hint="--size")
    if budget is not None and budget < Grid(size, size).tokens_per_image:
        raise typer.BadParameter(f"below one full image ({Grid(size, size).tokens_per_image} tokens) per minute", param_hint="--budget")
    try:
        residual_config(residual)
    except (ValueError, VideoMemoryError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--residual") from None
    result = run(size, seeds, duration, names, budget, threads, device, residual)
    result["settings"]["quick"] = quick
    console = Console(width=200)
    show(result, console)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=1))
    console.print(f"wrote {json_out}")


if __name__ == "__main__":
    app()
