"""Ingest speed and storage at 480p and 1080p: decode -> code -> store against decode alone.

Run:  python bench/ingest.py               (about 4 minutes on 2 cores: 30 s videos)
      python bench/ingest.py --quick       (under a minute: 6 s videos, 480p only)

For each generated video (the ``mixed`` preset: a static shot, a pan, moving objects, a brisk pan,
H.264 at 30 fps) it measures, in the same run and on the same file:

- decode-only: ``sample_frames`` at the codec's fps and grid, every frame consumed (the floor any
  ingest pays: demux, decode every source frame, convert and resize the sampled ones);
- ingest: ``ingest_video`` into a fresh store (content key, decode overlapped with coding, rows
  written, atomic commit), with 1 worker;
- the ratio ingest / decode-only (the aim is <= 1.3x), x-realtime of the ingest, CPU seconds per
  video minute, and the bytes stored per minute of video against the source file's bytes per minute.
Prints a table and writes JSON (default ``results/ingest.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from videomemory.bench import synth
from videomemory.bench.common import timed, write_json
from videomemory.codec.config import CodecConfig
from videomemory.codec.decode import sample_frames
from videomemory.memory.ids import video_key
from videomemory.memory.ingest import ingest_video
from videomemory.memory.store import Store

SIZES = {"480p": (854, 480), "1080p": (1920, 1080)}



def _measure(work: Path, label: str, duration: float, config: CodecConfig, device: str) -> dict:
    """Decode-only, content key and ingest of one generated video; one table row."""
    size = SIZES[label]
    path = work / f"mixed_{label}.mp4"
    synth.write_video(path, synth.preset("mixed", size, duration, seed=3), size, 30.0, x264_preset="veryfast")
    n, dec_wall, dec_cpu = timed(lambda: sum(1 for _ in sample_frames(path, config.fps, config.grid)))
    _, key_wall, _ = timed(lambda: video_key(path))
    store = Store(work / f"store_{label}")
    result, ing_wall, ing_cpu = timed(lambda: ingest_video(store, path, config=config, device=device))
    minutes = result.duration_s / 60
    return {
        "video": path.name,
        "size": f"{size[0]}x{size[1]}",
        "duration_s": round(result.duration_s, 2),
        "sampled_frames": n,
        "decode_s": round(dec_wall, 3),
        "key_s": round(key_wall, 3),
        "ingest_s": round(ing_wall, 3),
        "ratio": round(ing_wall / dec_wall, 2),
        "x_realtime": round(result.duration_s / ing_wall, 2),
        "decode_x_realtime": round(result.duration_s / dec_wall, 2),
        "decode_cpu_s_per_min": round(dec_cpu / minutes, 2),
        "ingest_cpu_s_per_min": round(ing_cpu / minutes, 2),
        "source_kb_per_min": round(result.source_bytes / minutes / 1e3, 1),
        "stored_kb_per_min": round(result.stored_bytes / minutes / 1e3, 1),
        "stored_vs_source": round(result.stored_bytes / result.source_bytes, 3),
        "tokens_per_min": round(result.tokens_per_min),
    }


def run(quick: bool, duration: float, sizes: list[str], device: str) -> dict:
    """Measure every size; return the JSON-ready results."""
    config = CodecConfig()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vm-ingest-") as tmp:
        # One short untimed ingest first: loads the compiled motion kernels, the encoders and the store.
        warm = Path(tmp) / "warm.mp4"
        synth.write_video(warm, synth.preset("mixed", (256, 144), 2.0, seed=3), (256, 144), 30.0)
        ingest_video(Store(Path(tmp) / "store_warm"), warm, config=config, device=device)
        for label in sizes:
            rows.append(_measure(Path(tmp), label, duration, config, device))
    return {
        "benchmark": "ingest",
        "quick": quick,
        "config": {"fps": config.fps, "grid": f"{config.grid.width}x{config.grid.height}", "device": device, "workers": 1},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()},
        "rows": rows,
    }


def show(result: dict) -> None:
    """Print the table."""
    table = Table(title=f"Ingest vs decode-only ({result['config']['grid']} grid, {result['config']['fps']:g} fps, "
                        f"{result['machine']['cpus']} cores)")
    cols = [
        ("size", "size"), ("duration_s", "video s"), ("decode_s", "decode s"), ("ingest_s", "ingest s"),
        ("ratio", "ingest/decode"), ("x_realtime", "x-realtime"), ("key_s", "key s"),
        ("source_kb_per_min", "source KB/min"), ("stored_kb_per_min", "stored KB/min"), ("stored_vs_source", "stored/source"),
    ]
    for _, title in cols:
        table.add_column(title, justify="right")
    for row in result["rows"]:
        table.add_row(*(f"{row[k]:,}" if isinstance(row[k], (int, float)) else str(row[k]) for k, _ in cols))
    Console(width=200).print(table)  # wide enough for every column, also when piped


def main() -> None:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 s videos, 480p only")
    ap.add_argument("--duration", type=float, default=None, help="seconds per video (default 30, quick 6)")
    ap.add_argument("--sizes", default=None, help="comma list of 480p,1080p")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("results/ingest.json"))
    args = ap.parse_args()
    duration = args.duration or (6.0 if args.quick else 30.0)
    sizes = args.sizes.split(",") if args.sizes else (["480p"] if args.quick else ["480p", "1080p"])
    result = run(args.quick, duration, sizes, args.device)
    show(result)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
