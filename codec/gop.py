"""Anchor-rooted GOPs: pcost, the I/P rule, gamma calibration and the causal encoder.

The rule (PAPER §1.3): frame 0 is an anchor (I); a later frame starts a new GOP when its
predictive cost against the previous sampled frame exceeds gamma, or when the current GOP already
holds ``k_max`` P-frames. pcost is the sum of the chosen block costs of the motion search, so no
extra pass is needed. gamma is kept *per 16x16 block* (pcost / number of blocks), so one value
works on every grid size.

One rule is added to PAPER's, for cuts into plain pictures, which cost less than gamma: a
frame over a fraction of gamma whose prediction's SAD is several times its own detail starts
a GOP too (``GopConfig.scene_ratio``).

The decision only looks at the past, so the same ``GopEncoder.push`` serves files and live
streams, and a file encoded in one go or frame by frame gets identical GOPs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from videomemory.codec.config import CodecConfig, GopConfig, resolve_device
from videomemory.codec.decode import SampledFrame
from videomemory.codec.motion import MotionField, as_tensor, detail, estimate_motion, mode_vector
from videomemory.errors import InvalidArgument

I, P = "I", "P"
#: Anchor reasons that mark a change of content, where the previous frame stops predicting.
CUT_REASONS = ("pcost", "scene")


@dataclass(frozen=True)
class FrameCode:
    """What the encoder decided for one sampled frame."""

    sampled_index: int
    source_index: int
    pts_ms: int
    role: str  # "I" (anchor) or "P"
    gop: int  # GOP number in the video, 0-based
    pos: int  # position inside the GOP, 0 for the anchor
    pcost: int | None  # cost against the previous sampled frame; None for frame 0
    pcost_per_block: float | None
    reason: str  # why an anchor: "first", "pcost", "scene", "k_max", "budget"; "" for P-frames
    motion: MotionField | None  # field against the previous sampled frame; None for frame 0
    # the prediction's SAD over the frame's detail, where the scene rule looked (see ``decide``)
    unexplained: float | None = None

    def summary(self, vectors: bool = False) -> dict[str, object]:
        """JSON-friendly record (no tensors): timing, role, pcost and a motion summary; ``vectors``
        adds the whole field: per block row, each block's (dy, dx) and its cost."""
        out: dict[str, object] = {
            "sampled_index": self.sampled_index,
            "source_index": self.source_index,
            "pts_ms": self.pts_ms,
            "role": self.role,
            "gop": self.gop,
            "pos": self.pos,
            "pcost": self.pcost,
            "pcost_per_block": None if self.pcost_per_block is None else round(self.pcost_per_block, 1),
            "reason": self.reason,
            "unexplained": None if self.unexplained is None else round(self.unexplained, 3),
        }
        if self.motion is not None:
            v = self.motion.vectors.reshape(-1, 2).to(torch.float32)
            mag = v.norm(dim=1)
            out["motion_mean_px"] = round(float(mag.mean()), 2)
            out["moving_blocks"] = round(float((mag > 0).float().mean()), 3)
            # The field's most common vector (a global pan's, where the picture shows it) and its share.
            mode, count = mode_vector(self.motion.vectors)
            out["motion_mode"] = list(mode)
            out["motion_mode_share"] = round(count / self.motion.n_blocks, 3)
            out["global_motion"] = list(self.motion.global_motion)
            if vectors:
                out["vectors"] = self.motion.vectors.tolist()
                out["block_cost"] = self.motion.cost.tolist()
        return out


def decide(
    pcost_per_block: float | None, p_in_gop: int, gop: GopConfig, gamma_scale: float = 1.0, refresh: bool = False,
    unexplained: float | None = None,
) -> str:
    """The anchor rule for one frame: the reason it is an anchor, or "" for a P-frame.

    ``unexplained``: the prediction's SAD over the frame's own detail, for the scene rule
    (``GopConfig.scene_ratio``; None: not measured, as outside ``scene_band``). Rate control
    (``codec.rate``) may scale gamma (fewer anchors when over budget) or ask for a ``refresh``
    anchor (tokens to spare); without them and with ``scene_ratio`` 0 the rule is PAPER §1.3.
    """
    if pcost_per_block is None:
        return "first"
    if pcost_per_block > gop.gamma_per_block * gamma_scale:
        return "pcost"
    if unexplained is not None and scene_band(pcost_per_block, gop, gamma_scale) and unexplained > gop.scene_ratio:
        return "scene"
    if p_in_gop >= gop.k_max:
        return "k_max"
    if refresh:
        return "budget"
    return ""


def scene_band(pcost_per_block: float, gop: GopConfig, gamma_scale: float = 1.0) -> bool:
    """Whether the scene rule weighs a frame of this pcost: over ``scene_floor`` x gamma, not over gamma."""
    gamma = gop.gamma_per_block * gamma_scale
    return gop.scene_ratio > 0 and gop.scene_floor * gamma < pcost_per_block <= gamma


