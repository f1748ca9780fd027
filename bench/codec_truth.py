"""Issue 3's must-show points, checked on generated videos against their ground truth.

Run:  python -m videomemory.bench.codec_truth cuts.mp4 pan.mp4    (ground truth beside each video,
                                                                    as `videomemory synth` writes it)
      python -m videomemory.bench.codec_truth --sweep              (writes and checks its own corpus: every
                                                                    preset, seeds, sizes, CFR and VFR; ~10 min)

Each video is sampled at 2 fps onto the codec's grid (default 512x512) and coded by the GOP rule
with the default settings (``codec.gop.encode``). Against the ground truth it reports:

* frame 0 is an anchor;
* cuts: the first sampled frame of every new shot is an anchor (recall must be 100%);
* false anchors: frames the pcost or scene rule made anchors that show no cut and no fade (at
  most 1 per 100 frames on pans and moving objects); a pan further than the search window
  between sampled frames (``fast_pan``) cannot be predicted, and is left out of this and the
  pan checks;
* static shots: every GOP that starts and ends inside one has exactly k_max + 1 frames;
* pans: per pair of sampled frames inside a panning shot, the share of interior blocks whose
  vector is the pan (interior: the block's content was inside the previous frame, one block
  from the border; at least 95%), the worst pair, the same share over the interior blocks whose
  motion the picture pins down (``trackable``: on a featureless sky, or along a straight edge,
  the motion is not in the pixels, and Eq. 1's optimum alone is the shortest of the vectors that
  fit; the global-motion merge puts such blocks on the pan, ``--merge-lam 0`` turns it off), and
  the mean error per value of the blocks on the pan (the residual there: H.264 noise only).

A pan that is not a whole number of grid pixels (a video not of the grid's size) counts a
vector within 1 px of it (floor or ceil of each component). Prints a table and a verdict per
point; writes JSON (default ``results/codec_truth.json``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from videomemory.bench import synth
from videomemory.bench.common import write_json
from videomemory.codec.config import BLOCK, CodecConfig, Grid
from videomemory.codec.decode import SampledFrame, sample_frames
from videomemory.codec.gop import CUT_REASONS, FrameCode, encode
from videomemory.codec.motion import moved_inside
from videomemory.errors import VideoMemoryError

PAN_SHARE = 0.95  # of interior blocks on the pan (issue 3)
TRACKABLE = 2.0  # luma gradient (per value, RMS) a block must have in its weakest direction


def trackable(image: np.ndarray) -> np.ndarray:
    """Blocks (By, Bx) whose motion the picture pins down in both directions: the smaller
    eigenvalue of the block's luma structure tensor (Shi and Tomasi's measure, "Good features to
    track", 1994) says the gradient across its weakest direction is over ``TRACKABLE`` per value,
    RMS. On a flat block every vector fits alike; along a straight edge (an aperture) every
    vector along the edge does, and Eq. 1 picks among them by noise and lambda, not by the pan."""
    y = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    gy, gx = np.gradient(y)
    h, w = (y.shape[0] // BLOCK) * BLOCK, (y.shape[1] // BLOCK) * BLOCK

    def block_sum(a: np.ndarray) -> np.ndarray:
        return a[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).sum((1, 3))

    xx, yy, xy = block_sum(gx * gx), block_sum(gy * gy), block_sum(gx * gy)
    weakest = (xx + yy) / 2 - np.sqrt(((xx - yy) / 2) ** 2 + xy**2)
    return weakest / (BLOCK * BLOCK) > TRACKABLE**2


def cut_frames(truth: synth.GroundTruth, frames: list[SampledFrame]) -> list[int]:
    """Sampled index of the first sampled frame that shows each new shot."""
    shots = [truth.frames[f.source_index].shot for f in frames]
    return [i for i in range(1, len(frames)) if shots[i] != shots[i - 1]]


def pan_vector(truth: synth.GroundTruth, prev: SampledFrame, cur: SampledFrame, scale: tuple[float, float]) -> np.ndarray:
    """The (dy, dx) vector of a pan between two sampled frames in grid px (content moved by +offset);
    ``scale`` is (grid height / video height, grid width / video width)."""
    (ox0, oy0), (ox1, oy1) = truth.frames[prev.source_index].offset, truth.frames[cur.source_index].offset
    return np.array([-(oy1 - oy0) * scale[0], -(ox1 - ox0) * scale[1]])


def interior(shape: tuple[int, int], want: np.ndarray) -> np.ndarray:
    """Blocks (By, Bx) one block from the border whose content, moved by ``want``, lay inside the previous frame."""
    inside = moved_inside(shape, want)
    inside[[0, -1], :] = False
    inside[:, [0, -1]] = False
    return inside


def on_pan(vectors: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Blocks whose vector is the pan: equal to it, or within 1 px of a component that is not whole."""
    ok = np.ones(vectors.shape[:2], bool)
    for c in range(2):
        w = want[c]
        ok &= (vectors[..., c] == w) if float(w).is_integer() else (np.abs(vectors[..., c] - w) < 1)
    return ok


