"""The whole codec for one stream: GOP decision, closed-loop residual, token plan, frame by frame.

``Encoder.push`` takes one sampled frame and returns an ``EncodedFrame``: the GOP decision
(``codec.gop``), the stored code (an anchor image or a ``PCode``, ``codec.residual``), the token
plan (``codec.rate``), and the frame as any reader will rebuild it, with its PSNR against the
sampled frame. It keeps the reconstructed previous frame, so the residual loop is closed, and
it only looks at the past, so files and live streams go through the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field

import numpy as np
import torch

from videomemory.codec.config import CodecConfig
from videomemory.codec.decode import SampledFrame
from videomemory.codec.gop import I, FrameCode, GopEncoder
from videomemory.codec.motion import as_tensor
from videomemory.codec.rate import Planner
from videomemory.codec.residual import AnchorCode, PCode, cell_energy, code_pframe, compensate, encode_anchor
from videomemory.codec.tokens import FramePlan, TokenModel


@dataclass(frozen=True)
class EncodedFrame:
    """One sampled frame after the whole codec."""

    code: FrameCode  # timing, role, GOP position, pcost, motion
    anchor: AnchorCode | None  # the stored image when the frame is an anchor
    pcode: PCode | None  # the stored code when it is a P-frame
    energy: np.ndarray | None = field(repr=False)  # (rows, cols) residual energy per token cell; None for frame 0
    plan: FramePlan  # what a VLM is sent for this frame
    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8, the frame as rebuilt from the code
    psnr: float  # of ``image`` against the sampled frame, dB (inf when identical)
    nbytes: int  # stored size of this frame's code in bytes
    data: bytes = field(default=b"", repr=False)  # the stored code: anchor image bytes or serialised P-code


IDENTICAL_DB = 99.0  # the PSNR reported for an exact rebuild: JSON, Arrow statistics and people have no infinity


def reported_psnr(db: float) -> float:
    """A PSNR as stored and printed: ``IDENTICAL_DB`` for an exact rebuild (inf), else as it is."""
    return db if math.isfinite(db) else IDENTICAL_DB


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (inf when identical)."""
    diff = torch.as_tensor(a).to(torch.int64) - torch.as_tensor(b).to(torch.int64)
    mse = float(diff.square().sum()) / diff.numel()
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


class Encoder:
    """Causal codec: ``push`` sampled frames in order, get ``EncodedFrame``s back."""

    def __init__(self, config: CodecConfig = CodecConfig(), device: str | torch.device = "auto",
                 expected_frames: int | None = None) -> None:
        self.config = config
        self.gop = GopEncoder(config, device)
        self.device = self.gop.device
        self.tokens = TokenModel(grid=config.grid)
        # A file's length in sampled frames lets rate control borrow what the rest can repay
        # (``codec.rate``); None (a live stream) keeps every prefix within the budget.
        self.planner = Planner(self.tokens, config.plan, config.fps, expected_frames)
        self._rec: torch.Tensor | None = None  # (3, H, W) uint8: the previous frame as rebuilt

    def push(self, frame: SampledFrame) -> EncodedFrame:
        """Encode the next sampled frame."""
        code = self.gop.push(frame, self.planner.gamma_scale(), self.planner.refresh_due())
        cur = self.gop.current  # the frame as the GOP coder converted it, not converted again
        assert cur is not None
        cell = self.config.grid.token_px
        anchor = pcode = None
        energy = None
        if code.role == I:
            anchor = encode_anchor(frame.image, self.config.residual)
            rec = as_tensor(anchor.decode(), self.device)
            if self._rec is not None and code.motion is not None:
                # What a P-frame would have had to send: lets the planner skip unneeded refreshes.
                pred = compensate(self._rec, code.motion.vectors)
                energy = cell_energy(cur.to(torch.int16) - pred.to(torch.int16), cell).cpu().numpy()
        else:
            assert self._rec is not None and code.motion is not None
            pcode, rec = code_pframe(cur, self._rec, code.motion.vectors, self.config.residual, cell)
            energy = pcode.energy
        plan = self.planner.plan(code.role, code.reason, energy)
        self._rec = rec
        # Serialised once, here: what the store keeps and what the frame weighs.
        data = anchor.data if anchor is not None else pcode.to_bytes(self.config.residual.zstd_level)  # type: ignore[union-attr]
        image = rec.permute(1, 2, 0).cpu().numpy()
        return EncodedFrame(code, anchor, pcode, energy, plan, image, psnr(rec, cur), len(data), data)


def encode_stream(
    frames: Iterable[SampledFrame], config: CodecConfig = CodecConfig(), device: str | torch.device = "auto"
) -> Iterator[EncodedFrame]:
    """Encode sampled frames in order (a thin loop over ``Encoder.push``); a sized input is a file of that length."""
    encoder = Encoder(config, device, len(frames) if isinstance(frames, Sized) else None)
    for frame in frames:
        yield encoder.push(frame)
