"""Paired, stratified, matched-budget evaluation of the predictive code against flat encoding.

The seed article's acceptance test (DESIGN §9): on the same generated footage (``eval_videos``:
four content classes with cut, event and motion ground truth), at the same tokens per minute
(``1/ratio`` of flat, several ratios), compare ``flat``, ``uniform``, ``evs``, ``paper`` and
``adaptive`` (``eval_methods`` says how each meets the budget and what a model perceives), and
report per method and class, with mean, std and the worst video (``eval_metrics``):

* perceived fidelity: PSNR (of the video's mean squared error) and SSIM (mean over instants) of
  what the model could know at every 2 fps instant against the true frame; cosine of image
  embeddings (``retrieval.embed``) when ``--embedder`` is given;
* event recall: ground-truth events (an object entering, a label appearing or changing) whose box
  is covered by sent pixels within 0.5 s; pooled over the class's events, and the worst video;
* cut detection: precision/recall of the codec's pcost anchors against the true cuts (without a
  budget, and under each budget), next to PySceneDetect's ``ContentDetector`` (default threshold
  27, ``min_scene_len`` 0.5 s: the default 15 frames would merge the montage's 1 s shots) on the
  same source files through its PyAV backend, when ``scenedetect`` imports ("n/a" otherwise). The
  ``eval`` extra (and ``test``) installs ``scenedetect-headless`` (the same package built on
  ``opencv-python-headless``, whose ``cv2`` needs no libGL or libglib, so it works in a bare
  container); plain ``scenedetect`` (``opencv-python``, needs the system's libGL.so.1) serves
  as well where that is present: both provide the ``scenedetect`` module;
* tokens per minute: the actual spend of every method next to its budget, and the adaptive
  plan's own cost without a budget (mean and std per class: the cost-forecasting input);
* the cost forecast from the first minute: the suite's videos are too short for it, so a stage of
  its own codes ``forecast_per_class`` long videos per class (``eval_videos.long_recipe``: 3 min
  on a 256x256 grid by default, 70 s at 128x128 with ``--quick``; one seed per class keeps its
  pace, the other changes it after the first minute: people arrive, a talk turns into slides, a
  pan stops, a montage slows or quickens) without a budget, and forecasts each whole video's
  tokens/min from its first minute (a strict prefix: the codec is causal) two ways: the first
  minute's own rate, and the first minute's codec content class (``codec.stats``) priced at the
  suite's mean rate of that class, as a share of flat (``memory.usage``'s per-class rates, with
  the 16 s suite as the history). Error: |forecast - actual| in % of the actual, mean and worst
  per class. The long videos run first in the same worker pool.

``adaptive`` under a budget is the product's causal rate control (``codec.rate.Planner``), one
pass, as a file of known length gets it: a full image only when the bucket can pay for it
within a bounded debt (for a mostly new picture, what the remaining frames can repay), a
declined cut sent as a gradual intra refresh (its cells the plan could not pay for are sent
first in the frames after it). The JSON keeps, per video and budget,
``adaptive_rate``: the budget, the spend and the error in %. Where the class mean is still
more than ``TOLERANCE`` (5%) over budget, the losses section lists it: a fidelity bought with
more tokens is not a matched win.

"Paired": every method sees the same sampled frames of the same videos, so per-video differences
are the method alone. Outputs under ``--out``: ``eval.json`` (settings, per-video records,
aggregates), ``eval.md`` (the tables and the "Where the predictive code loses" section, generated
from the aggregates), ``fidelity_vs_tokens.png`` and ``cost_spread.png``.

Sizes: the default suite is 10 videos per class (40) of 16 s on the product's 512x512 grid at
ratios 4, 7 and 12, plus 8 forecast videos of 3 min at 256x256, on a pool of 2 worker processes;
``--quick`` is 2 per class of 12 s on a 256x256 grid (same ratios) and forecast videos of 70 s at
128x128, for CI. The codec runs four times per video (once without a budget,
once per budget with the recorded motion replayed) and 15 packages a video are scored. On a
20 s 512x512 montage (measured on a loaded machine, CPU seconds): 7.7 for the unbudgeted pass,
3.5 per replayed budget pass, 1.1 to build a budget's five packages and 4.2 to score them; 16 s
videos keep 40 of them near the 10-minute target on 2 cores. The forecast stage's long videos
are rendered at 5 fps (enough for 2 fps sampling) and only coded once: 121 CPU-s for the 8 of
them (measured alone on a loaded machine), about 60 s of wall on 2 cores.
For the same reason the suite's codec stores anchors and intra patches as JPEG (same quality
settings) instead of the product's AVIF, which costs ~20x more to encode and dominated the run:
token plans depend on residual energies, not on the image codec (the same plan totals came out
on a test video), and ``adaptive``'s fidelity then includes JPEG's loss instead of AVIF's.
``--anchor-format avif`` runs the product's exact storage.

A video model slots in through ``VLMScorer``: ``score(video, package)`` gets the ground truth
(``EvalVideo``: cuts, events with boxes, shots) and everything a method sent (``Package``: the
sends with their times and cells, and per instant the perceived image; the pixels of a send are
``perceived[i]`` inside its cells), and returns named numbers (higher is better) that are
aggregated like the other metrics (prefixed ``vlm_``) and shown as extra table columns. Every
method's package of a video is scored on the same questions, so the comparison stays paired. The
scorer is pickled to the worker processes: load the model lazily, on the first ``score``.
``NoopScorer`` returns nothing. For example::

    class QAScorer:
        name = "qwen-qa"

        def score(self, video, package):
            questions = make_questions(video)  # e.g. "what appears at 7 s?" from video.events
            answers = ask_model(package)       # the sent images and cells, in time order
            return {"qa_accuracy": accuracy(questions, answers)}

    run_suite(Settings(), "results/eval", scorer=QAScorer())

    python -m videomemory.bench.eval_suite [--quick] [--out results/eval] [--budgets 4,7,12]
    videomemory bench eval [--quick] [--out results/eval] [--budgets 4,7,12]
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import typer

from videomemory.bench.eval_methods import (
    METHODS,
    Package,
    adaptive_package,
    budget_tpm,
    evs_package,
    flat_package,
    paper_package,
    run_codec,
    uniform_package,
)
from videomemory.bench.eval_metrics import Reference, cosine_batch, cut_pr, event_hits, psnr_of_mse
from videomemory.bench.eval_videos import CLASSES, FIRST_MINUTE_S, EvalVideo, change_time, make_long_video, make_video
from videomemory.cli_bench import eval_command

if TYPE_CHECKING:
    from videomemory.codec.config import CodecConfig

TOLERANCE = 0.05  # adaptive over its budget by more than this share is not at a matched budget
DEFAULT_RATIOS: tuple[float, ...] = (4.0, 7.0, 12.0)
#: Per-video metric keys of every package, and whether higher is better.
METRICS = {"tokens_per_min": None, "psnr": True, "ssim": True, "event_recall": True, "cosine": True}


@runtime_checkable
class VLMScorer(Protocol):
    """A paired QA evaluation with a real video model: scores one method's package of one video."""

    name: str

    def score(self, video: EvalVideo, package: Package) -> dict[str, float]:
        """Named scores (higher is better) of what ``package`` lets the model answer about ``video``."""
        ...