@dataclass
class _Shot:
    """What the checks need of one shot."""

    static: bool  # no pan, sprites, zoom or fade
    pan: bool  # a pan and nothing else moving
    beyond: bool  # its pan moves further than the search window between sampled frames


def _shots(truth: synth.GroundTruth, config: CodecConfig, scale: tuple[float, float]) -> list[_Shot]:
    out = []
    for s in truth.shots:
        moving = s.pan != (0.0, 0.0)
        still = not moving and not s.sprites and not s.zoom
        vx, vy = s.pan
        step = max(abs(vy) * scale[0], abs(vx) * scale[1]) / config.fps  # grid px per sampled frame
        out.append(_Shot(still and not (s.fade_in_s or s.fade_out_s), moving and not s.sprites and not s.zoom,
                         step > config.motion.radius))
    return out


def check(truth: synth.GroundTruth, config: CodecConfig = CodecConfig()) -> dict:
    """Code one generated video and measure every must-show point against its ground truth."""
    frames = list(sample_frames(truth.path, fps=config.fps, grid=config.grid))
    codes: list[FrameCode] = list(encode(frames, config, "cpu"))
    n = len(codes)
    shot_of = [truth.frames[f.source_index].shot for f in frames]
    scale = (config.grid.height / truth.height, config.grid.width / truth.width)  # grid px per video px: (y, x)
    shots = _shots(truth, config, scale)
    cuts = cut_frames(truth, frames)
    missed = [k for k in cuts if codes[k].role != "I"]

    def fading(i: int) -> bool:
        f, s = truth.frames[frames[i].source_index], truth.shots[shot_of[i]]
        return bool(s.fade_in_s or s.fade_out_s) and f.alpha < 1.0

    false = [c.sampled_index for i, c in enumerate(codes)
             if i and c.reason in CUT_REASONS and i not in cuts and not fading(i) and not fading(i - 1)
             and not shots[shot_of[i]].beyond]

    # Static shots: GOPs that start and end inside one.
    k = config.gop.k_max + 1
    static_gops, static_bad = 0, []
    anchors = [i for i, c in enumerate(codes) if c.role == "I"] + [n]
    for a, b in zip(anchors, anchors[1:]):
        if shots[shot_of[a]].static and b < n and shot_of[b - 1] == shot_of[a] and shot_of[b] == shot_of[a]:
            static_gops += 1
            if b - a != k:
                static_bad.append((a, b - a))

    # Pans: each pair of sampled frames inside one panning shot.
    shares, trackable_shares, residual = [], [], []
    for i in range(1, n):
        if (shot_of[i] != shot_of[i - 1] or not shots[shot_of[i]].pan or shots[shot_of[i]].beyond or fading(i)
                or fading(i - 1)):
            continue
        want = pan_vector(truth, frames[i - 1], frames[i], scale)
        field = codes[i].motion
        if field is None or not want.any():
            continue
        v = field.vectors.numpy()
        inside = interior(v.shape[:2], want)
        if not inside.any():
            continue
        hits = on_pan(v, want) & inside
        shares.append(hits.sum() / inside.sum())
        rich = inside & trackable(frames[i].image)
        if rich.any():
            trackable_shares.append((hits & rich).sum() / rich.sum())
        if hits.any():
            residual.append(float(field.sad.numpy()[hits].mean()) / (BLOCK * BLOCK * 3))
    return {
        "video": Path(truth.path).name,
        "size": f"{truth.width}x{truth.height}",
        "vfr": truth.vfr,
        "grid": f"{config.grid.width}x{config.grid.height}",
        "sampled_frames": n,
        "anchors": sum(c.role == "I" for c in codes),
        "frame0_anchor": bool(codes and codes[0].role == "I"),
        "cuts": len(cuts),
        "cuts_missed": missed,
        "false_anchors": false,
        "false_anchors_allowed": math.floor(n / 100),
        "static_gops": static_gops,
        "static_gops_not_k_max_plus_1": static_bad,
        "pan_pairs": len(shares),
        "pan_share_mean": float(np.mean(shares)) if shares else None,
        "pan_share_worst": float(np.min(shares)) if shares else None,
        "pan_share_trackable_worst": float(np.min(trackable_shares)) if trackable_shares else None,
        "pan_residual_per_value": float(np.mean(residual)) if residual else None,
    }


