"""Codec configuration: the model grid, motion search and GOP settings, in one place.

Numbers the paper states are defaults here (PAPER.md §1): 512x512 input, 16 px patches merged
2x2 (1 token = 32x32 px, 256 tokens per anchor), 16x16 macroblocks, 2 fps sampling, K_max = 16.
Numbers the paper leaves open (lambda, search radius, absolute gamma) are chosen and explained
beside their field.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

import torch
from PIL import AvifImagePlugin, features

from videomemory.errors import InvalidArgument

#: Side of a motion-search macroblock in pixels; equal to the ViT patch (PAPER §1.1).
BLOCK = 16


@dataclass(frozen=True)
class Grid:
    """The model's input geometry: frames are resized to ``width`` x ``height`` before coding."""

    width: int = 512
    height: int = 512
    patch: int = 16  # ViT patch side in px
    merge: int = 2  # the merger joins merge x merge patches into one LLM token

    def __post_init__(self) -> None:
        cell = self.token_px
        if self.width <= 0 or self.height <= 0 or self.width % cell or self.height % cell:
            raise InvalidArgument(
                f"grid {self.width}x{self.height} must be positive multiples of {cell} px "
                f"(one token = {self.merge}x{self.merge} patches of {self.patch} px)"
            )

    @property
    def token_px(self) -> int:
        """Side of one LLM token's cell in pixels (32 by default)."""
        return self.patch * self.merge

    @property
    def blocks(self) -> tuple[int, int]:
        """Macroblock grid as (rows, cols)."""
        return self.height // BLOCK, self.width // BLOCK

    @property
    def n_blocks(self) -> int:
        """Number of 16x16 macroblocks in a frame."""
        rows, cols = self.blocks
        return rows * cols

    @property
    def tokens_per_image(self) -> int:
        """Visual tokens one full image (an anchor) costs on this grid."""
        return (self.width // self.token_px) * (self.height // self.token_px)

    @classmethod
    def parse(cls, text: str) -> "Grid":
        """Parse ``"512x512"`` (width x height)."""
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise InvalidArgument(f"grid {text!r} is not WIDTHxHEIGHT, e.g. 512x512") from None
        return cls(width=w, height=h)

    @classmethod
    def fit(cls, src_width: int, src_height: int, max_tokens: int = 256) -> "Grid":
        """Aspect-preserving grid with at most ``max_tokens`` tokens, sides multiples of 32 px."""
        cell = cls.patch * cls.merge  # class defaults
        aspect = src_width / src_height
        # Largest token grid (tw, th) with tw*th <= max_tokens and tw/th close to the aspect.
        th = max(1, int(math.sqrt(max_tokens / aspect)))
        tw = max(1, min(max_tokens // th, round(th * aspect)))
        while tw * th > max_tokens:
            th -= 1
        return cls(width=tw * cell, height=max(1, th) * cell)


@dataclass(frozen=True)
class MotionConfig:
    """Block motion search: cost(d) = SAD(block, ref shifted by d) + lam * |d|_1 (PAPER Eq. 1), then
    the global-motion merge (``merge_lam``)."""

    # +-64 px absorbs a brisk pan at 2 fps on a 512 px grid (PAPER §1.2 says "enlarged", no number).
    radius: int = 64
    # SAD is summed over 16*16*3 = 768 RGB values; lam = 4 per px of |d|_1 is a tie-breaker that
    # prefers short vectors in flat areas without overriding a real match (a 1-grey-level
    # difference over a block already costs 768).
    lam: int = 4
    method: str = "fast"  # "fast" (pyramid + predictors) or "exhaustive" (reference)
    # After either search, every block is offered the frame's global motion g, its own vector m
    # then costing SAD(m) + merge_lam * |m - g|_1 (codec.motion.merge_global; not in PAPER; 0 turns
    # it off). 32 per px of difference is 1/24 of a grey level per RGB value: far below what a
    # block that really moves otherwise gains, above the noise among near-equal matches.
    merge_lam: int = 32

    def __post_init__(self) -> None:
        if self.radius < 1:
            raise InvalidArgument(f"motion radius {self.radius} must be >= 1 px")
        if self.lam < 0:
            raise InvalidArgument(f"motion lambda {self.lam} must be >= 0")
        if self.merge_lam < 0:
            raise InvalidArgument(f"merge lambda {self.merge_lam} must be >= 0")
        if self.method not in ("fast", "exhaustive"):
            raise InvalidArgument(f"motion method {self.method!r} is not 'fast' or 'exhaustive'")


@dataclass(frozen=True)
class GopConfig:
    """Anchor decision: a new GOP when pcost > gamma or the GOP holds k_max P-frames (PAPER §1.3),
    or the frame is a new scene that costs less than gamma (below)."""

    # gamma per 16x16 block, in the units of the block cost (SAD over 768 RGB values + lam|d|_1),
    # so the same value works at any grid size. Chosen with bench/calibrate_gamma.py at 512x512
    # (README, "gamma"): predictable content (static, pans and objects inside the +-64 px window,
    # the shots between cuts) stays below 2,400 per block, hard cuts stay above 16,800. 8,000 sits
    # 3.4x above the first and 2.1x below the second. Motion beyond the window (up to 15,500)
    # and fades start anchors: their prediction really fails. PAPER's median of 8 P-frames per
    # GOP gives about 9,400 on the same corpus, close to this value.
    gamma_per_block: float = 8000.0
    k_max: int = 16
    # A cut into a plain picture (a dark or smooth scene, a page of text) can cost less than
    # gamma, since plain content is cheap to predict from anything, though the previous frame
    # explains none of it: of 500 cuts between scikit-image photos, text -> moon and coins -> cell
    # cost 5,800-7,300 per block. Such a frame starts a GOP too (reason "scene"; x264's scenecut
    # likewise weighs inter against intra cost) when its pcost is over scene_floor * gamma and
    # the SAD of its prediction is over scene_ratio times its own detail (its texture summed over
    # blocks, codec.motion.detail): the residual holds more than the picture. Coded from H.264,
    # text -> moon measures 3.4 at 512x512 and 2.0 at 256x256, coins -> cell 5.0; cuts between
    # textured photos 0.7 or more, at a pcost far over gamma. Below the floor nothing is taken:
    # pans of the same photos reach 1.7 at a pcost of at most 2,800. In the band, a static scene
    # under sensor noise (sigma 8) measures at most 0.51, and motion that the search cannot
    # follow (beyond +-64 px, a zoom into smooth content) 1.0-2.8, so some of those frames become
    # anchors too, as their prediction fails. scene_ratio 0 leaves PAPER's rule alone.
    scene_ratio: float = 1.5
    scene_floor: float = 0.5

    def __post_init__(self) -> None:
        if self.gamma_per_block <= 0:
            raise InvalidArgument(f"gamma {self.gamma_per_block} must be > 0")
        if self.k_max < 0:
            raise InvalidArgument(f"k_max {self.k_max} must be >= 0")
        if self.scene_ratio < 0:
            raise InvalidArgument(f"scene ratio {self.scene_ratio} must be >= 0 (0: no scene rule)")
        if not 0 <= self.scene_floor <= 1:
            raise InvalidArgument(f"scene floor {self.scene_floor} must be within [0, 1] (a fraction of gamma)")


#: Image formats an anchor can be stored in (Pillow names, lower case).
ANCHOR_FORMATS = ("avif", "png", "jpeg", "webp")


@dataclass(frozen=True)
class ResidualConfig:
    """How anchors and P-frame residuals are stored (``codec.residual`` explains the choices)."""

    # Step 6 with dead zone 4 bounds every P-frame pixel to +-4 grey levels of the source; step 8
    # with dead zone 5 is ~25% smaller but lets errors settle ~1 dB lower along a GOP (README).
    step: int = 6  # quantiser step in grey levels
    dead_zone: int = 4  # |residual| <= dead_zone quantises to 0
    anchor_format: str = "avif"
    # 1-100, Pillow's scale for avif/jpeg/webp; ignored for png. The quality of intra patches, and
    # where the anchors' quality search starts (the fixed anchor quality when anchor_psnr is 0).
    anchor_quality: int = 80
    # Anchors get a quality that reaches this PSNR (dB), within 0.5 dB above it: just below where
    # P-frames settle with step 6 / dead zone 4 (41-44 dB), so the first P-frame of a GOP is about
    # as good as the last (no drift; codec.residual has the measurements). 0: fixed anchor_quality.
    anchor_psnr: float = 41.0
    intra_mse: float = 100.0  # blocks predicted worse than this (grey levels squared) go intra
    # A P-frame coded as more than this many bytes per pixel is also tried as one intra image
    # (plus residual), and the smaller is kept (codec.residual, "frame intra").
    frame_intra: bool = True
    frame_intra_bytes: float = 0.15
    zstd_level: int = 3

    def __post_init__(self) -> None:
        if not 3 <= self.step <= 64:
            raise InvalidArgument(f"residual step {self.step} must be within 3..64 grey levels")
        if not 0 <= self.dead_zone < self.step:
            raise InvalidArgument(f"dead zone {self.dead_zone} must be within 0..step-1 ({self.step - 1})")
        if self.anchor_format not in ANCHOR_FORMATS:
            raise InvalidArgument(f"anchor format {self.anchor_format!r} is not one of {', '.join(ANCHOR_FORMATS)}")
        if self.intra_mse < 0:
            raise InvalidArgument(f"intra threshold {self.intra_mse} must be >= 0 (inf turns intra blocks off)")
        if not 1 <= self.anchor_quality <= 100:
            raise InvalidArgument(f"anchor quality {self.anchor_quality} must be within 1..100")
        if not 0 <= self.anchor_psnr <= 60:
            raise InvalidArgument(f"anchor PSNR target {self.anchor_psnr} dB must be within 0..60 (0: fixed quality)")
        if self.frame_intra_bytes < 0:
            raise InvalidArgument(f"frame intra threshold {self.frame_intra_bytes} must be >= 0 bytes per pixel")
        if self.anchor_format == "avif" and not features.check("avif"):
            raise InvalidArgument(
                "this Pillow build has no AVIF support; install pillow>=11.3 or choose anchor format 'jpeg'"
            )

    @property
    def max_error(self) -> int:
        """Largest difference, in grey levels, between a rebuilt P-frame pixel and the source."""
        return max(self.dead_zone, self.step - 1 - self.dead_zone)



@dataclass(frozen=True)
class PlanConfig:
    """How the adaptive token plan spends tokens on P-frames (``codec.tokens``, ``codec.rate``)."""

    # A P-frame sends the 32x32 cells whose mean squared motion-compensated residual (grey levels
    # squared) is above this: RMS 14 grey levels. Codec noise on static or well-predicted content
    # stays below ~20; an object entering or uncovered background is in the thousands. 100-250
    # all catch entering objects; 200 keeps mixed footage near 86% below flat (README, "tokens").
    cell_threshold: float = 200.0
    # A forced (k_max) anchor is sent as a full image only when the scene changed since the last
    # full image: the cells sent since then reach this fraction of a full image. Otherwise it is
    # planned like a P-frame, so static stretches collapse.
    refresh_fraction: float = 0.25
    # Rate control: tokens per minute of video to aim for; None spends what the content needs.
    budget_per_min: float | None = None

    def __post_init__(self) -> None:
        if self.cell_threshold < 0:
            raise InvalidArgument(f"cell threshold {self.cell_threshold} must be >= 0")
        if not 0 <= self.refresh_fraction <= 1:
            raise InvalidArgument(f"refresh fraction {self.refresh_fraction} must be within [0, 1]")
        if self.budget_per_min is not None and not self.budget_per_min > 0:
            raise InvalidArgument(f"token budget {self.budget_per_min} per minute must be > 0")


@dataclass(frozen=True)
class CodecConfig:
    """Everything that decides how a video is sampled and coded."""

    fps: float = 2.0
    grid: Grid = field(default_factory=Grid)
    motion: MotionConfig = field(default_factory=MotionConfig)
    gop: GopConfig = field(default_factory=GopConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)

    def __post_init__(self) -> None:
        if not (0 < self.fps <= 120):
            raise InvalidArgument(f"fps {self.fps} must be in (0, 120]")

    def with_(self, **changes: object) -> "CodecConfig":
        """A copy with some fields replaced."""
        return replace(self, **changes)


def set_cpu_threads(threads: int | None = None) -> int:
    """Set the threads torch and the AVIF decoder use per call (default: ``VIDEOMEMORY_TORCH_THREADS``, else 1); returns it.

    One thread by default: the codec's tensors and images are one frame each, and the service uses
    its cores by overlapping decode with coding, by coding several videos at once (``--workers``)
    and by rebuilding a clip's GOPs side by side. OpenMP threads that compete with those threads
    for cores spin-wait: on 2 cores with other work running, ingesting six short videos took
    143-181 s with torch's default 2 threads against 13-33 s with 1 (idle, 18.1 s against 19.1 s).
    Pillow's AVIF decoder (dav1d) otherwise starts a thread per core for every image: one thread
    decodes a 512x512 anchor in 4.9 ms against 5.8 ms, and its small intra images in 2.0 ms
    against 2.6 ms. Raise it for one long video on an otherwise idle many-core machine.
    """
    if threads is None:
        raw = os.environ.get("VIDEOMEMORY_TORCH_THREADS", "1")
        try:
            threads = int(raw)
        except ValueError:
            raise InvalidArgument(f"VIDEOMEMORY_TORCH_THREADS={raw!r} is not a whole number of threads") from None
    if not 1 <= threads <= 1024:
        raise InvalidArgument(f"torch threads {threads} must be within 1..1024")
    torch.set_num_threads(threads)
    AvifImagePlugin.DEFAULT_MAX_THREADS = threads  # Pillow's documented default for decoding (0: one per core)
    return threads


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when torch sees one, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InvalidArgument(f"device {device!r} is not valid: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device 'cuda' was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return dev
