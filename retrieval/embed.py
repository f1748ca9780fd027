"""Image (and text) embeddings for moment search: one ``Embedder`` protocol, two implementations.

Every embedder maps images, and where it can text, to L2-normalised float32 rows, so that cosine
similarity is a plain inner product (what the FAISS index computes). ``name`` is stored next to
the vectors: vectors from different embedders are never compared.

``DescriptorEmbedder`` ("descriptor-v1") is the offline default. It needs no weights at all: it
is a hand-made visual descriptor, computed with torch on the CPU, deterministic. Its job is
image-to-moment search: a query frame decoded from the source video at its own resolution
(320x240 ... 1920x1080) must find the stored anchor of the same shot, which is a lossy AVIF of a
*different* frame (up to a GOP earlier: a pan of tens of px, sprites moved) resized, aspect
ignored, onto the 512x512 model grid. So the descriptor:

* resizes every image to 128x128 with an area filter, **aspect ignored**: the anchor was
  stretched onto the grid, the query was not; both end up on the same square canvas. Colour
  statistics and coarse gradients use a 64x64 version of it, fine texture the 128x128 one;
* describes it with five blocks, concatenated after each is L2-normalised and weighted, then
  L2-normalised again, so that the cosine of two descriptors is a weighted mean of per-block
  cosines. Histograms get a square root first (Hellinger: a few dominant bins no longer drown
  the rest of the distribution):

  ========== ==== =====================================================================
  block      dims what and why
  ========== ==== =====================================================================
  layout       48 mean opponent colour (L - 0.5, R-G, Y-B) on a 4x4 grid of overlapping
                  24 px windows at 64x64 (a 50 px pan moves content less than half a
                  window); signed, so the cosine sees dark vs bright and the hues
  intensity    16 global histogram of L, soft bins: greyscale photos differ here
  colour       36 joint histogram of 4 lightness levels x (grey + 8 hues), soft bins;
                  pixels with little chroma go to "grey", so grey photos agree
  hog         128 gradient orientation (8 unsigned bins, magnitude-weighted) on the same
                  4x4 overlapping grid, minus its mean over the grid: where edges are
                  denser, or turned otherwise, than on average
  texture      24 global histograms of gradient magnitude (8 log bins) at 128x128 and at
                  64x64, and of orientation (8 bins): how busy the texture is, at which
                  scale, which way (grass vs gravel vs text vs a flat sky); pan-invariant
  ========== ==== =====================================================================

  252 dimensions in all. The global histograms do not move when the camera pans or a sprite
  crosses; the coarse grids tell apart photos with similar statistics. Colour alone fails on
  greyscale footage (camera, coins, moon, page, text are all grey), hence the gradient blocks.
  A uniform picture (gravel, a wall) has an almost zero layout and centred HOG, which would be
  all noise and sprites once normalised: those two blocks are divided by ``max(norm, floor)``
  instead, so a block only weighs as much as it has structure.

Weights and floors were chosen on generated shots of 17 distinct scikit-image photos (9 grey) at
320x240 to 1280x720: a frame 8 s into the shot, panned 50-65 px, 2-3 moving sprites, JPEG noise,
against the AVIF anchor of the shot's first frame on the 512x512 grid. Every query ranks its own
shot first, with a cosine margin of at least 0.03 over the best other photo (median 0.16).

What it cannot do: it has no semantics. It matches *the same picture* (same shot, other frames,
other resolution, codec noise), not "a dog" against another dog; it is misled by cuts to similar
colour and texture, and it cannot read text queries at all (``embed_texts`` raises
``FailedPrecondition``). Text queries, and semantic image similarity, need
``TransformersEmbedder``: a CLIP or SigLIP model from a local directory (``--embedder PATH``).

``TransformersEmbedder`` loads any model with ``get_image_features`` (and ``get_text_features``
for text) through ``transformers``, from a local directory or the hub cache only: nothing is
ever downloaded. ``transformers`` is imported only when one is built, so importing this module
stays cheap.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from videomemory.errors import FailedPrecondition, InvalidArgument

__all__ = ["Embedder", "DescriptorEmbedder", "TransformersEmbedder", "load_embedder", "DESCRIPTOR_NAME"]

#: ``name`` of the offline default embedder.
DESCRIPTOR_NAME = "descriptor-v1"

_TEXT_NEEDS_MODEL = (
    "text queries need a text-capable embedder: pass --embedder PATH_OR_NAME with a local CLIP or "
    "SigLIP model directory (the offline default 'descriptor-v1' only compares images)"
)


@runtime_checkable
class Embedder(Protocol):
    """Maps images (and maybe texts) to L2-normalised float32 vectors; cosine = inner product."""

    name: str  # stable identifier stored next to the vectors
    dim: int  # vector dimension
    supports_text: bool  # True when embed_texts works

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(H, W, 3) uint8 RGB images of any sizes -> (N, dim) float32, rows of unit norm."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) float32, rows of unit norm; ``FailedPrecondition`` when unsupported."""
        ...