class NoopScorer:
    """No video model: scores nothing."""

    name = "none"

    def score(self, video: EvalVideo, package: Package) -> dict[str, float]:
        """No scores."""
        return {}


@dataclass(frozen=True)
class Settings:
    """What the suite runs: video count and size, budgets, workers, optional embedder."""

    per_class: int = 10
    duration_s: float = 16.0
    size: int = 512
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    workers: int = 2
    motion: str = "median"  # how adaptive's receiver warps: "median" (one vector) or "blocks"
    pixels: str = "source"  # adaptive's sent pixels: "source" (like every baseline) or "code" (rebuilt, the product's)
    embedder: str | None = None  # retrieval.embed.load_embedder spec; None: no cosine
    scenedetect: bool = True
    anchor_format: str = "jpeg"  # how the codec stores anchors and intra patches in the suite (module doc)
    forecast_per_class: int = 2  # long videos per class for the first-minute cost forecast; 0: none
    forecast_duration_s: float = 180.0
    forecast_size: int = 256
    quick: bool = False

    @classmethod
    def quick_mode(cls, **changes: object) -> "Settings":
        """The CI size: 2 videos per class of 12 s on a 256x256 grid; forecast videos of 70 s at 128x128."""
        base = {"per_class": 2, "duration_s": 12.0, "size": 256, "forecast_duration_s": 70.0, "forecast_size": 128, "quick": True}
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]


# --- one video --------------------------------------------------------------------------------


def scenedetect_cuts(path: str, min_scene_s: float = 0.5) -> list[float] | None:
    """Cut times PySceneDetect's ContentDetector finds in ``path`` (PyAV backend), or None if not installed."""
    try:
        from scenedetect import ContentDetector, SceneManager, open_video
    except ImportError:
        return None
    # suppress_output: scenedetect otherwise restores FFmpeg's own log callback for the whole
    # process, and every later libx264 encode prints its statistics; single-threaded decoding
    # is PyAV's advice with Python-side logging (threaded decoding can deadlock there).
    video = open_video(path, backend="pyav", suppress_output=True, threading_mode="NONE")
    manager = SceneManager()
    manager.add_detector(ContentDetector(min_scene_len=max(1, round(min_scene_s * float(video.frame_rate)))))
    manager.detect_scenes(video)
    return [float(start.seconds) for start, _ in manager.get_scene_list()[1:]]


def _pcost_anchors(times: Sequence[float], roles: Sequence[str], reasons: Sequence[str]) -> list[float]:
    """Times of the anchors the codec took because prediction failed (its cut claims)."""
    from videomemory.codec.gop import CUT_REASONS

    return [t for t, r, why in zip(times, roles, reasons) if r == "I" and why in CUT_REASONS]