def verdicts(rows: list[dict]) -> dict[str, bool]:
    """Each must-show point over all rows. A point no row exercises passes vacuously: the table's
    counts (cuts, static GOPs, pan pairs) say what each video put to the test."""
    pans = [r for r in rows if r["pan_pairs"]]
    moving = [r for r in rows if not r["cuts"]]
    return {
        "frame 0 is an anchor": all(r["frame0_anchor"] for r in rows),
        "every cut starts a GOP at the cut frame": all(not r["cuts_missed"] for r in rows),
        "<= 1 false anchor per 100 frames (videos without cuts)": all(
            len(r["false_anchors"]) <= r["false_anchors_allowed"] for r in moving),
        "static GOPs are exactly k_max + 1": all(not r["static_gops_not_k_max_plus_1"] for r in rows),
        f"pan vector on >= {PAN_SHARE:.0%} of the trackable interior blocks, every pair": all(
            r["pan_share_trackable_worst"] is None or r["pan_share_trackable_worst"] >= PAN_SHARE for r in pans),
        f"pan vector on >= {PAN_SHARE:.0%} of all interior blocks, over each pan": all(
            r["pan_share_mean"] >= PAN_SHARE for r in pans),
        f"pan vector on >= {PAN_SHARE:.0%} of all interior blocks, every pair": all(
            r["pan_share_worst"] >= PAN_SHARE for r in pans),
    }


SWEEP = (
    # (size, seeds, fps, vfr, presets)
    ((512, 512), (0, 1, 2), 30.0, False, synth.PRESETS),
    ((1280, 720), (3,), 30.0, True, synth.PRESETS),
    ((1920, 1080), (4,), 25.0, False, ("pan", "cuts")),
    ((640, 480), (5,), 24.0, True, ("pan", "objects", "cuts")),
    ((64, 48), (6,), 30.0, False, ("pan", "cuts", "static")),
)


def sweep(folder: Path, duration: float) -> list[synth.GroundTruth]:
    """Write the sweep's corpus into ``folder``; return the ground truths."""
    out = []
    for size, seeds, fps, vfr, presets in SWEEP:
        for name in presets:
            for seed in seeds:
                path = folder / f"{name}-{size[0]}x{size[1]}-{seed}{'-vfr' if vfr else ''}.mp4"
                out.append(synth.write_preset(name, path, size, duration, fps, vfr=vfr, seed=seed))
    return out


