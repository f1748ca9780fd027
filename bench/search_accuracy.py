"""Fast search against the exhaustive optimum on videos the search was not tuned on.

Run:  python -m videomemory.bench.search_accuracy            (about 3 minutes on 2 cores)
      python -m videomemory.bench.search_accuracy --quick    (one recipe per class, 256x256)

The videos are the evaluation suite's recipes (``bench.eval_videos``: a static camera, slides, a
talking head, a zoom in, a zoom out, fast objects, a montage, a pan beyond the window), 20 s at
512x512. Every pair of consecutive sampled frames the anchor rule would predict (pcost per block
within gamma, as the encoder calls the search) is compared block by block with the exhaustive
search: the issue's goal is >= 99% of the blocks within 1% of the optimum. An anchor's pair is
left out: its field only gives its pcost, which the fast search never underestimates. The fast
search's time is over every pair (anchors' too), with the previous field as prior, as the coder
runs it. Prints a table and writes JSON (default ``results/search_accuracy.json``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from videomemory.bench import eval_videos
from videomemory.bench.common import print_table, quick_main, timed
from videomemory.codec.config import GopConfig, Grid, MotionConfig
from videomemory.codec.decode import sample_frames
from videomemory.codec.motion import as_tensor, exhaustive_search, fast_search

#: (class, seed) of each recipe: the seeds pick the recipe within its class (``eval_videos.recipe``).
VIDEOS: tuple[tuple[str, int], ...] = (
    ("static", 4), ("low-motion", 2), ("low-motion", 3), ("high-motion", 1), ("high-motion", 3),
    ("high-motion", 5), ("high-cut", 2), ("high-motion", 2),
)
QUICK: tuple[tuple[str, int], ...] = (("static", 4), ("low-motion", 3), ("high-motion", 1), ("high-cut", 2))


def agreement(frames: list[torch.Tensor]) -> dict:
    """The fast search against the exhaustive one over consecutive (3, H, W) frames, as the coder
    calls it (previous field as prior, gamma as the anchor threshold): blocks within 1% of the
    optimum over the pairs the anchor rule predicts, the worst such pair, and the fast search's
    CPU seconds over every pair."""
    motion, gamma = MotionConfig(), GopConfig().gamma_per_block
    prior = None
    within = total = pairs = 0
    worst = 1.0
    fast_cpu = 0.0
    for cur, ref in zip(frames[1:], frames):
        fast, _, cpu = timed(lambda: fast_search(cur, ref, motion.radius, motion.lam, prior, anchor_above=gamma))
        fast_cpu, prior = fast_cpu + cpu, fast
        if torch.equal(cur, ref) or fast.pcost / fast.n_blocks > gamma:
            continue  # an anchor: its field only gives its pcost
        full = exhaustive_search(cur, ref, motion.radius, motion.lam)
        ok = fast.cost.double() <= 1.01 * full.cost.double()
        within, total, pairs = within + int(ok.sum()), total + ok.numel(), pairs + 1
        worst = min(worst, float(ok.double().mean()))
    return {"within": within, "total": total, "pairs": pairs, "worst": worst, "fast_cpu_s": fast_cpu}


def measure(content_class: str, seed: int, folder: Path, size: tuple[int, int], duration_s: float) -> dict:
    """One recipe's agreement with the exhaustive optimum over the pairs the anchor rule predicts."""
    video = eval_videos.make_video(content_class, seed, folder, size, duration_s)
    frames = [as_tensor(f.image) for f in sample_frames(video.truth.path, fps=2.0, grid=Grid(*size))]
    a = agreement(frames)
    return {
        "video": video.name,
        "recipe": video.recipe,
        "predicted_pairs": a["pairs"],
        "within_1pct": a["within"] / a["total"] if a["total"] else None,
        "worst_pair": a["worst"] if a["pairs"] else None,
        "fast_core_ms_per_pair": 1000 * a["fast_cpu_s"] / max(1, len(frames) - 1),
    }


def run(quick: bool) -> dict:
    """Every recipe; the rows and the settings."""
    torch.set_num_threads(1)
    warm = torch.zeros((3, 64, 64), dtype=torch.uint8)  # load (or compile) the kernels outside the timings
    fast_search(warm + 1, warm, 16, 4)
    exhaustive_search(warm + 1, warm, 4, 4)
    size, duration = ((256, 256), 10.0) if quick else ((512, 512), 20.0)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(c, s, Path(folder), size, duration) for c, s in (QUICK if quick else VIDEOS)]
    return {"benchmark": "search_accuracy", "grid": f"{size[0]}x{size[1]}", "duration_s": duration,
            "quick": quick, "rows": rows}


def show(result: dict) -> None:
    """Print the results as a table."""
    cols = [("video", "video", "{}"), ("recipe", "recipe", "{}"), ("pairs", "predicted_pairs", "{}"),
            ("within 1%", "within_1pct", "{:.3%}"), ("worst pair", "worst_pair", "{:.2%}"),
            ("fast core-ms/pair", "fast_core_ms_per_pair", "{:.1f}")]
    print_table(f"fast search vs exhaustive on the evaluation recipes, {result['grid']}, "
                f"{result['duration_s']:g} s, pairs the anchor rule predicts", cols, result["rows"], 160)


def main() -> None:
    """Command-line entry point."""
    quick_main(__doc__, run, show, Path("results/search_accuracy.json"), "one recipe per class, 256x256, 10 s")


if __name__ == "__main__":
    main()
