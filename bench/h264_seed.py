"""Would the source's own H.264 motion vectors seed the motion search better than the previous field?

Run:  python -m videomemory.bench.h264_seed            (about 3 minutes: 8 videos of 30 s)
      python -m videomemory.bench.h264_seed --quick    (12 s videos)

DESIGN section 4 lists it as worth measuring: the decoder exports each source frame's motion
vectors (FFmpeg's ``flags2=+export_mvs``), and chained over the source frames between two
sampled frames they give each block a vector for free. The search already takes one seed, the
previous pair's field (the *prior*: a block it predicts well skips the pyramid).

For every P-frame pair of generated 512x512 videos (H.264 at 30 fps, no B-frames, an I-frame
every 2 s, coded at 2 fps on their own grid), each written twice, by libx264's ``veryfast``
preset (one reference frame) and its ``medium`` preset (three), this measures in the same run,
per block, whether each seed's cost (SAD + lambda|d|_1, Eq. 1) is within 1% of the fast
search's, as the GOP coder ran it (the global-motion merge off, so its fields are the search's;
within 1% of the exhaustive optimum on every P-frame block of these presets):

* the chained H.264 vector: traced from the block's centre back through every source frame,
  each step the quarter-pel vector of the 4x4 cell the point lies in; lost where the chain meets
  an intra block or an I-frame. FFmpeg exports an H.264 vector's direction, not which past frame
  it points to, so a chain is only right where blocks predict from the frame just before; with
  three references x264 points some blocks two or three frames back;
* the prior, and the zero vector;
* and the blocks where the H.264 chain is within 1% and the prior is not: what seeding would add.

It also times decoding every source frame without and with the export (reading the vectors),
building the per-frame fields (numpy), and building the chains. Prints a table and writes JSON (default ``results/h264_seed.json``).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type as SideData

from videomemory.bench import synth
from videomemory.bench.common import print_table, quick_main, timed
from videomemory.codec.config import BLOCK, CodecConfig, Grid
from videomemory.codec.decode import sample_frames
from videomemory.codec.gop import GopEncoder

SIZE = (512, 512)
CELL = 4  # H.264's smallest motion partition, px
# libx264 presets and the reference frames each lets a block predict from (x264's preset table)
X264 = (("veryfast", 1), ("medium", 3))


def source_motion(path: Path, export: bool = True, build: bool = True) -> list[np.ndarray]:
    """Per decoded source frame, (H/4, W/4, 2) float: where each 4x4 cell's content was in the
    frame before, as (dy, dx) px from the cell (NaN: intra, or no previous-frame reference).
    ``export=False`` decodes without the export, ``build=False`` reads the vectors but builds no
    field (both only to time the steps: they return no fields)."""
    fields = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if export:
            stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in container.decode(stream):
            data = frame.side_data.get(SideData.MOTION_VECTORS) if export else None
            if not build:
                if data is not None:
                    data.to_ndarray()
                continue
            field = np.full((frame.height // CELL, frame.width // CELL, 2), np.nan, np.float32)
            if data is not None:
                mv = data.to_ndarray()
                mv = mv[mv["source"] < 0]  # past references; a vector k frames back counts 1/k per frame
                per = -mv["source"].astype(np.float32) * mv["motion_scale"]
                step = np.stack([mv["motion_y"] / per, mv["motion_x"] / per], -1)
                for w, h in set(zip(mv["w"].tolist(), mv["h"].tolist())):
                    sel = (mv["w"] == w) & (mv["h"] == h)
                    y0 = (mv["dst_y"][sel] - h // 2) // CELL
                    x0 = (mv["dst_x"][sel] - w // 2) // CELL
                    for dy in range(h // CELL):
                        for dx in range(w // CELL):
                            ok = (y0 + dy >= 0) & (y0 + dy < field.shape[0]) & (x0 + dx >= 0) & (x0 + dx < field.shape[1])
                            field[(y0 + dy)[ok], (x0 + dx)[ok]] = step[sel][ok]
            fields.append(field)
    return fields


def chain(fields: list[np.ndarray], first: int, last: int, by: int, bx: int) -> np.ndarray:
    """Each block of source frame ``last`` traced back to frame ``first`` from its centre ->
    (By, Bx, 2) float vectors (dy, dx) to where its content was (NaN: the chain was lost)."""
    ys, xs = np.meshgrid(np.arange(by) * BLOCK + BLOCK / 2, np.arange(bx) * BLOCK + BLOCK / 2, indexing="ij")
    start = np.stack([ys, xs], -1)
    p = start.copy()
    for n in range(last, first, -1):
        f = fields[n]
        with np.errstate(invalid="ignore"):
            iy = np.clip(np.nan_to_num(p[..., 0] // CELL), 0, f.shape[0] - 1).astype(int)
            ix = np.clip(np.nan_to_num(p[..., 1] // CELL), 0, f.shape[1] - 1).astype(int)
        p = p + f[iy, ix]  # NaN stays NaN
    return p - start


def block_costs(cur: np.ndarray, ref: np.ndarray, vectors: np.ndarray, lam: int) -> np.ndarray:
    """Eq. 1 per block of (H, W, 3) ``cur`` for (By, Bx, 2) integer ``vectors`` against the
    edge-replicated ``ref``: SAD over RGB + lam * |d|_1 (an independent numpy twin of the kernels')."""
    by, bx = vectors.shape[:2]
    r = int(np.abs(vectors).max(initial=0))
    refp = np.pad(ref.astype(np.int16), ((r, r), (r, r), (0, 0)), mode="edge")
    oy, ox = np.meshgrid(np.arange(by) * BLOCK, np.arange(bx) * BLOCK, indexing="ij")
    u = np.arange(BLOCK)
    rows = (r + oy + vectors[..., 0])[..., None, None] + u[:, None]
    cols = (r + ox + vectors[..., 1])[..., None, None] + u[None, :]
    windows = refp[rows, cols]  # (By, Bx, 16, 16, 3)
    blocks = cur.astype(np.int16)[: by * BLOCK, : bx * BLOCK].reshape(by, BLOCK, bx, BLOCK, 3).transpose(0, 2, 1, 3, 4)
    return np.abs(blocks - windows).sum((2, 3, 4)) + lam * np.abs(vectors).sum(-1)


def measure(name: str, path: Path, config: CodecConfig) -> dict:
    """One video: every P-frame pair's seeds against the fast search."""
    frames = list(sample_frames(path, fps=config.fps, grid=config.grid))
    enc = GopEncoder(config, "cpu")
    codes = [enc.push(f) for f in frames]  # the merge is off (``run``): each field is the search's, Eq. 1 costs
    roles = [c.role for c in codes]
    _, _, plain_s = timed(lambda: source_motion(path, export=False, build=False))
    _, _, read_s = timed(lambda: source_motion(path, build=False))
    fields, _, export_s = timed(lambda: source_motion(path))
    lam, radius = config.motion.lam, config.motion.radius
    by, bx = SIZE[1] // BLOCK, SIZE[0] // BLOCK
    counts = dict(blocks=0, lost=0, h264=0, prior=0, zero=0, h264_equal=0, h264_only=0)
    chain_s = 0.0
    for i in range(1, len(frames)):
        if roles[i] != "P":
            continue
        cur, ref = frames[i].image, frames[i - 1].image
        field, had_prior = codes[i].motion, codes[i - 1].motion  # the prior the coder gave the search
        best = field.cost.numpy()
        acc, _, s = timed(lambda: chain(fields, frames[i - 1].source_index, frames[i].source_index, by, bx))
        chain_s += s
        lost = np.isnan(acc).any(-1)
        h264 = np.clip(np.round(np.nan_to_num(acc)), -radius, radius).astype(np.int64)
        ok = lambda v: block_costs(cur, ref, v, lam) <= best * 1.01  # noqa: E731
        counts["blocks"] += best.size
        counts["lost"] += int(lost.sum())
        from_h264 = ok(h264) & ~lost
        from_prior = ok(had_prior.vectors.numpy().astype(np.int64)) if had_prior is not None else np.zeros_like(lost)
        counts["h264"] += int(from_h264.sum())
        counts["h264_equal"] += int(((h264 == field.vectors.numpy()).all(-1) & ~lost).sum())
        counts["prior"] += int(from_prior.sum())
        counts["h264_only"] += int((from_h264 & ~from_prior).sum())
        counts["zero"] += int(ok(np.zeros((by, bx, 2), np.int64)).sum())
    n = max(1, counts["blocks"])
    return {
        "video": name,
        "source_frames": len(fields),
        "p_frames": roles.count("P"),
        "blocks": counts["blocks"],
        "h264_lost": counts["lost"] / n,
        "h264_within_1pct": counts["h264"] / n,
        "h264_equal_to_search": counts["h264_equal"] / n,
        "prior_within_1pct": counts["prior"] / n,
        "h264_within_1pct_where_prior_is_not": counts["h264_only"] / n,
        "zero_within_1pct": counts["zero"] / n,
        "decode_core_s": plain_s,
        "decode_export_core_s": read_s,
        "decode_export_fields_core_s": export_s,
        "chain_core_ms_per_pair": 1000 * chain_s / max(1, roles.count("P")),
    }


def run(quick: bool) -> dict:
    """Measure every preset; return the JSON-ready result."""
    config = CodecConfig(grid=Grid(*SIZE))
    config = replace(config, motion=replace(config.motion, merge_lam=0))
    duration = 12.0 if quick else 30.0
    rows = []
    with tempfile.TemporaryDirectory(prefix="vm-h264-") as tmp:
        for x264, refs in X264:
            for name in ("pan", "objects", "mixed", "cuts"):
                path = Path(tmp) / f"{name}-{x264}.mp4"
                synth.write_video(path, synth.preset(name, SIZE, duration, seed=1), SIZE, 30.0, x264_preset=x264)
                rows.append({"x264_preset": x264, "references": refs, **measure(name, path, config)})
    return {"benchmark": "h264_seed", "grid": f"{SIZE[0]}x{SIZE[1]}", "fps": config.fps, "quick": quick, "rows": rows}


def show(result: dict) -> None:
    """Print the rows as a table."""
    cols = [("x264", "x264_preset", "{}"), ("refs", "references", "{}"), ("video", "video", "{}"), ("P-frames", "p_frames", "{}"), ("H.264 chain", "h264_within_1pct", "{:.1%}"),
            ("... = search", "h264_equal_to_search", "{:.1%}"), ("... lost", "h264_lost", "{:.1%}"),
            ("prior field", "prior_within_1pct", "{:.1%}"),
            ("H.264 only", "h264_within_1pct_where_prior_is_not", "{:.1%}"), ("zero", "zero_within_1pct", "{:.1%}"),
            ("decode core-s", "decode_core_s", "{:.2f}"), ("with export", "decode_export_core_s", "{:.2f}"),
            ("+ fields", "decode_export_fields_core_s", "{:.2f}"),
            ("chain core-ms/pair", "chain_core_ms_per_pair", "{:.1f}")]
    print_table("seeds for the motion search: share of P-frame blocks whose seed costs within 1% of the search's",
                cols, result["rows"])


def main() -> None:
    """Command-line entry point."""
    quick_main(__doc__, run, show, Path("results/h264_seed.json"), "12 s videos")


if __name__ == "__main__":
    main()