def _score_package(video: EvalVideo, pkg: Package, ref: Reference, cell: int, truth_vecs: np.ndarray | None,
                   embedder: object, scorer: VLMScorer) -> dict:
    """Per-video figures of one package."""
    mse, s = ref.fidelity(pkg.perceived)
    hits = event_hits(video.events, pkg.sends, video.box_at, cell)
    rec = {
        "tokens": pkg.tokens,
        "tokens_per_min": pkg.tokens_per_min,
        "budget_tpm": pkg.budget_tpm,
        "psnr": float(psnr_of_mse(np.mean(mse))),
        "psnr_min_frame": float(psnr_of_mse(np.max(mse))),
        "ssim": float(np.mean(s)),
        "events": len(hits),
        "event_hits": int(sum(hits)),
        "event_recall": float(np.mean(hits)) if hits else None,
        "frames_sent": len(pkg.sends),
    }
    if embedder is not None and truth_vecs is not None:
        vecs = embedder.embed_images(list(pkg.perceived))  # type: ignore[attr-defined]
        rec["cosine"] = float(np.mean(cosine_batch(vecs, truth_vecs)))
    for k, v in scorer.score(video, pkg).items():
        rec[f"vlm_{k}"] = float(v)
    return rec


def _codec_config(size: tuple[int, int], settings: Settings) -> "CodecConfig":
    """The suite's codec settings on a ``size`` grid: the product's, anchors in ``settings.anchor_format``."""
    from videomemory.codec.config import CodecConfig, Grid

    config = CodecConfig(grid=Grid(*size))
    return config.with_(residual=dataclasses.replace(config.residual, anchor_format=settings.anchor_format))


def evaluate_video(spec: tuple[str, int], settings: Settings, folder: str, scorer: VLMScorer = NoopScorer()) -> dict:
    """Render, code and score one suite video under every method and budget; a JSON-ready record."""
    import torch

    from videomemory.codec.decode import sample_frames
    from videomemory.codec.stats import content_stats
    from videomemory.codec.tokens import TokenModel

    torch.set_num_threads(1)
    t_start, c_start = time.perf_counter(), time.process_time()
    content_class, seed = spec
    size = (settings.size, settings.size)
    video = make_video(content_class, seed, folder, size, settings.duration_s)
    config = _codec_config(size, settings)
    model = TokenModel(grid=config.grid)
    frames = list(sample_frames(video.path, fps=config.fps, grid=config.grid))
    times = [f.time_s for f in frames]
    minutes = len(frames) / config.fps / 60.0
    t0 = time.perf_counter()
    base = run_codec(frames, config, keep=True)
    encode_s = time.perf_counter() - t0
    ref = Reference(np.stack([f.image for f in frames]))
    embedder = None
    truth_vecs = None
    if settings.embedder:
        from videomemory.retrieval.embed import load_embedder

        embedder = load_embedder(settings.embedder, device="cpu")
        truth_vecs = embedder.embed_images([f.image for f in frames])

    cell = config.grid.token_px
    methods: dict[str, dict[str, dict]] = {}
    adaptive_cuts: dict[str, dict] = {}
    rate: dict[str, dict] = {}
    budget_encode_s = 0.0
    for ratio in settings.ratios:
        key = f"{ratio:g}"
        t0 = time.perf_counter()
        budget = budget_tpm(model, ratio, config.fps)
        run = run_codec(frames, config, budget, motion=base.fields)
        spent = run.tokens / minutes
        rate[key] = {"budget_tpm": budget, "tpm": spent, "error_pct": 100.0 * (spent / budget - 1.0)}
        budget_encode_s += time.perf_counter() - t0
        packages = [
            flat_package(video.path, frames, config, model, ratio),
            uniform_package(frames, model, ratio, config.fps),
            evs_package(frames, model, ratio, config.fps),
            paper_package(frames, base, model, ratio, config.fps),
            adaptive_package(frames, run, model, ratio, config.fps, settings.motion, settings.pixels),
        ]
        for pkg in packages:
            methods.setdefault(pkg.method, {})[key] = _score_package(video, pkg, ref, cell, truth_vecs, embedder, scorer)
        adaptive_cuts[key] = cut_pr(_pcost_anchors(times, run.roles, run.reasons), video.truth.cuts_s)

    sd = scenedetect_cuts(video.path) if settings.scenedetect else None
    whole = content_stats(base.encoded, config.fps)
    return {
        "video": video.name,
        "class": content_class,
        "recipe": video.recipe,
        "seed": seed,
        "frames": len(frames),
        "minutes": minutes,
        "truth": video.summary(),
        "encode_s": encode_s,
        "budget_encode_s": budget_encode_s,
        "wall_s": time.perf_counter() - t_start,
        "cpu_s": time.process_time() - c_start,
        "natural_tpm": base.tokens / minutes,
        "rebuilt_psnr_mean": float(np.mean([min(p, 100.0) for p in base.psnr])),
        "codec_class": whole.content_class,
        "stored_anchors": base.roles.count("I"),
        "adaptive_rate": rate,
        "cuts": {
            "codec": cut_pr(_pcost_anchors(times, base.roles, base.reasons), video.truth.cuts_s),
            "adaptive": adaptive_cuts,
            "scenedetect": None if sd is None else {**cut_pr(sd, video.truth.cuts_s), "times": sd},
        },
        "methods": methods,
    }


