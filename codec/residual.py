"""Closed-loop residual coding: what a P-frame stores, and how any frame is rebuilt bit-exactly.

A GOP is stored as its anchor image plus one ``PCode`` per P-frame. Each P-frame is predicted
from the *reconstructed* previous sampled frame, moved by the frame's block motion vectors
(closed loop, as in every real codec): the encoder keeps the same reconstruction the decoder
will build, so errors never accumulate along the chain and ``rebuild`` reproduces the encoder's
frames exactly. That is what lets a clip start anywhere: frame t is rebuilt and becomes the
clip's own anchor, and the later P-codes still apply because they reference frame t as rebuilt.

Choices (the paper has no quantiser: its P-frames feed a learned tokenizer, not a decoder):

* **Residual quantiser**: RGB pixel domain, uniform step ``step`` (6) with a dead zone:
  ``q = sign(r) * floor((|r| + step - 1 - dead_zone) / step)``, rebuilt as ``q * step`` and
  clamped to [0, 255]. Every residual within ``dead_zone`` (4) quantises to 0, and every rebuilt
  P-frame pixel is within ``max(dead_zone, step - 1 - dead_zone)`` grey levels of the source
  frame, so quality has a hard floor instead of drifting. Residuals inside the dead zone are not
  corrected, so along a GOP each pixel's error wanders within +-4 and P-frames settle at a
  plateau set by the content's frame-to-frame noise (41-44 dB on the generated footage at 512).
  A float DCT is not bit-exact across CPU and GPU; an integer transform (H.264's core transform)
  would be, and is the next step for textured residuals, but is not implemented. Dead zone 3
  (bound 3) raises the plateau by about 1.2 dB but stores pans at 1.28x JPEG q90 (measured with
  anchors at 43 dB), so step 6 / dead zone 4 stays.
* **Anchors** are stored with a standard image codec through Pillow: AVIF 4:4:4 whose quality
  is searched per anchor for a target PSNR, ``anchor_psnr`` (41 dB): the lowest-cost quality
  within 0.5 dB above it (usually the first try, q80; at most 5 encodes). PNG (lossless) for
  re-synthesised anchors, JPEG or WebP on request. The encoder decodes the anchor it just wrote,
  so the chain starts from exactly what a reader will decode. **Why a target, and why 41 dB
  (drift)**: real codecs set I- and P-frame quantisers jointly. With a fixed q90 the anchors
  were 44-45 dB, well above the P plateau: the first P-frame inherited the anchor's quality and
  the chain then settled 1.2-1.7 dB lower within a few frames (pan 1.74 dB, objects 1.42 dB,
  static 1.16 dB worst first-P to last-P gap over 17-frame GOPs, 512x512, seed 0, 30 s). An
  anchor just below the plateau makes the first P-frame (which corrects the anchor's errors
  beyond the dead zone) about as good as the steady state: worst gap 0.52 dB on pan, 0.28
  objects (0.85 dB on mixed's shorter GOPs, where content also enters), every frame >= 41.1 dB.
  Measured targets: 42 dB gave 0.80 dB on pan and 1.40 on mixed, 41.5 dB 0.62 and 1.07. It
  also costs less: an anchor at 41 dB is ~0.5x the same frame as JPEG q90 (q90 AVIF was ~1.0x).
* **Intra blocks**: a block whose motion-compensated prediction is poor (mean squared error above
  ``intra_mse``: content entering the frame, an object uncovering background) is sent through
  the anchor codec instead (at the fixed ``anchor_quality``), as one image of the bounding box of
  such blocks with the other blocks filled flat grey (which costs the image codec almost
  nothing). Pixel-domain residuals of new texture cost several times what AVIF does; with intra
  blocks P-frames of pans and moving objects shrink by 25-55%. The quantised residual is still
  applied on top, so the error bound above holds for intra blocks too.
* **Frame intra** (mode decision per frame): a P-frame whose code is above
  ``frame_intra_bytes`` per pixel (0.15) is coded again as one intra image of the whole frame (the
  anchor codec at the anchors' target) plus the same residual quantiser, and the smaller code is
  kept; the image's quality search is skipped when its first try is already far larger
  (``FRAME_INTRA_HOPELESS``). Where content moves beyond the +-64 px search (the ``fast_pan`` preset at 512: 100 px per
  sampled frame) most blocks' predictions are poor but under ``intra_mse``, and their block
  residuals cost 90-105 KB a frame against ~35 KB as an image; that made fast_pan 1.37x JPEG q90.
  Same format and decoder (an intra mask of every block; decoding skips motion compensation:
  one image decode plus the level map); motion vectors and cell energies, hence token plans,
  are unchanged.
* **Per-block skip**: a 16x16 block whose quantised residual is all zero stores one bit and no
  values (static areas, and blocks whose motion explains them, cost almost nothing).
* **Entropy coding**: zstd over the skip bitmap, the motion vectors and the int8 values of the
  coded blocks. No hand-written entropy coder.
* **Residual energy** per token cell (mean squared residual before quantisation, grey levels
  squared) is stored with the code: token plans and rate control read it without decoding.

All arithmetic is integer, so CPU and CUDA give the same bytes.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
import zstandard
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from videomemory.codec.config import ANCHOR_FORMATS, BLOCK, ResidualConfig
from videomemory.codec.motion import as_tensor, pad_edges
from videomemory.errors import InvalidArgument

_LOSSLESS = "png"
_PCODE_MAGIC = b"VMP1"
# magic, height, width, cell px, step, dead zone, intra format, intra bytes, CRC-32 of what follows
_HEADER = struct.Struct("<4sHHHBBBII")


# --------------------------------------------------------------------------- anchors


@dataclass(frozen=True)
class AnchorCode:
    """A stored anchor image: its format and the encoded bytes."""

    format: str
    data: bytes = field(repr=False)

    def decode(self) -> np.ndarray:
        """The anchor as (H, W, 3) uint8 RGB, exactly as every reader decodes it."""
        try:
            with Image.open(io.BytesIO(self.data)) as img:
                return np.asarray(img.convert("RGB")).copy()
        except (OSError, ValueError, SyntaxError) as exc:  # what Pillow raises on bad image bytes
            raise InvalidArgument(f"stored {self.format} image is damaged: {exc}") from None

    @property
    def nbytes(self) -> int:
        """Stored size in bytes."""
        return len(self.data)


# libaom's AVIF bytes depend on its thread count (1 differs from 2; 2, 4 and 8 agree), and Pillow's
# default is one per core: a fixed count makes the stored code the same on every machine.
AVIF_ENCODE_THREADS = 2


def _encode_image(image: np.ndarray, fmt: str, quality: int) -> AnchorCode:
    """One (H, W, 3) uint8 image through Pillow in ``fmt`` at ``quality`` (ignored for PNG)."""
    options: dict[str, object] = {
        "avif": {"quality": quality, "subsampling": "4:4:4", "speed": 8, "max_threads": AVIF_ENCODE_THREADS},
        "jpeg": {"quality": quality, "subsampling": 0},
        "webp": {"quality": quality, "method": 4},
        "png": {"compress_level": 1},
    }[fmt]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, fmt.upper(), **options)
    return AnchorCode(fmt, buf.getvalue())


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two uint8 images (exact integer sum)."""
    d = (a.astype(np.int32) - b.astype(np.int32)).reshape(-1)
    return float(np.dot(d, d)) / d.size