def _check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate a batch of (H, W, 3) uint8 RGB images; return them as a list."""
    out = []
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise InvalidArgument(f"image {i} has shape {arr.shape}; expected (H, W, 3) RGB")
        if arr.dtype != np.uint8:
            raise InvalidArgument(f"image {i} has dtype {arr.dtype}; expected uint8 RGB")
        out.append(arr)
    return out


def _l2_normalise(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``x`` (N, D) scaled to unit L2 norm (an all-zero row stays zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)


# --------------------------------------------------------------------------- descriptor


def _soft_bins(values: torch.Tensor, n_bins: int, circular: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft (linear) binning of ``values`` given in bin units: (lower bin, upper bin, upper weight).

    A value v splits between bins floor(v - 0.5) and the next, so a value on a bin centre goes
    wholly to that bin. Soft bins keep a histogram stable when codec noise nudges values across
    a bin edge. Past the outer centres a value goes wholly to the outer bin (unless circular).
    """
    pos = values - 0.5
    lo = torch.floor(pos)
    frac = pos - lo
    lo = lo.long()
    hi = lo + 1
    if circular:
        return lo % n_bins, hi % n_bins, frac
    frac = frac.masked_fill(lo < 0, 1.0).masked_fill(hi > n_bins - 1, 0.0)
    return lo.clamp(0, n_bins - 1), hi.clamp(0, n_bins - 1), frac


def _histogram(terms: list[tuple[torch.Tensor, torch.Tensor]], n_bins: int) -> torch.Tensor:
    """Per-row histograms from (bin (N, P), weight (N, P)) pairs -> (N, n_bins), divided by P.

    One ``bincount`` over the whole batch: no (N, n_bins, P) intermediate, single-threaded and
    deterministic.
    """
    n, p = terms[0][0].shape
    offset = torch.arange(n).unsqueeze(1) * n_bins  # (N, 1): row n owns bins [n*B, (n+1)*B)
    index = torch.cat([(bins + offset).flatten() for bins, _ in terms])
    weight = torch.cat([w.flatten() for _, w in terms])
    return torch.bincount(index, weights=weight, minlength=n * n_bins).view(n, n_bins) / p


def _soft_histogram(values: torch.Tensor, weights: torch.Tensor, n_bins: int, circular: bool = False) -> torch.Tensor:
    """Soft-binned histogram of (N, P) ``values`` in bin units, weighted -> (N, n_bins), divided by P."""
    lo, hi, frac = _soft_bins(values, n_bins, circular)
    return _histogram([(lo, weights * (1 - frac)), (hi, weights * frac)], n_bins)