def forecast_video(spec: tuple[str, int], settings: Settings, folder: str) -> dict:
    """Render and code one long video without a budget; its first minute's and whole statistics."""
    import torch

    from videomemory.codec.decode import sample_frames
    from videomemory.codec.stats import content_stats

    torch.set_num_threads(1)
    t_start, c_start = time.perf_counter(), time.process_time()
    content_class, seed = spec
    size = (settings.forecast_size, settings.forecast_size)
    recipe, truth = make_long_video(content_class, seed, folder, size, settings.forecast_duration_s)
    config = _codec_config(size, settings)
    frames = list(sample_frames(truth.path, fps=config.fps, grid=config.grid))
    Path(truth.path).unlink(missing_ok=True)
    run = run_codec(frames, config, keep=True)
    n_first = first_minute_frames([f.time_s for f in frames])
    first = content_stats(run.encoded[:n_first], config.fps)  # the codec is causal: a strict prefix
    whole = content_stats(run.encoded, config.fps)
    return {
        "video": f"long-{content_class}-{seed}",
        "class": content_class,
        "recipe": recipe,
        "seed": seed,
        "duration_s": truth.duration_s,
        "frames": len(frames),
        "first_minute_frames": n_first,
        "change_s": change_time(truth.duration_s) if seed % 2 == 0 else None,
        "cuts": len(truth.cuts_s),
        "natural_tpm": whole.tokens_per_min,
        "codec_class": whole.content_class,
        "first_minute_tpm": first.tokens_per_min,
        "first_minute_class": first.content_class,
        "first_minute": first.to_dict(),
        "whole": whole.to_dict(),
        "wall_s": time.perf_counter() - t_start,
        "cpu_s": time.process_time() - c_start,
    }


def first_minute_frames(times: Sequence[float]) -> int:
    """How many sampled frames (times in s, ascending) fall within the first minute."""
    return sum(1 for t in times if t < FIRST_MINUTE_S - 1e-9)


# --- aggregation ------------------------------------------------------------------------------