QUALITY_RANGE = (50, 95)  # the anchor quality search stays within these (AVIF q100 is near-lossless, huge)
PSNR_WINDOW = 0.5  # dB: the search stops at a quality whose PSNR is within this above the target
_DB_PER_QUALITY = 0.15  # about what one Pillow AVIF quality point adds near q80 (the search's guesses)


def encode_anchor(
    image: np.ndarray, config: ResidualConfig = ResidualConfig(), lossless: bool = False,
    first: AnchorCode | None = None,
) -> AnchorCode:
    """Store an (H, W, 3) uint8 frame as an anchor (``lossless`` forces PNG).

    With ``config.anchor_psnr`` set, the quality is searched within ``QUALITY_RANGE`` for a PSNR
    from the target to ``PSNR_WINDOW`` above it: a try at ``config.anchor_quality``, then guesses
    from the PSNR seen, kept inside the bracket of qualities known to fail and to pass (1 encode
    on most frames, up to 5 on the hardest). When the window is missed it takes the lowest quality
    seen to pass, the highest in the range when none does. Encoder side only: readers decode the
    stored bytes, whatever quality made them. ``first``: the image already coded at
    ``config.anchor_quality``, the search's first try.
    """
    if lossless:
        return _encode_image(image, _LOSSLESS, 0)
    fmt, target = config.anchor_format, config.anchor_psnr
    if not target:
        return _encode_image(image, fmt, config.anchor_quality)
    tried: dict[int, tuple[AnchorCode, float]] = {}
    lo, hi = QUALITY_RANGE  # the answer is within [lo, hi]: below lo fails, hi passes once tried
    q = min(max(config.anchor_quality, lo), hi)
    while True:
        code = first if first is not None and q == config.anchor_quality else _encode_image(image, fmt, q)
        mse = _mse(code.decode(), image)
        db = math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
        tried[q] = (code, db)
        if db >= target:
            hi = q
            if db <= target + PSNR_WINDOW or db == math.inf:  # in the window, or lossless (flat frames)
                break
        else:
            lo = q + 1
        top = hi - 1 if hi in tried else hi  # untried qualities left in the bracket
        if lo > top:
            break
        guess = q + math.ceil((target + PSNR_WINDOW / 2 - db) / _DB_PER_QUALITY)
        q = guess if lo <= guess <= top else (lo + top) // 2
    return tried[hi][0] if hi in tried else tried[max(tried)][0]