def assign_roles(
    pcosts_per_block: Sequence[float | None], gop: GopConfig, unexplained: Sequence[float | None] | None = None
) -> list[str]:
    """Roles ("I"/"P") for a whole pcost series (and ``FrameCode.unexplained`` series, for the
    scene rule); the same rule the causal encoder applies."""
    roles: list[str] = []
    p_in_gop = 0
    ratios = [None] * len(pcosts_per_block) if unexplained is None else unexplained
    for pc, ratio in zip(pcosts_per_block, ratios, strict=True):
        anchor = bool(decide(pc, p_in_gop, gop, unexplained=ratio))
        roles.append(I if anchor else P)
        p_in_gop = 0 if anchor else p_in_gop + 1
    return roles


def gop_lengths(roles: Sequence[str]) -> list[int]:
    """Frames per GOP (anchor included) for a role sequence."""
    lengths: list[int] = []
    for r in roles:
        if r == I or not lengths:
            lengths.append(1)
        else:
            lengths[-1] += 1
    return lengths


def median_p_per_gop(series: Iterable[Sequence[float | None]], gop: GopConfig) -> float:
    """Median number of P-frames per GOP over several pcost-per-block series under ``gop``."""
    return statistics.median(n - 1 for s in series for n in gop_lengths(assign_roles(s, gop)))


def calibrate_gamma(
    series: Iterable[Sequence[float | None]], target_median_p: float = 8.0, k_max: int = 16
) -> float:
    """gamma per block whose GOPs have a median of ``target_median_p`` P-frames (PAPER: 8).

    ``series`` holds one pcost-per-block sequence per training video. Larger gamma means fewer
    anchors, so the median P/GOP rises with gamma; a bisection over the observed pcost values
    finds the smallest gamma that reaches the target. If no gamma reaches it (the footage is
    mostly static, so GOPs are capped by k_max anyway) the largest observed pcost is returned.
    """
    videos = [list(s) for s in series]
    values = sorted({v for s in videos for v in s if v is not None})
    if not values:
        raise InvalidArgument("gamma calibration needs at least one video with two or more sampled frames")
    if not 0 <= target_median_p <= k_max:
        raise InvalidArgument(f"target median P/GOP {target_median_p} must be within [0, k_max={k_max}]")

    def median_p(gamma: float) -> float:
        return median_p_per_gop(videos, GopConfig(gamma_per_block=gamma, k_max=k_max))

    # Thresholds just below each observed value, plus one above all of them.
    candidates = [v * (1 - 1e-9) for v in values] + [values[-1] * 1.001 + 1e-6]
    lo, hi = 0, len(candidates) - 1
    if median_p(candidates[hi]) < target_median_p:
        return candidates[hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if median_p(candidates[mid]) >= target_median_p:
            hi = mid
        else:
            lo = mid + 1
    return candidates[lo]


class GopEncoder:
    """Causal encoder: ``push`` one sampled frame at a time, get its ``FrameCode`` back."""

    def __init__(self, config: CodecConfig = CodecConfig(), device: str | torch.device = "auto") -> None:
        self.config = config
        self.device = resolve_device(device)
        self._prev: torch.Tensor | None = None
        self._prev_field: MotionField | None = None
        self._gop = -1
        self._pos = 0

    @property
    def current(self) -> torch.Tensor | None:
        """The last pushed frame as a (3, H, W) uint8 tensor on the device (None before the first); on
        the CPU a view of its (H, W, 3) image."""
        return self._prev

    def push(self, frame: SampledFrame, gamma_scale: float = 1.0, refresh: bool = False) -> FrameCode:
        """Code one frame against the previous one and decide its role (rate control: see ``decide``).

        On the CPU the frame's image is kept, not copied, as the next frame's reference: do not
        write to it after pushing (``SampledFrame.from_array`` copies a live caller's buffer)."""
        cur = as_tensor(frame.image, self.device, contiguous=False)
        grid = self.config.grid
        if tuple(cur.shape[1:]) != (grid.height, grid.width):
            raise InvalidArgument(
                f"frame {frame.sampled_index} is {cur.shape[2]}x{cur.shape[1]}, the grid is "
                f"{grid.width}x{grid.height}; decode with the same grid"
            )
        field = None
        pcost = None
        per_block = None
        if self._prev is not None:
            field = estimate_motion(cur, self._prev, self.config.motion, prior=self._prev_field,
                                    anchor_above=self.config.gop.gamma_per_block)
            pcost = field.pcost
            per_block = pcost / field.n_blocks
        unexplained = None
        if field is not None and scene_band(per_block, self.config.gop, gamma_scale):
            unexplained = int(field.sad.sum()) / max(detail(cur), 1)
        reason = decide(per_block, self._pos, self.config.gop, gamma_scale, refresh, unexplained)
        if reason:
            self._gop += 1
            self._pos = 0
        else:
            self._pos += 1
        self._prev, self._prev_field = cur, field
        return FrameCode(
            sampled_index=frame.sampled_index,
            source_index=frame.source_index,
            pts_ms=frame.pts_ms,
            role=I if reason else P,
            gop=self._gop,
            pos=self._pos,
            pcost=pcost,
            pcost_per_block=per_block,
            reason=reason,
            motion=field,
            unexplained=unexplained,
        )


def encode(
    frames: Iterable[SampledFrame], config: CodecConfig = CodecConfig(), device: str | torch.device = "auto"
) -> Iterator[FrameCode]:
    """Encode a sequence of sampled frames (a thin loop over ``GopEncoder.push``)."""
    encoder = GopEncoder(config, device)
    for frame in frames:
        yield encoder.push(frame)