def _stats(values: Sequence[float | None], higher_better: bool | None = True) -> dict[str, float | None]:
    """Mean, sample std and worst (min, or max when lower is better) of the values that are not None."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "worst": None, "n": 0}
    worst = min(v) if higher_better is not False else max(v)
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "worst": worst, "n": len(v)}


def forecast_errors(long_records: Sequence[dict], suite_records: Sequence[dict], suite_flat_tpm: float,
                    long_flat_tpm: float) -> None:
    """Add each long video's two forecasts of its whole cost and their errors (in % of it), in place.

    * first minute's rate: the adaptive plan's tokens/min over the first minute;
    * class rate: the first minute's codec class (``codec.stats``) priced at that class's mean rate
      among the suite's videos (``memory.usage``'s per-class rates, with the suite as history), as
      a share of flat so that it carries across grid sizes; a class the suite has no video of is
      priced at the suite's overall mean share.
    """
    shares: dict[str, list[float]] = {}
    for r in suite_records:
        shares.setdefault(r["codec_class"], []).append(r["natural_tpm"] / suite_flat_tpm)
    overall = [x for v in shares.values() for x in v]
    for r in long_records:
        actual = r["natural_tpm"]
        same = shares.get(r["first_minute_class"], [])
        share = statistics.fmean(same) if same else (statistics.fmean(overall) if overall else r["first_minute_tpm"] / long_flat_tpm)
        class_rate = share * long_flat_tpm

        def err(x: float) -> float:
            return 100.0 * (x - actual) / actual if actual else 0.0

        r["forecast"] = {
            "first_minute_tpm": r["first_minute_tpm"],
            "class_rate_tpm": class_rate,
            "class_rate_from": len(same),
            "first_minute_signed_pct": err(r["first_minute_tpm"]),
            "class_rate_signed_pct": err(class_rate),
            "first_minute_error_pct": abs(err(r["first_minute_tpm"])),
            "class_rate_error_pct": abs(err(class_rate)),
        }


def aggregate(records: Sequence[dict], ratios: Sequence[float], long_records: Sequence[dict] = ()) -> dict:
    """Per ratio, class and method: mean/std/worst of every metric; pooled event recall; cuts; cost; forecast."""
    out: dict = {"methods": {}, "cuts": {}, "cost": {}, "forecast": {}}
    for ratio in ratios:
        key = f"{ratio:g}"
        out["methods"][key] = {}
        for c in CLASSES:
            rows = [r for r in records if r["class"] == c]
            out["methods"][key][c] = {}
            for m in METHODS:
                recs = [r["methods"][m][key] for r in rows]
                names = set(METRICS) | {k for x in recs for k in x if k.startswith("vlm_")}
                agg = {k: _stats([x.get(k) for x in recs], METRICS.get(k, True)) for k in sorted(names)}
                agg["tokens_per_min"]["worst"] = max((x["tokens_per_min"] for x in recs), default=None)
                events = sum(x["events"] for x in recs)
                agg["event_recall_pooled"] = sum(x["event_hits"] for x in recs) / events if events else None
                agg["events"] = events
                agg["budget_tpm"] = recs[0]["budget_tpm"] if recs else None
                out["methods"][key][c][m] = agg
    for c in CLASSES:
        rows = [r for r in records if r["class"] == c]

        def pooled(get) -> dict:  # noqa: ANN001 - a small accessor
            cuts = [get(r) for r in rows if get(r) is not None]
            if not cuts:
                return {"precision": None, "recall": None, "cuts": 0, "claims": 0, "matched": 0}
            n_cuts, n_claims, n_match = (sum(x[k] for x in cuts) for k in ("cuts", "claims", "matched"))
            return {"precision": n_match / n_claims if n_claims else 1.0, "recall": n_match / n_cuts if n_cuts else 1.0,
                    "cuts": n_cuts, "claims": n_claims, "matched": n_match}

        out["cuts"][c] = {
            "codec": pooled(lambda r: r["cuts"]["codec"]),
            "scenedetect": pooled(lambda r: r["cuts"]["scenedetect"]),
            **{f"adaptive@{k:g}": pooled(lambda r, k=k: r["cuts"]["adaptive"][f"{k:g}"]) for k in ratios},
        }
        out["cost"][c] = {
            "natural_tpm": _stats([r["natural_tpm"] for r in rows], None),
            "natural_tpm_min": min((r["natural_tpm"] for r in rows), default=None),
            "natural_tpm_max": max((r["natural_tpm"] for r in rows), default=None),
            "codec_classes": _counts(r["codec_class"] for r in rows),
        }
        longs = [r for r in long_records if r["class"] == c]
        out["forecast"][c] = {
            "videos": len(longs),
            "recipes": [r["recipe"] for r in longs],
            "minutes": _stats([r["duration_s"] / 60.0 for r in longs], None),
            "natural_tpm": _stats([r["natural_tpm"] for r in longs], None),
            "first_minute_error_pct": _stats([r["forecast"]["first_minute_error_pct"] for r in longs], False),
            "class_rate_error_pct": _stats([r["forecast"]["class_rate_error_pct"] for r in longs], False),
            "first_minute_classes": _counts(r["first_minute_class"] for r in longs),
            "codec_classes": _counts(r["codec_class"] for r in longs),
        }
    return out


def _counts(names: Iterable[str]) -> dict[str, int]:
    """How often each name occurs, in sorted order."""
    return dict(sorted(Counter(names).items()))


# --- report -----------------------------------------------------------------------------------


def _f(x: float | None, spec: str) -> str:
    """A number as text, "-" when missing."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:{spec}}"


def _ms(a: dict, spec: str) -> str:
    """mean±std (worst) of one aggregate."""
    return f"{_f(a['mean'], spec)}±{_f(a['std'], spec)} ({_f(a['worst'], spec)})"