def show(rows: list[dict], verdict: dict[str, bool]) -> None:
    """Print the rows and the verdicts."""
    t = Table(title="issue 3's must-show points against the ground truth (GOP rule, default settings)")
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    for head in ("video", "grid", "frames", "I", "cuts missed", "false anchors", "static GOPs off",
                 "pan pairs", "pan mean", "pan worst", "trackable worst", "residual /value"):
        t.add_column(head, justify="right")
    for r in rows:
        t.add_row(r["video"], r["grid"], str(r["sampled_frames"]), str(r["anchors"]),
                  f"{len(r['cuts_missed'])} of {r['cuts']}",
                  f"{len(r['false_anchors'])} (≤ {r['false_anchors_allowed']})" if not r["cuts"] else str(len(r["false_anchors"])),
                  f"{len(r['static_gops_not_k_max_plus_1'])} of {r['static_gops']}", str(r["pan_pairs"]),
                  pct(r["pan_share_mean"]), pct(r["pan_share_worst"]), pct(r["pan_share_trackable_worst"]),
                  "-" if r["pan_residual_per_value"] is None else f"{r['pan_residual_per_value']:.2f}")
    console = Console(width=200)
    console.print(t)
    for point, ok in verdict.items():
        console.print(f"{'PASS' if ok else 'FAIL'}  {point}")


def load_truth(video: Path) -> synth.GroundTruth:
    """A generated video's ground truth from the .json beside it (its path: where the video is now)."""
    sidecar = video.with_suffix(".json")
    if not video.is_file():
        raise FileNotFoundError(f"{video}: no such video")
    if not sidecar.is_file():
        raise FileNotFoundError(f"{video}: no ground truth beside it ({sidecar.name}); "
                                "check videos that `videomemory synth PRESET PATH` wrote, or use --sweep")
    truth = synth.GroundTruth.load_json(sidecar)
    truth.path = str(video)
    return truth


def run(videos: list[Path], grid: str = "512x512", sweep_s: float | None = None, merge_lam: int | None = None) -> dict:
    """Check ``videos`` (and, with ``sweep_s``, the sweep's corpus of videos that long) -> the JSON-ready result;
    ``merge_lam`` overrides the global-motion merge's rate (0: PAPER's Eq. 1 alone)."""
    config = CodecConfig(grid=Grid.parse(grid))
    if merge_lam is not None:
        config = replace(config, motion=replace(config.motion, merge_lam=merge_lam))
    with tempfile.TemporaryDirectory(prefix="vm-truth-") as tmp:
        truths = [load_truth(v) for v in videos]
        if sweep_s:
            truths += sweep(Path(tmp), sweep_s)
        rows = []
        for truth in truths:
            rows.append(check(truth, config))
            print(f"checked {rows[-1]['video']}", flush=True)
    return {"benchmark": "codec_truth", "grid": grid, "merge_lam": config.motion.merge_lam, "rows": rows,
            "verdicts": verdicts(rows)}


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", type=Path, help="generated videos, each with its .json ground truth beside it")
    ap.add_argument("--sweep", action="store_true", help="write and check the built-in corpus")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per video of the sweep")
    ap.add_argument("--grid", default="512x512", help="the codec's grid WIDTHxHEIGHT (default: the codec's own)")
    ap.add_argument("--merge-lam", type=int, default=None,
                    help="the global-motion merge's rate per px (default: the codec's; 0: Eq. 1 alone)")
    ap.add_argument("--out", type=Path, default=Path("results/codec_truth.json"))
    args = ap.parse_args()
    if not args.videos and not args.sweep:
        ap.error("give generated videos (videomemory synth PRESET PATH) or --sweep")
    try:
        result = run(args.videos, args.grid, args.duration if args.sweep else None, args.merge_lam)
    except (FileNotFoundError, ValueError, VideoMemoryError) as e:
        ap.exit(2, f"error: {e}\n")
    show(result["rows"], result["verdicts"])
    write_json(result, args.out)


if __name__ == "__main__":
    main()