def _gradients(lum: torch.Tensor, angle: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Central-difference gradient magnitude, and unsigned orientation in [0, pi), of (N, 1, H, W)."""
    p = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) * 0.5
    gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) * 0.5
    mag = torch.sqrt(gx * gx + gy * gy)[:, 0]  # (N, H, W)
    return mag, torch.remainder(torch.atan2(gy, gx), math.pi)[:, 0] if angle else None


class DescriptorEmbedder:
    """Offline default: a 252-d colour layout + colour/texture histogram + HOG descriptor (no weights)."""

    name = DESCRIPTOR_NAME
    supports_text = False

    # The geometry below is part of what "descriptor-v1" means (vectors are stored under that
    # name): changing any of it needs a new name. The pooling windows assume 64x64 and GRID 4.
    SIZE = 128  # side of the square canvas every image is resized to (aspect ignored)
    GRID = 4  # layout and HOG cells per side
    ORIENT = 8  # unsigned gradient orientation bins
    LUM_BINS = 16  # intensity histogram bins
    LUM_LEVELS = 4  # lightness levels of the joint colour histogram
    HUES = 8  # hue bins of the joint colour histogram
    MAG_BINS = 8  # log gradient-magnitude bins per scale
    # Block weights: the cosine of two descriptors is about the weight^2-weighted mean of the
    # per-block cosines. Layout (where things are) and texture (what the surface is like) separate photos
    # best; HOG cells are the most disturbed by sprites and pans, so HOG weighs less.
    WEIGHTS = {"layout": 1.0, "intensity": 0.7, "colour": 0.5, "hog": 0.5, "texture": 1.0}
    # Norm floors of the signed blocks (typical norms: layout 0.05-1.6, centred HOG 0.07-0.4).
    # A layout below 0.3 is a nearly uniform picture whose normalised layout would be noise.
    FLOORS = {"layout": 0.3, "hog": 0.05}

    def __init__(self) -> None:
        g, o = self.GRID, self.ORIENT
        self.dims = {
            "layout": 3 * g * g,
            "intensity": self.LUM_BINS,
            "colour": self.LUM_LEVELS * (1 + self.HUES),
            "hog": o * g * g,
            "texture": 2 * self.MAG_BINS + o,
        }
        self.dim = sum(self.dims.values())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Always raises ``FailedPrecondition``: the descriptor only compares images."""
        raise FailedPrecondition(_TEXT_NEEDS_MODEL)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(H, W, 3) uint8 RGB images of any sizes -> (N, 252) float32, rows of unit norm."""
        imgs = _check_images(images)
        if not imgs:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            rgb = self._canvas(imgs)  # (N, 3, S, S) in [0, 1]
            blocks = self._blocks(rgb)
            w = self.WEIGHTS
            parts = []
            for k in self.dims:
                v = blocks[k].flatten(1)
                parts.append(v / v.norm(dim=1, keepdim=True).clamp_min(self.FLOORS.get(k, 1e-12)) * w[k])
            vec = _l2_normalise(torch.cat(parts, dim=1))
        return np.ascontiguousarray(vec.numpy(), dtype=np.float32)

    def _canvas(self, imgs: list[np.ndarray]) -> torch.Tensor:
        """Area-resize every image to S x S (aspect ignored) -> (N, 3, S, S) float32 in [0, 1]."""
        s = self.SIZE
        out = torch.empty(len(imgs), 3, s, s, dtype=torch.float32)
        # One resize per distinct input size: frames of one video share theirs.
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(imgs):
            by_shape.setdefault(img.shape, []).append(i)
        for shape, same in by_shape.items():
            # At most ~16M values (64 MB of float32) at a time: a batch of 1080p frames is large.
            step = max(1, (1 << 24) // math.prod(shape))
            for start in range(0, len(same), step):
                idx = same[start : start + step]
                batch = torch.from_numpy(np.stack([imgs[i] for i in idx]))  # (B, H, W, 3) uint8
                x = batch.permute(0, 3, 1, 2).to(torch.float32)  # (B, 3, H, W)
                if shape[0] >= s and shape[1] >= s:
                    x = F.adaptive_avg_pool2d(x, (s, s))  # area filter, exact for integer factors
                else:
                    x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
                out[idx] = x / 255.0
        return out

    def _blocks(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        """The five descriptor blocks of (N, 3, S, S) RGB in [0, 1], before weighting."""
        n = rgb.shape[0]
        lum128 = rgb.mean(1, keepdim=True)  # (N, 1, 128, 128)
        small = F.avg_pool2d(rgb, 2)  # (N, 3, 64, 64): colour statistics need no more
        r, g, b = small[:, 0], small[:, 1], small[:, 2]  # (N, 64, 64)
        lum = (r + g + b) / 3.0
        o1 = (r - g) / 2.0  # red-green, in [-0.5, 0.5]
        o2 = (r + g - 2.0 * b) / 4.0  # yellow-blue, in [-0.5, 0.5]

        # Layout: overlapping windows (24 px at stride 16 on 64x64) blur a pan across cells.
        # Signed values (no square root): L - 0.5 keeps dark vs bright, chroma keeps its hue.
        opp = torch.stack([lum - 0.5, o1, o2], dim=1)  # (N, 3, 64, 64), zero for mid grey
        layout = F.avg_pool2d(opp, 24, stride=16, padding=4, count_include_pad=False)  # (N, 3, 4, 4)

        flat_l = lum.flatten(1)  # (N, P)
        ones = torch.ones_like(flat_l)
        intensity = _soft_histogram(flat_l * self.LUM_BINS, ones, self.LUM_BINS)  # (N, 16)

        # Joint colour histogram: lightness level x (grey + hue); chroma moves a pixel's weight
        # from "grey" to its hue, so greyscale photos agree whatever their (meaningless) hue.
        chroma = torch.sqrt(o1 * o1 + o2 * o2).flatten(1)  # (N, P), up to ~0.6
        hue = torch.atan2(o2, o1).flatten(1)  # (N, P) in (-pi, pi]
        colourful = torch.clamp((chroma - 0.03) / 0.07, 0.0, 1.0)  # 0 below 0.03, 1 above 0.10
        l_lo, l_hi, l_frac = _soft_bins(flat_l * self.LUM_LEVELS, self.LUM_LEVELS)
        h_lo, h_hi, h_frac = _soft_bins((hue + math.pi) / (2 * math.pi) * self.HUES, self.HUES, circular=True)
        k = 1 + self.HUES  # bin 0 is grey, 1..8 the hues
        hue_terms = [(torch.zeros_like(h_lo), 1 - colourful), (1 + h_lo, colourful * (1 - h_frac)), (1 + h_hi, colourful * h_frac)]
        colour = _histogram(
            [(lev * k + hb, lw * hw) for lev, lw in ((l_lo, 1 - l_frac), (l_hi, l_frac)) for hb, hw in hue_terms],
            self.LUM_LEVELS * k,
        )  # (N, 36)

        # Gradients at 64x64 for HOG and the coarse texture; magnitudes at 128x128 for the fine
        # texture (a fine orientation histogram was tried: it adds nothing to the 64x64 one).
        mag64, ang64 = _gradients(lum[:, None])  # (N, 64, 64) each
        mag128, _ = _gradients(lum128, angle=False)  # (N, 128, 128)

        o = self.ORIENT
        lo, hi, frac = _soft_bins(ang64.flatten(1) / math.pi * o, o, circular=True)
        m = mag64.flatten(1)
        orient = torch.zeros(n, o, m.shape[1])  # (N, 8, P): each pixel's magnitude in its bins
        orient.scatter_add_(1, lo[:, None], (m * (1 - frac))[:, None])
        orient.scatter_add_(1, hi[:, None], (m * frac)[:, None])
        orient = orient.view(n, o, *mag64.shape[-2:])  # (N, 8, 64, 64)
        hog = F.avg_pool2d(orient, 24, stride=16, padding=4, count_include_pad=False).sqrt()  # (N, 8, 4, 4)
        # Centred over the cells: the image-wide orientation mix is in ``texture``; here only
        # where edges are denser, or differently oriented, than on average counts.
        hog = hog - hog.mean((2, 3), keepdim=True)

        # Log-magnitude bins: 2^-9 (flat, codec noise) .. 2^-2 (a hard edge) per pixel step.
        def mag_hist(mag: torch.Tensor) -> torch.Tensor:
            m = mag.flatten(1)
            pos = (torch.log2(m + 2.0**-10) + 9.0) / 7.0 * (self.MAG_BINS - 1) + 0.5
            return _soft_histogram(pos, torch.ones_like(m), self.MAG_BINS)  # (N, 8)

        texture = torch.cat([mag_hist(mag128), mag_hist(mag64), orient.mean((2, 3))], dim=1)  # (N, 24)

        return {
            "layout": layout,
            "intensity": intensity.sqrt(),
            "colour": colour.sqrt(),
            "hog": hog,
            "texture": texture.sqrt(),
        }


# --------------------------------------------------------------------------- transformers


def _features(out: object, keys: tuple[str, ...]) -> torch.Tensor:
    """The embedding tensor of a ``get_*_features`` result.

    transformers < 5 returns the projected embeddings as a tensor; transformers 5 returns a
    ``BaseModelOutputWithPooling`` whose ``pooler_output`` holds them (its first element is the
    last hidden state, which is *not* the embedding). Other families name them ``image_embeds``
    or ``text_embeds``.
    """
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", *keys):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    raise FailedPrecondition(
        f"the model's feature method returned {type(out).__name__} without a pooled embedding "
        "(pooler_output); use a CLIP or SigLIP family model"
    )


class TransformersEmbedder:
    """A CLIP / SigLIP family model from a local directory (or the hub cache), never downloaded."""

    def __init__(self, path_or_name: str, device: str = "auto", batch_size: int = 32) -> None:
        from videomemory.codec.config import resolve_device

        if batch_size < 1:
            raise InvalidArgument(f"embedder batch size {batch_size} must be >= 1")
        self.batch_size = batch_size
        self.device = resolve_device(device)
        # fp16 halves memory and time on a GPU; CPU fp16 matmuls are slow or missing, so fp32.
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model, self.image_processor, self.tokenizer = self._load(path_or_name)
        self.model.to(device=self.device, dtype=self.dtype).eval()
        # A saved config may ask for tuples (return_dict=False), whose order differs by family;
        # output objects name the embedding (see _features).
        self.model.config.return_dict = True
        ident = os.path.basename(os.path.normpath(path_or_name)) if os.path.isdir(path_or_name) else path_or_name
        self.name = f"hf:{ident}"
        self.model_type = getattr(self.model.config, "model_type", "")
        self.supports_text = hasattr(self.model, "get_text_features") and self.tokenizer is not None
        self.dim = self._dim()

    @staticmethod
    def _load(path_or_name: str) -> tuple[object, object, object | None]:
        """Model, image processor and tokenizer (None if absent), from local files only."""
        try:
            from transformers import AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - installed wherever a model is used
            raise FailedPrecondition(f"--embedder needs the transformers package (pip install transformers): {exc}") from None

        is_dir = os.path.isdir(path_or_name)
        try:
            model = AutoModel.from_pretrained(path_or_name, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:  # missing files, unknown model type
            if is_dir:  # the directory is there but is not a usable model: say why
                where = f"the directory {os.path.abspath(path_or_name)!r} holds no loadable model ({exc})"
            else:
                where = (
                    f"{path_or_name!r} is neither a local directory (none at {os.path.abspath(path_or_name)!r}) "
                    "nor a model in the Hugging Face cache"
                )
            raise FailedPrecondition(
                f"no embedding model: {where}. Nothing is ever downloaded: provide a local CLIP or SigLIP "
                "model directory (save one with `model.save_pretrained(DIR)` and `processor.save_pretrained(DIR)` "
                "where the hub is reachable) and pass --embedder DIR"
            ) from None
        if not hasattr(model, "get_image_features"):
            raise FailedPrecondition(
                f"model at {path_or_name!r} ({type(model).__name__}) has no get_image_features; use a CLIP or SigLIP model"
            )
        image_processor, tokenizer = None, None
        try:
            processor = AutoProcessor.from_pretrained(path_or_name, local_files_only=True)
            image_processor = getattr(processor, "image_processor", None)
            tokenizer = getattr(processor, "tokenizer", None)
        except Exception:  # noqa: BLE001 - any failure here only means: load the parts one by one
            pass
        if image_processor is None:
            try:
                image_processor = AutoImageProcessor.from_pretrained(path_or_name, local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - reported to the user with its reason
                raise FailedPrecondition(
                    f"model at {path_or_name!r} has no image processor (preprocessor_config.json): save it with "
                    f"`processor.save_pretrained(DIR)` ({type(exc).__name__}: {exc})"
                ) from None
        if tokenizer is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(path_or_name, local_files_only=True)
            except Exception:  # noqa: BLE001 - no tokenizer: the embedder does images only
                tokenizer = None
        return model, image_processor, tokenizer

    def _dim(self) -> int:
        """Embedding dimension, from one dummy image through the model.

        Config fields do not say it reliably across families (CLIP projects to
        ``projection_dim``, SigLIP returns its pooled hidden state, ALIGN projects only text),
        and one small forward pass at load time is cheap next to loading the weights.
        """
        return int(self.embed_images([np.zeros((32, 32, 3), np.uint8)]).shape[1])

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(H, W, 3) uint8 RGB images of any sizes -> (N, dim) float32, rows of unit norm."""
        imgs = _check_images(images)
        rows = []
        with torch.inference_mode():
            for start in range(0, len(imgs), self.batch_size):
                chunk = [np.ascontiguousarray(a) for a in imgs[start : start + self.batch_size]]
                inputs = self.image_processor(images=chunk, return_tensors="pt")  # pixel_values (B, 3, h, w)
                # Everything the processor made goes in: SigLIP2's NaFlex also needs the patch
                # mask and spatial shapes. Pixels take the model's dtype, integer tensors stay.
                kwargs = {
                    k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                    for k, v in inputs.items()
                    if isinstance(v, torch.Tensor)
                }
                out = self.model.get_image_features(**kwargs)
                rows.append(_l2_normalise(_features(out, ("image_embeds",)).float()).cpu())
        return self._stack(rows)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (N, dim) float32, rows of unit norm (``FailedPrecondition`` without a text tower)."""
        if not self.supports_text:
            raise FailedPrecondition(f"embedder {self.name} has no text tower or tokenizer; " + _TEXT_NEEDS_MODEL)
        texts = [str(t) for t in texts]
        # SigLIP was trained on text padded to max_length (64): other padding changes its vectors.
        padding = "max_length" if self.model_type in ("siglip", "siglip2") else True
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                enc = self.tokenizer(chunk, padding=padding, truncation=True, return_tensors="pt", **self._max_length())
                kwargs = {"input_ids": enc["input_ids"].to(self.device)}
                if "attention_mask" in enc and self.model_type not in ("siglip", "siglip2"):
                    kwargs["attention_mask"] = enc["attention_mask"].to(self.device)
                out = self.model.get_text_features(**kwargs)
                rows.append(_l2_normalise(_features(out, ("text_embeds",)).float()).cpu())
        return self._stack(rows)

    def _max_length(self) -> dict[str, int]:
        """Truncation length: the text tower's positions (a tokenizer's default may be huge)."""
        text_config = getattr(self.model.config, "text_config", None)
        n = getattr(text_config, "max_position_embeddings", None)
        return {"max_length": int(n)} if isinstance(n, int) and n > 0 else {}

    def _stack(self, rows: list[torch.Tensor]) -> np.ndarray:
        """Concatenate per-batch (B, dim) rows into one (N, dim) float32 array."""
        if not rows:
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        return np.ascontiguousarray(torch.cat(rows).numpy(), dtype=np.float32)


def load_embedder(spec: str | None = None, device: str = "auto") -> Embedder:
    """None, "" or "descriptor" -> ``DescriptorEmbedder``; anything else -> ``TransformersEmbedder(spec)``."""
    if spec is None or spec.strip() in ("", "descriptor", DESCRIPTOR_NAME):
        return DescriptorEmbedder()
    return TransformersEmbedder(spec, device=device)