def method_table(agg: dict, ratio: float, flat_tpm: float) -> str:
    """The Markdown table of every class and method at one budget ratio."""
    key = f"{ratio:g}"
    rows = agg["methods"][key]
    vlm = sorted({k for c in rows.values() for m in c.values() for k in m if k.startswith("vlm_")})
    has_cos = any(m["cosine"]["n"] for c in rows.values() for m in c.values())
    head = ["class", "method", "tokens/min mean±std (max)", "PSNR dB mean±std (worst)", "SSIM mean±std (worst)",
            "event recall pooled (worst video) [events]"] + (["embedding cosine mean±std (worst)"] if has_cos else []) + vlm
    budget = flat_tpm / ratio
    lines = [f"Budget 1/{ratio:g} of flat = {budget:,.0f} tokens/min (flat: {flat_tpm:,.0f}).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CLASSES:
        for m in METHODS:
            a = rows[c][m]
            t = a["tokens_per_min"]
            cells = [c, m, f"{_f(t['mean'], ',.0f')}±{_f(t['std'], ',.0f')} ({_f(t['worst'], ',.0f')})",
                     _ms(a["psnr"], ".2f"), _ms(a["ssim"], ".3f"),
                     f"{_f(a['event_recall_pooled'], '.2f')} ({_f(a['event_recall']['worst'], '.2f')}) [{a['events']}]"]
            if has_cos:
                cells.append(_ms(a["cosine"], ".3f"))
            cells += [_ms(a[k], ".3f") for k in vlm]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cut_table(agg: dict, ratios: Sequence[float]) -> str:
    """Cut detection precision/recall per class: codec anchors (no budget, each budget), PySceneDetect."""
    cols = ["codec"] + [f"adaptive@{r:g}" for r in ratios] + ["scenedetect"]
    names = {"codec": "codec anchors, no budget", "scenedetect": "PySceneDetect ContentDetector"}
    head = ["class", "true cuts"] + [(names[c] if c in names else f"anchors at 1/{c.split('@')[1]}") + " P / R" for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CLASSES:
        row = agg["cuts"][c]
        cells = [c, str(row["codec"]["cuts"])]
        for col in cols:
            x = row[col]
            cells.append("n/a" if x["precision"] is None else f"{x['precision']:.2f} / {x['recall']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(agg: dict, flat_tpm: float) -> str:
    """Adaptive tokens/min without a budget per class and its spread."""
    head = ["class", "adaptive tokens/min mean±std", "min-max", "share of flat", "codec's class of the videos"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CLASSES:
        x = agg["cost"][c]
        n = x["natural_tpm"]
        lines.append("| " + " | ".join([
            c, f"{_f(n['mean'], ',.0f')}±{_f(n['std'], ',.0f')}", f"{_f(x['natural_tpm_min'], ',.0f')}-{_f(x['natural_tpm_max'], ',.0f')}",
            f"{100 * n['mean'] / flat_tpm:.1f}%" if n["mean"] is not None else "-",
            ", ".join(f"{k} {v}" for k, v in x["codec_classes"].items()),
        ]) + " |")
    return "\n".join(lines)


def forecast_table(result: dict) -> str:
    """Per class: how well the first minute of a long video forecasts its whole cost (error %)."""
    s, agg = result["settings"], result["aggregate"]["forecast"]
    longs = result.get("long_videos", [])
    if not longs:
        return "No long videos (forecast_per_class = 0)."
    flat = s["forecast_flat_tpm"]
    lines = [f"{len(longs)} long videos of {s['forecast_duration_s']:g} s on a {s['forecast_size']}x{s['forecast_size']} grid "
             f"(flat {flat:,.0f} tokens/min); in the even seeds the content changes at "
             f"{change_time(s['forecast_duration_s']):g} s. Forecasts from the first {FIRST_MINUTE_S:g} s (a strict prefix: "
             "the codec is causal): its own rate, and its codec class priced at the suite's mean rate of that class "
             "(as a share of flat). Error: |forecast - actual| / actual.", ""]
    head = ["class", "videos (recipes)", "actual tokens/min mean±std", "first minute's rate: error % mean (worst)",
            "class rate: error % mean (worst)", "first minute's class", "whole video's class"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CLASSES:
        x = agg[c]
        n, fe, ce = x["natural_tpm"], x["first_minute_error_pct"], x["class_rate_error_pct"]
        lines.append("| " + " | ".join([
            c, f"{x['videos']} ({', '.join(x['recipes'])})", f"{_f(n['mean'], ',.0f')}±{_f(n['std'], ',.0f')}",
            f"{_f(fe['mean'], '.1f')} ({_f(fe['worst'], '.1f')})", f"{_f(ce['mean'], '.1f')} ({_f(ce['worst'], '.1f')})",
            ", ".join(f"{k} {v}" for k, v in x["first_minute_classes"].items()),
            ", ".join(f"{k} {v}" for k, v in x["codec_classes"].items()),
        ]) + " |")
    lines += ["", "| video | recipe | actual tokens/min | first minute | error % | class rate | error % |", "|---|---|---|---|---|---|---|"]
    for r in longs:
        f = r["forecast"]
        lines.append(f"| {r['video']} | {r['recipe']} | {r['natural_tpm']:,.0f} | {f['first_minute_tpm']:,.0f} ({r['first_minute_class']}) | "
                     f"{f['first_minute_signed_pct']:+.1f} | {f['class_rate_tpm']:,.0f} | {f['class_rate_signed_pct']:+.1f} |")
    return "\n".join(lines)


def losses(agg: dict, ratios: Sequence[float]) -> list[dict]:
    """Every (budget, class, metric, baseline) where adaptive's mean is below flat's, uniform's, evs' or paper's."""
    found = []
    for ratio in ratios:
        rows = agg["methods"][f"{ratio:g}"]
        for c in CLASSES:
            ours = rows[c]["adaptive"]
            for base in ("flat", "uniform", "evs", "paper"):
                other = rows[c][base]
                for metric, label in (("psnr", "PSNR"), ("ssim", "SSIM"), ("event_recall_pooled", "event recall")):
                    a = ours[metric] if metric == "event_recall_pooled" else ours[metric]["mean"]
                    b = other[metric] if metric == "event_recall_pooled" else other[metric]["mean"]
                    if a is not None and b is not None and a < b:
                        found.append({"ratio": ratio, "class": c, "baseline": base, "metric": label, "adaptive": a, "other": b})
    return found


def _loss_lines(found: list[dict], baselines: tuple[str, ...]) -> list[str]:
    """One Markdown bullet per (budget, class): each metric lost, against which baselines, by how much."""
    spec = {"PSNR": ".2f", "SSIM": ".3f", "event recall": ".2f"}
    unit = {"PSNR": " dB", "SSIM": "", "event recall": ""}
    groups: dict[tuple[float, str], list[dict]] = {}
    for x in found:
        if x["baseline"] in baselines:
            groups.setdefault((x["ratio"], x["class"]), []).append(x)
    lines = []
    for (ratio, c), xs in groups.items():
        parts = []
        for metric in ("PSNR", "SSIM", "event recall"):
            ms = [x for x in xs if x["metric"] == metric]
            if ms:
                s, u = spec[metric], unit[metric]
                vs = ", ".join(f"`{x['baseline']}` {x['other']:{s}}{u} ({x['adaptive'] - x['other']:+{s}})" for x in ms)
                parts.append(f"{metric} {ms[0]['adaptive']:{s}}{u} vs {vs}")
        lines.append(f"- 1/{ratio:g}, {c}: " + "; ".join(parts))
    return lines


def losses_section(agg: dict, ratios: Sequence[float]) -> str:
    """The generated "Where the predictive code loses" Markdown section."""
    found = losses(agg, ratios)
    lines = ["## Where the predictive code loses", ""]
    main = _loss_lines(found, ("flat", "uniform"))
    if not main:
        lines.append("At every budget and class, `adaptive` is at or above `flat` and `uniform` on mean PSNR, mean SSIM and event recall.")
    else:
        lines += ["Budgets and classes where `adaptive` is below `flat` or `uniform` (class means; event recall pooled "
                  "over the class's events; the difference in brackets):", ""] + main
    over = []
    for ratio in ratios:
        for c in CLASSES:
            a = agg["methods"][f"{ratio:g}"][c]["adaptive"]
            spent, budget = a["tokens_per_min"]["mean"], a.get("budget_tpm")
            if spent is not None and budget and spent > budget * (1 + TOLERANCE):
                over.append(f"- 1/{ratio:g}, {c}: `adaptive` spent {spent:,.0f} tokens/min against a budget of {budget:,.0f} "
                            f"({100 * (spent / budget - 1):+.0f}%), so its figures there are not at a matched budget")
    if over:
        lines += ["", "Where `adaptive`'s rate control did not hold the budget (class mean):", ""] + over
    rest = _loss_lines(found, ("evs", "paper"))
    lines.append("")
    if rest:
        lines += ["Against `evs` and `paper`:", ""] + rest
    else:
        lines.append("`adaptive` is at or above `evs` and `paper` on every class, budget and metric.")
    return "\n".join(lines)


def plot(result: dict, out_dir: Path) -> list[Path]:
    """Write fidelity_vs_tokens.png (PSNR and SSIM vs actual tokens/min per class) and cost_spread.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg, ratios = result["aggregate"], result["settings"]["ratios"]
    flat_tpm = result["settings"]["flat_tpm"]
    colours = {"flat": "#7f7f7f", "uniform": "#1f77b4", "evs": "#2ca02c", "paper": "#9467bd", "adaptive": "#d62728"}
    fig, axes = plt.subplots(2, len(CLASSES), figsize=(4.2 * len(CLASSES), 7.5), squeeze=False)
    for col, c in enumerate(CLASSES):
        for row, (metric, label) in enumerate((("psnr", "PSNR dB"), ("ssim", "SSIM"))):
            ax = axes[row][col]
            for m in METHODS:
                pts = [agg["methods"][f"{r:g}"][c][m] for r in ratios]
                x = [p["tokens_per_min"]["mean"] for p in pts]
                y = [p[metric]["mean"] for p in pts]
                e = [p[metric]["std"] for p in pts]
                ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=2, lw=1.2, color=colours[m], label=m)
            ax.set_xscale("log")
            ax.set_title(c if row == 0 else "")
            ax.set_xlabel("actual tokens/min (log)")
            if col == 0:
                ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Perceived fidelity vs tokens per minute at budgets 1/{', 1/'.join(f'{r:g}' for r in ratios)} of flat "
                 f"({flat_tpm:,.0f}/min); mean ± std over videos")
    fig.tight_layout()
    p1 = out_dir / "fidelity_vs_tokens.png"
    fig.savefig(p1, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    rng = np.random.default_rng(0)
    for i, c in enumerate(CLASSES):
        v = [r["natural_tpm"] for r in result["videos"] if r["class"] == c]
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=18, color="#d62728", alpha=0.8)
        if v:
            ax.hlines(statistics.fmean(v), i - 0.3, i + 0.3, color="k", lw=1.5)
    for r in ratios:
        ax.axhline(flat_tpm / r, color="#1f77b4", ls=":", lw=1)
        ax.text(len(CLASSES) - 0.45, flat_tpm / r, f"1/{r:g}", va="bottom", fontsize=8, color="#1f77b4")
    ax.axhline(flat_tpm, color="#7f7f7f", ls="--", lw=1)
    ax.text(len(CLASSES) - 0.45, flat_tpm, "flat", va="bottom", fontsize=8, color="#7f7f7f")
    ax.set_yscale("log")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_ylabel("adaptive tokens/min, no budget (log)")
    ax.set_title("Per-video cost spread of the adaptive plan (dots: videos, bars: class mean)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    p2 = out_dir / "cost_spread.png"
    fig.savefig(p2, dpi=100)
    plt.close(fig)
    return [p1, p2]


def report(result: dict) -> str:
    """The whole Markdown report: settings, a table per budget, cuts, cost, and the losses section."""
    s, agg = result["settings"], result["aggregate"]
    parts = [
        "# Matched-budget evaluation",
        "",
        f"{s['videos']} generated videos ({s['per_class']} per class) of {s['duration_s']:g} s on a {s['size']}x{s['size']} grid, "
        f"sampled at {s['fps']:g} fps; wall {result['wall_s']:.0f} s on {s['workers']} worker(s), {s['cpu_count']} CPU(s)"
        + (f", {result['worker_cpu_s']:.0f} CPU-s in the workers" if result.get("worker_cpu_s") else "")
        + (f" ({result['forecast_cpu_s']:.0f} of them for the {s['long_videos']} long forecast videos). "
           if result.get("long_videos") else ". ") +
        f"Cells: mean±std over videos (worst video in brackets: lowest, or highest tokens/min). "
        f"Adaptive receiver warps by: {s['motion']}; adaptive's sent pixels: {s.get('pixels', 'code')}.",
        "",
    ]
    for r in s["ratios"]:
        parts += [f"## Budget 1/{r:g}", "", method_table(agg, r, s["flat_tpm"]), ""]
    parts += ["## Cut detection (pooled over the class's videos)", "", cut_table(agg, s["ratios"]), "",
              "## Cost without a budget", "", cost_table(agg, s["flat_tpm"]), "",
              "## Forecast of a video's cost from its first minute", "", forecast_table(result), "",
              losses_section(agg, s["ratios"]), ""]
    return "\n".join(parts)


# --- runner -----------------------------------------------------------------------------------


def _init_worker() -> None:
    """Worker processes use one torch thread each (the pool is the parallelism)."""
    import torch

    torch.set_num_threads(1)


def run_suite(settings: Settings = Settings(), out_dir: Path | str = Path("results/eval"), scorer: VLMScorer = NoopScorer(),
              log: bool = True) -> dict:
    """Run the whole suite; write eval.json, eval.md and the PNGs under ``out_dir``; return the result."""
    from videomemory.codec.config import Grid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [(c, seed) for c in CLASSES for seed in range(settings.per_class)]
    long_specs = [(c, seed) for c in CLASSES for seed in range(settings.forecast_per_class)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vm-eval-") as tmp:
        job = partial(evaluate_video, settings=settings, folder=tmp, scorer=scorer)
        long_job = partial(forecast_video, settings=settings, folder=tmp)
        records: list[dict] = []
        long_records: list[dict] = []

        def done(rec: dict, into: list[dict]) -> None:
            into.append(rec)
            if log:
                print(f"  {rec['video']}: {rec['wall_s']:.1f} s", flush=True)

        if settings.workers <= 1:
            for spec in long_specs:
                done(long_job(spec), long_records)
            for spec in specs:
                done(job(spec), records)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(settings.workers, mp_context=ctx, initializer=_init_worker) as pool:
                # The long videos first: the longest jobs at the start keep both workers busy to the end.
                long_futures = [pool.submit(long_job, spec) for spec in long_specs]
                futures = [pool.submit(job, spec) for spec in specs]
                for f in long_futures:
                    done(f.result(), long_records)
                for f in futures:
                    done(f.result(), records)
    wall = time.perf_counter() - t0
    grid = Grid(settings.size, settings.size)
    long_grid = Grid(settings.forecast_size, settings.forecast_size)
    forecast_errors(long_records, records, grid.tokens_per_image * 120.0, long_grid.tokens_per_image * 120.0)
    import torch

    result = {
        "benchmark": "eval_suite",
        "settings": {
            **{k: v for k, v in asdict(settings).items()},
            "videos": len(specs),
            "fps": 2.0,
            "tokens_per_image": grid.tokens_per_image,
            "flat_tpm": grid.tokens_per_image * 2.0 * 60.0,
            "budgets_tpm": {f"{r:g}": grid.tokens_per_image * 120.0 / r for r in settings.ratios},
            "long_videos": len(long_specs),
            "first_minute_s": FIRST_MINUTE_S,
            "forecast_flat_tpm": long_grid.tokens_per_image * 2.0 * 60.0,
            "scorer": scorer.name,
            "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "wall_s": wall,
        "worker_cpu_s": sum(r.get("cpu_s", 0.0) for r in records) + sum(r["cpu_s"] for r in long_records),
        "forecast_cpu_s": sum(r["cpu_s"] for r in long_records),
        "videos": records,
        "long_videos": long_records,
    }
    result["aggregate"] = aggregate(records, settings.ratios, long_records)
    result["losses"] = losses(result["aggregate"], settings.ratios)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=1))
    (out_dir / "eval.md").write_text(report(result))
    plot(result, out_dir)
    return result


#: ``python -m videomemory.bench.eval_suite``: the same command as ``videomemory bench eval``.
app = typer.Typer(add_completion=False)
app.command()(eval_command)


if __name__ == "__main__":
    app()