# --------------------------------------------------------------------------- prediction

# The frame intra try gives up when its code with the image at the anchor quality the search starts
# from is this many times the P-frame's: the searched image's code was 0.78-1.21x that first try's
# (31 tries on five generated videos). Where the try cannot win this skips the quality search's
# encodes; on those videos no frame's code changed, and the coder's CPU time fell by 26% on
# `mixed` at 854x480 (11.2 to 8.3 s; the try had won none of its 12 frames), 37% on `cuts`, 50%
# on `objects`.
FRAME_INTRA_HOPELESS = 1.3
FEW_VECTORS = 3  # up to this many distinct vectors, compensate by shifted frame copies (2.5x faster for one)


def compensate(ref: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Motion-compensated prediction: each 16x16 block of ``ref`` (3, H, W) moved by its vector.

    ``vectors`` is (By, Bx, 2) (dy, dx): block (y, x) is predicted from ``ref`` at (y+dy, x+dx),
    with the frame edges replicated outward (the motion search's convention).
    """
    c, h, w = ref.shape
    by, bx = h // BLOCK, w // BLOCK
    v = vectors.to(device=ref.device, dtype=torch.int64)
    pad = int(v.abs().max()) if v.numel() else 0
    refp = pad_edges(ref, pad)  # (C, H+2p, W+2p)
    span = 2 * pad + 1
    codes = ((v[..., 0] + pad) * span + (v[..., 1] + pad)).reshape(-1)  # one integer per vector: a cheap 1-D unique
    uniq, which = torch.unique(codes, return_inverse=True)
    if len(uniq) <= FEW_VECTORS:
        # Static shots and pans use one or a few vectors: whole-frame shifted copies are much
        # cheaper than a per-pixel gather, and give the same bytes.
        out = None
        for k, code in enumerate(uniq.tolist()):
            dy, dx = code // span - pad, code % span - pad
            shifted = refp[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
            if out is None:
                out = shifted.clone()
                continue
            mask = (which == k).reshape(by, bx).repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)
            out = torch.where(mask, shifted, out)
        assert out is not None
        return out
    # One gather of whole 16x16 windows (a strided view of every window of the padded frame), not
    # of single pixels: about 2x faster on CPU, the same bytes.
    windows = refp.unfold(1, BLOCK, 1).unfold(2, BLOCK, 1)  # (C, H+2p-15, W+2p-15, 16, 16) view
    ys = (torch.arange(by, device=ref.device) * BLOCK + pad)[:, None] + v[..., 0]  # (By, Bx) window rows
    xs = (torch.arange(bx, device=ref.device) * BLOCK + pad)[None, :] + v[..., 1]  # (By, Bx) window cols
    blocks = windows[:, ys, xs]  # (C, By, Bx, 16, 16)
    return blocks.permute(0, 1, 3, 2, 4).reshape(c, h, w)


def cell_energy(residual: torch.Tensor, cell: int) -> torch.Tensor:
    """Mean squared residual per ``cell`` x ``cell`` token cell: (3, H, W) -> (H/cell, W/cell) float32."""
    sq = residual.to(torch.int64).square().sum(0)  # (H, W); integer sums are exact on every device
    h, w = sq.shape
    total = sq.reshape(h // cell, cell, w // cell, cell).sum((1, 3))
    return (total.to(torch.float64) / (3 * cell * cell)).to(torch.float32)


def quantise(residual: torch.Tensor, config: ResidualConfig) -> torch.Tensor:
    """Dead-zone uniform quantiser: int16 residual -> int16 levels (see the module docstring)."""
    offset = config.step - 1 - config.dead_zone
    mag = torch.div(residual.abs() + offset, config.step, rounding_mode="floor")
    return torch.sign(residual) * mag


def apply_residual(pred: torch.Tensor, levels: torch.Tensor, step: int) -> torch.Tensor:
    """Reconstruction: clamp(prediction + levels * step) as (3, H, W) uint8."""
    return (pred.to(torch.int16) + levels.to(torch.int16) * step).clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- P-frame codes


@dataclass(frozen=True)
class PCode:
    """Everything stored for one P-frame: motion, intra blocks, skip map, residual, cell energies."""

    vectors: np.ndarray  # (By, Bx, 2) int16, (dy, dx) px against the previous sampled frame
    intra: np.ndarray  # (By, Bx) bool: blocks taken from ``intra_image`` instead of the reference
    intra_image: AnchorCode | None  # the intra blocks' bounding box as an image (others grey)
    coded: np.ndarray  # (By, Bx) bool: blocks that carry residual values
    levels: np.ndarray = field(repr=False)  # (n_coded, 3, 16, 16) int8 quantised residual
    energy: np.ndarray = field(repr=False)  # (rows, cols) float32 residual energy per token cell
    step: int = 6
    dead_zone: int = 4

    @property
    def shape(self) -> tuple[int, int]:
        """Frame size (height, width) in px."""
        by, bx = self.coded.shape
        return by * BLOCK, bx * BLOCK

    def to_bytes(self, level: int = 3) -> bytes:
        """Serialise: a fixed header, the intra image, then zstd of masks, vectors, levels, energies."""
        h, w = self.shape
        cell = h // self.energy.shape[0]
        body = b"".join(
            [
                np.packbits(self.coded.reshape(-1)).tobytes(),
                np.packbits(self.intra.reshape(-1)).tobytes(),
                self.vectors.astype("<i2").tobytes(),
                self.levels.astype(np.int8).tobytes(),
                self.energy.astype("<f4").tobytes(),
            ]
        )
        intra = b"" if self.intra_image is None else self.intra_image.data
        fmt = 0 if self.intra_image is None else 1 + ANCHOR_FORMATS.index(self.intra_image.format)
        payload = intra + zstandard.ZstdCompressor(level=level).compress(body)
        return _HEADER.pack(_PCODE_MAGIC, h, w, cell, self.step, self.dead_zone, fmt, len(intra), zlib.crc32(payload)) + payload

    @classmethod
    def from_bytes(cls, data: bytes) -> "PCode":
        """Parse what ``to_bytes`` wrote; raises InvalidArgument on foreign or damaged bytes."""
        try:
            magic, h, w, cell, step, dead_zone, fmt, n_intra, crc = _HEADER.unpack_from(data)
        except struct.error:
            raise InvalidArgument("P-frame code is truncated (shorter than its header)") from None
        bad = not h or not w or not cell or h % cell or w % cell or h % BLOCK or w % BLOCK
        if magic != _PCODE_MAGIC or bad or fmt > len(ANCHOR_FORMATS) or not 3 <= step:
            raise InvalidArgument("bytes are not a videomemory P-frame code (bad header)")
        view = memoryview(data)  # slices of it are not copies (codes are tens of KB, a clip parses hundreds)
        if zlib.crc32(view[_HEADER.size :]) != crc:
            raise InvalidArgument("P-frame code is damaged: its checksum does not match (re-ingest the video)")
        by, bx = h // BLOCK, w // BLOCK
        intra_data = data[_HEADER.size : _HEADER.size + n_intra]
        if len(intra_data) != n_intra or (n_intra == 0) != (fmt == 0):
            raise InvalidArgument("P-frame code is damaged: its intra image is cut short")
        try:
            body = zstandard.ZstdDecompressor().decompress(view[_HEADER.size + n_intra :])
        except zstandard.ZstdError as exc:
            raise InvalidArgument(f"P-frame code is damaged: {exc}") from None
        n_mask = (by * bx + 7) // 8
        coded, intra = (
            np.unpackbits(np.frombuffer(body, np.uint8, n_mask, offset=o))[: by * bx].astype(bool).reshape(by, bx)
            for o in (0, n_mask)
        ) if len(body) >= 2 * n_mask else (None, None)
        if coded is None:
            raise InvalidArgument("P-frame code is damaged: its payload is cut short")
        n_coded = int(coded.sum())
        sizes = [2 * n_mask, by * bx * 2 * 2, n_coded * 3 * BLOCK * BLOCK, (h // cell) * (w // cell) * 4]
        if len(body) != sum(sizes):
            raise InvalidArgument("P-frame code is damaged: its payload has the wrong length")
        o1, o2, o3 = (int(x) for x in np.cumsum(sizes)[:3])
        vectors = np.frombuffer(body, "<i2", by * bx * 2, o1).reshape(by, bx, 2).astype(np.int16)
        levels = np.frombuffer(body, np.int8, sizes[2], o2).reshape(n_coded, 3, BLOCK, BLOCK)  # a read-only view of ``body``
        energy = np.frombuffer(body, "<f4", sizes[3] // 4, o3).reshape(h // cell, w // cell).astype(np.float32)
        image = AnchorCode(ANCHOR_FORMATS[fmt - 1], intra_data) if fmt else None
        return cls(vectors, intra, image, coded, levels, energy, step, dead_zone)


def _box(intra: torch.Tensor) -> tuple[int, int, int, int]:
    """Pixel bounding box (y0, y1, x0, x1) of the True blocks of a (By, Bx) mask."""
    ys, xs = torch.nonzero(intra, as_tuple=True)
    return int(ys.min()) * BLOCK, (int(ys.max()) + 1) * BLOCK, int(xs.min()) * BLOCK, (int(xs.max()) + 1) * BLOCK


def _block_mask(blocks: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """A (By, Bx) block mask expanded to pixels and cut to ``box``: (y1-y0, x1-x0) bool."""
    y0, y1, x0, x1 = box
    return blocks.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)[y0:y1, x0:x1]


def _paste_intra(pred: torch.Tensor, intra: torch.Tensor, image: AnchorCode) -> torch.Tensor:
    """The prediction with its intra blocks replaced by the decoded intra image."""
    y0, y1, x0, x1 = box = _box(intra)
    patch = as_tensor(image.decode(), pred.device)
    if tuple(patch.shape[1:]) != (y1 - y0, x1 - x0):
        raise InvalidArgument("P-frame code is damaged: its intra image does not fit its intra blocks")
    if bool(intra.all()):  # a frame-intra P-frame: the image is the whole prediction
        return patch
    out = pred.clone()
    out[:, y0:y1, x0:x1] = torch.where(_block_mask(intra, box), patch, pred[:, y0:y1, x0:x1])
    return out


def _block_mse(residual: torch.Tensor) -> torch.Tensor:
    """Mean squared residual per 16x16 block: (3, H, W) -> (By, Bx) float64 (exact integer sums)."""
    c, h, w = residual.shape
    sq = residual.to(torch.int64).square().reshape(c, h // BLOCK, BLOCK, w // BLOCK, BLOCK).sum((0, 2, 4))
    return sq.to(torch.float64) / (c * BLOCK * BLOCK)


def _finish(
    cur: torch.Tensor, pred: torch.Tensor, vectors: torch.Tensor, intra: torch.Tensor, intra_image: AnchorCode | None,
    energy: torch.Tensor, config: ResidualConfig,
) -> tuple[PCode, torch.Tensor]:
    """Quantise what is left after ``pred`` (intra blocks already pasted); return (code, reconstruction)."""
    residual = cur.to(torch.int16) - pred.to(torch.int16)
    levels = quantise(residual, config)
    rec = apply_residual(pred, levels, config.step)
    c, h, w = levels.shape
    blocks = levels.reshape(c, h // BLOCK, BLOCK, w // BLOCK, BLOCK).permute(1, 3, 0, 2, 4)  # (By, Bx, 3, 16, 16)
    coded = blocks.flatten(2).ne(0).any(-1)  # (By, Bx)
    code = PCode(
        vectors=vectors.to(torch.int16).cpu().numpy(),
        intra=intra.cpu().numpy(),
        intra_image=intra_image,
        coded=coded.cpu().numpy(),
        levels=blocks[coded].to(torch.int8).cpu().numpy(),
        energy=energy.cpu().numpy(),
        step=config.step,
        dead_zone=config.dead_zone,
    )
    return code, rec


def code_pframe(
    cur: torch.Tensor, ref_rec: torch.Tensor, vectors: torch.Tensor, config: ResidualConfig, cell: int = 32
) -> tuple[PCode, torch.Tensor]:
    """Code ``cur`` (3, H, W) uint8 against the reconstructed previous frame; return (code, reconstruction)."""
    pred = compensate(ref_rec, vectors)
    residual = cur.to(torch.int16) - pred.to(torch.int16)  # (3, H, W)
    energy = cell_energy(residual, cell)  # what the motion could not explain, before intra blocks
    intra = _block_mse(residual) > config.intra_mse  # (By, Bx)
    intra_image = None
    if bool(intra.any()):
        box = _box(intra)
        y0, y1, x0, x1 = box
        crop = torch.where(_block_mask(intra, box), cur[:, y0:y1, x0:x1], torch.full_like(cur[:, y0:y1, x0:x1], 128))
        intra_image = _encode_image(crop.permute(1, 2, 0).cpu().numpy(), config.anchor_format, config.anchor_quality)
        pred = _paste_intra(pred, intra, intra_image)
    code, rec = _finish(cur, pred, vectors, intra, intra_image, energy, config)
    if config.frame_intra and not bool(intra.all()):
        # Mode decision for the whole frame: where motion explains too little (content moving
        # beyond the search window), the frame coded as one intra image (the anchor codec, at the
        # anchors' target quality) plus the same residual is smaller than block residuals. Same
        # format, same decoder; the motion vectors and energies (the token plan) are unchanged.
        size = len(code.to_bytes(config.zstd_level))
        if size > config.frame_intra_bytes * cur.shape[1] * cur.shape[2]:
            whole = torch.ones_like(intra)
            frame = cur.permute(1, 2, 0).cpu().numpy()
            probe = _encode_image(frame, config.anchor_format, config.anchor_quality)
            alt, alt_rec = _finish(cur, _paste_intra(pred, whole, probe), vectors, whole, probe, energy, config)
            alt_size = len(alt.to_bytes(config.zstd_level))
            if alt_size >= FRAME_INTRA_HOPELESS * size:
                return code, rec
            image = encode_anchor(frame, config, first=probe)
            if image is not probe:
                alt, alt_rec = _finish(cur, _paste_intra(pred, whole, image), vectors, whole, image, energy, config)
                alt_size = len(alt.to_bytes(config.zstd_level))
            if alt_size < size:
                return alt, alt_rec
    return code, rec


# --------------------------------------------------------------------------- decoding (readers)
#
# Readers rebuild frames on the CPU in numpy, in the (H, W, 3) layout images leave the service
# in: 1.6x faster than the encoder's (3, H, W) torch ops on a 512x512 P-frame (1.6 against 2.6 ms
# in the same run, 1 ms of it the intra image's decode), and a clip's first frame is a chain of up
# to 16 of them. Every step is an integer copy, add or clamp, so the bytes equal the encoder's
# reconstruction (tests compare the two on every device).


def predict(ref: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``compensate`` for readers: (H, W, 3) uint8 ``ref`` moved by (By, Bx, 2) vectors, same bytes."""
    h, w, _ = ref.shape
    by, bx = h // BLOCK, w // BLOCK
    v = vectors.astype(np.intp)
    pad = int(np.abs(v).max()) if v.size else 0
    refp = np.pad(ref, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else ref
    rows = refp.reshape(refp.shape[0], -1)  # a pixel is 3 bytes of its row
    windows = sliding_window_view(rows, (BLOCK, 3 * BLOCK))[:, ::3]  # (Hp-15, Wp-15, 16, 48) view
    ys = (np.arange(by) * BLOCK + pad)[:, None] + v[..., 0]
    xs = (np.arange(bx) * BLOCK + pad)[None, :] + v[..., 1]
    return windows[ys, xs].transpose(0, 2, 1, 3).reshape(h, w, 3)


def _blocks(image: np.ndarray) -> np.ndarray:
    """A writable (By, Bx, 16, 16, 3) view of an (H, W, 3) image's blocks."""
    h, w, _ = image.shape
    return image.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3).swapaxes(1, 2)


def decode_pframe(ref: np.ndarray, code: PCode) -> np.ndarray:
    """Rebuild one P-frame, (H, W, 3) uint8, from the rebuilt previous frame and its code (bit-exact)."""
    if code.shape != ref.shape[:2]:
        raise InvalidArgument(f"P-frame code is {code.shape[1]}x{code.shape[0]}, the frame before it is "
                              f"{ref.shape[1]}x{ref.shape[0]}")
    whole = code.intra_image is not None and bool(code.intra.all())
    pred = predict(ref, code.vectors) if not whole else None
    if code.intra_image is not None:
        ys, xs = np.nonzero(code.intra)
        y0, x0 = int(ys.min()), int(xs.min())
        patch = code.intra_image.decode()
        if patch.shape[:2] != ((int(ys.max()) + 1 - y0) * BLOCK, (int(xs.max()) + 1 - x0) * BLOCK):
            raise InvalidArgument("P-frame code is damaged: its intra image does not fit its intra blocks")
        if pred is None:  # a frame-intra P-frame: the image is the whole prediction
            pred = patch
        else:
            _blocks(pred)[ys, xs] = _blocks(patch)[ys - y0, xs - x0]
    assert pred is not None
    blocks = _blocks(pred)
    coded = blocks[code.coded].astype(np.int16)  # (n_coded, 16, 16, 3)
    coded += code.levels.astype(np.int16).transpose(0, 2, 3, 1) * code.step
    blocks[code.coded] = np.clip(coded, 0, 255)
    return pred


def rebuild(anchor: AnchorCode | np.ndarray, p_codes: list[PCode] | tuple[PCode, ...]) -> np.ndarray:
    """The frame reached by applying ``p_codes`` in order to ``anchor``, as (H, W, 3) uint8."""
    frame = anchor.decode() if isinstance(anchor, AnchorCode) else np.ascontiguousarray(anchor)
    for code in p_codes:
        frame = decode_pframe(frame, code)
    return frame


# --------------------------------------------------------------------------- GOPs and re-synthesis


@dataclass(frozen=True)
class GopCode:
    """A stored GOP: the anchor and the P-codes of the frames after it, in order."""

    anchor: AnchorCode
    p_codes: tuple[PCode, ...] = ()

    def __len__(self) -> int:
        return 1 + len(self.p_codes)

    def frame(self, k: int) -> np.ndarray:
        """Rebuild frame ``k`` of the GOP (0 is the anchor) as (H, W, 3) uint8."""
        if not 0 <= k < len(self):
            raise InvalidArgument(f"frame {k} is outside this GOP of {len(self)} frames")
        return rebuild(self.anchor, self.p_codes[:k])

    def frames(self) -> list[np.ndarray]:
        """Every frame of the GOP, rebuilt in one pass."""
        out = [self.anchor.decode()]
        for code in self.p_codes:
            out.append(decode_pframe(out[-1], code))
        return out

    def reanchor(self, k: int) -> "GopCode":
        """A GOP that starts at frame ``k``: its rebuilt image becomes a lossless anchor.

        Only the first frame changes role; the later P-codes reference frame k as rebuilt, which
        the lossless anchor reproduces exactly, so they stay valid unchanged.
        """
        if k == 0:
            return self
        return GopCode(encode_anchor(self.frame(k), lossless=True), self.p_codes[k:])

    @property
    def nbytes(self) -> int:
        """Stored size of the anchor and every P-code, in bytes."""
        return self.anchor.nbytes + sum(len(c.to_bytes()) for c in self.p_codes)
