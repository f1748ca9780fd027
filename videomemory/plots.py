"""Pictures of stored videos (matplotlib, headless): what a person looks at to trust the code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from videomemory.memory.store import Video

CLASS_COLOURS = {"static": "#c7e9c0", "low-motion": "#9ecae1", "high-motion": "#fdae6b", "high-cut": "#fcbba1"}


def plot_timeline(video: "Video", frames: pa.Table, segments: pa.Table, path: str | Path) -> Path:
    """Write a PNG: pcost per block (with anchors), tokens per frame, and each GOP's content class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [ms / 1000 for ms in frames["ms"].to_pylist()]
    roles = frames["role"].to_pylist()
    pcost = [p if p is not None else float("nan") for p in frames["pcost_per_block"].to_pylist()]
    tokens = [a + b for a, b in zip(frames["image_tokens"].to_pylist(), frames["overhead_tokens"].to_pylist())]
    gamma = video.codec.get("gop", {}).get("gamma_per_block")

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for seg in segments.to_pylist():
        colour = CLASS_COLOURS.get(seg["content_class"], "#eeeeee")
        for ax in (ax1, ax2):
            ax.axvspan(seg["start_ms"] / 1000, seg["end_ms"] / 1000, color=colour, alpha=0.5, lw=0)
    ax1.plot(t, pcost, "-", color="#333333", lw=1, label="pcost per 16x16 block")
    if gamma:
        ax1.axhline(gamma, color="#d62728", ls="--", lw=1, label=f"gamma = {gamma:g}")
    for x, role in zip(t, roles):
        if role == "I":
            ax1.axvline(x, color="#d62728", lw=0.8, alpha=0.7)
    ax1.set_yscale("symlog", linthresh=100)
    ax1.set_ylabel("pcost / block")
    ax1.set_title(f"{video.key}  {Path(video.source_uri).name}: {video.frames} frames, {video.segments} GOPs "
                  f"(red lines: anchors), {video.tokens_per_min:,.0f} tokens/min")
    from matplotlib.patches import Patch

    present = sorted({s["content_class"] for s in segments.to_pylist()})
    handles, _ = ax1.get_legend_handles_labels()
    handles += [Patch(color=CLASS_COLOURS.get(c, "#eeeeee"), alpha=0.5, label=c) for c in present]
    ax1.legend(handles=handles, loc="upper right", fontsize=8)
    ax2.bar(t, tokens, width=0.8 / max(video.fps, 1e-9), color=["#d62728" if r == "I" else "#1f77b4" for r in roles])
    ax2.set_yscale("symlog", linthresh=10)
    ax2.set_ylabel("tokens / frame")
    ax2.set_xlabel("source time (s); background: content class of each GOP")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
