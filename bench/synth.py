"""Generated H.264 test videos with known ground truth, made from real photographs.

``write_video`` renders a list of ``Shot``s (a photo as background, an optional pan and zoom,
pasted sprites, fades) and encodes them with libx264 (yuv420p, no B-frames); it returns a
``GroundTruth`` that says, for every frame, exactly what was drawn. ``preset`` builds the shot
lists used by the tests and benchmarks (``PRESETS``).

Ground-truth conventions:

* Times. Frame ``i`` has presentation time ``time_s``; decoded ``pts * time_base`` equals it
  (to the container's time-base rounding, well under 1 ms). Constant frame rate: ``i / fps``
  with an exact time base. Variable frame rate: time base 1/90000 s, frame durations drawn by a
  seeded RNG among 1/(2 fps), 1/fps and 2/fps (mean 1/fps); times are whole ticks.
* Shots. Shot ``k`` covers ``[start_k, start_k + duration_s)`` where ``start_k`` is the sum of
  the earlier durations; a frame belongs to the shot containing its time (a frame straddling a
  boundary belongs to the shot in which it starts). Every shot after the first starts with a hard
  cut; ``cuts_s`` holds the exact time of the first frame of each new shot. ``t`` below is the
  frame's time minus its shot's ``start_k``.
* Pan. ``Shot.pan = (vx, vy)`` is the velocity of the content in px/s. The frame's integer offset
  is ``(ox, oy) = (round(vx * t), round(vy * t))`` (Python ``round``) and the pixel at ``(x, y)``
  shows what pixel ``(x - ox, y - oy)`` showed at ``t = 0``: content moves by ``+offset``. The
  background is the photo scaled to cover the frame, extended by mirrored tiling, so a pan of any
  length never runs out of picture.
* Zoom. ``Shot.zoom = z`` (> -1) scales the background about the frame centre by
  ``scale = (1 + z) ** t`` (z = 0.2: 20% larger every second; z < 0 zooms out), applied after the
  pan: with ``c = (w / 2, h / 2)`` and pixel centres at ``+0.5``, the pixel at ``p`` shows what
  the point ``(p - c) / scale + c - offset`` showed at ``t = 0`` (bilinear; zooming out, the
  background is blurred first against aliasing). Content at distance ``r`` from the centre moves
  radially at ``r * ln(1 + z)`` px/s. ``FrameTruth.scale`` records each frame's scale; ``zoom = 0``
  renders exactly as before zooms existed (whole pixels, no resampling).
* Sprites. A ``Sprite`` is a photo resized to ``size``; its top-left corner is at
  ``(round(x0 + vx * t), round(y0 + vy * t))``. It is absent before ``appear_s``; later sprites
  are drawn over earlier ones. ``FrameTruth.boxes`` lists the visible ones, clipped to the frame
  (a sprite wholly outside is left out), in drawing order.
* Fades. ``alpha = min(1, t / fade_in_s, (duration_s - t) / fade_out_s)`` clipped to [0, 1]
  (terms with a zero fade are left out); the frame is multiplied by ``alpha`` (fade to black).
* Pixels. No noise unless ``noise`` > 0, so a static stretch is static up to codec noise. H.264
  at crf 18 plus yuv420p chroma subsampling means decoded pixels are close to, never exactly, the
  rendered ones (typically 1-3 levels mean absolute error, more on sharp colour edges).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

# scikit-image data images that ship inside the package (no download) and load offline here.
# "cat" and "chelsea" are the same picture: a cut between them is no cut.
PHOTOS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
# Well-textured photos the presets use as backgrounds (no large flat or black areas).
BACKGROUNDS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "immunohistochemistry", "brick")
# Photos the presets use for sprites (distinct, colourful or high-contrast).
SPRITE_PHOTOS: tuple[str, ...] = ("coffee", "astronaut", "rocket", "chelsea", "coins", "camera")

PRESETS: tuple[str, ...] = ("static", "pan", "fast_pan", "objects", "cuts", "fade", "mixed")

MIN_SIDE = 48  # px, each of width and height
MAX_SIDE = 1920  # px, each of width and height
VFR_TIME_BASE = Fraction(1, 90000)
_EPS = 1e-9  # s; slack for float comparisons of times


@dataclass(frozen=True)
class Sprite:
    """A photo pasted as a moving rectangle; position ``start + velocity * t`` (px, px/s)."""

    image: str
    size: tuple[int, int]  # (w, h) px
    start: tuple[float, float]  # (x, y) of the top-left corner at the shot start
    velocity: tuple[float, float]  # px/s
    appear_s: float = 0.0  # seconds after the shot start; absent before


@dataclass(frozen=True)
class Shot:
    """One shot: a photo background, optionally panning, with sprites and fades."""

    duration_s: float
    image: str
    pan: tuple[float, float] = (0.0, 0.0)  # content velocity, px/s
    sprites: tuple[Sprite, ...] = ()
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    zoom: float = 0.0  # background scale (1 + zoom) ** t about the frame centre; 0: none


@dataclass(frozen=True)
class FrameTruth:
    """What one source frame shows."""

    index: int
    time_s: float
    shot: int
    offset: tuple[int, int]  # (ox, oy): content moved by this much since the shot start
    boxes: tuple[tuple[int, int, int, int], ...]  # visible sprites (x, y, w, h), clipped
    alpha: float  # fade brightness, 1 = full
    scale: float = 1.0  # zoom: the background's scale against the shot start (1 = none)


@dataclass
class GroundTruth:
    """Everything known about a generated video."""

    path: str
    width: int
    height: int
    fps: float
    vfr: bool
    frames: list[FrameTruth]
    shots: list[Shot]
    cuts_s: list[float] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Nominal length: the sum of the shot durations (the last frame shows until then)."""
        return float(sum(s.duration_s for s in self.shots))

    def frame_at(self, t: float) -> FrameTruth:
        """The frame on screen at time ``t``: the last frame with ``time_s <= t`` (1 ns slack)."""
        if t < -_EPS:
            raise ValueError(f"time {t} s is before the first frame")
        k = bisect_right(self.frames, t + _EPS, key=lambda f: f.time_s) - 1
        return self.frames[max(k, 0)]

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists; adds ``duration_s``)."""
        d = asdict(self)
        d["duration_s"] = self.duration_s
        return json.loads(json.dumps(d))

    def save_json(self, path: str | Path) -> None:
        """Write ``to_dict()`` as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, d: dict) -> "GroundTruth":
        """Rebuild a ``GroundTruth`` from ``to_dict()`` output."""
        shots = [
            Shot(
                duration_s=s["duration_s"],
                image=s["image"],
                pan=tuple(s["pan"]),
                sprites=tuple(
                    Sprite(p["image"], tuple(p["size"]), tuple(p["start"]), tuple(p["velocity"]), p["appear_s"]) for p in s["sprites"]
                ),
                fade_in_s=s["fade_in_s"],
                fade_out_s=s["fade_out_s"],
                zoom=s.get("zoom", 0.0),
            )
            for s in d["shots"]
        ]
        frames = [
            FrameTruth(f["index"], f["time_s"], f["shot"], tuple(f["offset"]), tuple(tuple(b) for b in f["boxes"]), f["alpha"],
                       f.get("scale", 1.0))
            for f in d["frames"]
        ]
        return cls(d["path"], d["width"], d["height"], d["fps"], d["vfr"], frames, shots, list(d["cuts_s"]))

    @classmethod
    def load_json(cls, path: str | Path) -> "GroundTruth":
        """Read a file written by ``save_json``."""
        return cls.from_dict(json.loads(Path(path).read_text()))


# --- images -----------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _photo(name: str) -> np.ndarray:
    """The named scikit-image photo as float32 RGB in [0, 1], (H, W, 3)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    import skimage.data
    from skimage import img_as_float32

    img = img_as_float32(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize float RGB to (h, w) with anti-aliasing; return uint8."""
    from skimage.transform import resize

    if img.shape[:2] != (h, w):
        img = resize(img, (h, w), order=1, anti_aliasing=h < img.shape[0] or w < img.shape[1], preserve_range=True)
    out = np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out.flags.writeable = False  # shared through the caches below
    return out


@lru_cache(maxsize=64)
def _sprite_pixels(name: str, w: int, h: int) -> np.ndarray:
    """The named photo resized to a w x h sprite, uint8 RGB."""
    return _resize(_photo(name), h, w)


@lru_cache(maxsize=8)
def _cover(name: str, w: int, h: int) -> np.ndarray:
    """The named photo scaled (aspect kept) so that it just covers a w x h frame, uint8 RGB."""
    img = _photo(name)
    ph, pw = img.shape[:2]
    scale = max(w / pw, h / ph)
    return _resize(img, max(h, round(ph * scale)), max(w, round(pw * scale)))


def _axis_window(n_img: int, n_out: int, offsets: list[int]) -> tuple[slice | None, int, int]:
    """Plan one axis of the background canvas for the given offsets along it.

    Returns (crop of the photo or None for periodic tiling, base, period): the window for
    offset ``o`` starts at ``(base - o) % period`` in the canvas (period 0 = no wrap).
    """
    b = (n_img - n_out) // 2  # the photo's centre is on screen at t = 0
    lo, hi = min(offsets), max(offsets)
    if b - hi >= 0 and b - lo + n_out <= n_img:
        first = b - hi
        return slice(first, b - lo + n_out), b - first, 0
    return None, b, 2 * n_img


def _extend(img: np.ndarray, axis: int, length: int) -> np.ndarray:
    """Extend ``img`` along ``axis`` by mirrored tiling (period 2n) to ``length`` samples."""
    period = np.concatenate([img, np.flip(img, axis=axis)], axis=axis)
    reps = math.ceil(length / period.shape[axis])
    tiled = np.concatenate([period] * reps, axis=axis)
    return np.ascontiguousarray(tiled[:length] if axis == 0 else tiled[:, :length])


def _taps(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps of sample positions on an axis of ``n`` pixels extended by mirrored tiling
    (period 2n, as ``_extend``): the two indices and the weight of the second."""
    lo = np.floor(pos)
    frac = (pos - lo).astype(np.float32)

    def mirror(i: np.ndarray) -> np.ndarray:
        i = np.mod(i.astype(np.int64), 2 * n)
        return np.where(i < n, i, 2 * n - 1 - i)

    return mirror(lo), mirror(lo + 1), frac


class _ShotRenderer:
    """Renders the frames of one shot from a canvas built once."""

    def __init__(self, shot: Shot, w: int, h: int, times: list[float]) -> None:
        self.shot, self.w, self.h = shot, w, h
        img = _cover(shot.image, w, h)
        self.sprites = [(s, _sprite_pixels(s.image, *s.size)) for s in shot.sprites]
        if shot.zoom:  # resampled per frame from the photo itself (``_zoomed``)
            self.image = img.astype(np.float32)
            self.blurred: dict[float, np.ndarray] = {}
            self.bx, self.by = (img.shape[1] - w) // 2, (img.shape[0] - h) // 2
            return
        offs = [self.offset(t) for t in times] or [(0, 0)]
        crop_y, self.by, self.py = _axis_window(img.shape[0], h, [o[1] for o in offs])
        crop_x, self.bx, self.px = _axis_window(img.shape[1], w, [o[0] for o in offs])
        canvas = img
        canvas = canvas[crop_y] if crop_y is not None else _extend(canvas, 0, self.py + h)
        canvas = canvas[:, crop_x] if crop_x is not None else _extend(canvas, 1, self.px + w)
        self.canvas = canvas

    def offset(self, t: float) -> tuple[int, int]:
        """Integer pan offset at shot time t."""
        vx, vy = self.shot.pan
        return int(round(vx * t)), int(round(vy * t))

    def scale(self, t: float) -> float:
        """Zoom scale at shot time t."""
        return float((1.0 + self.shot.zoom) ** t) if self.shot.zoom else 1.0

    def _zoomed(self, ox: int, oy: int, scale: float) -> np.ndarray:
        """The background at a pan offset and zoom scale, bilinear from the mirror-tiled photo."""
        src = self.image
        if scale < 1.0:  # zooming out: low-pass first, in steps of 0.05 in sigma (cached)
            sigma = round(0.5 * (1.0 / scale - 1.0) / 0.05) * 0.05
            if sigma > 0:
                if sigma not in self.blurred:
                    from scipy.ndimage import gaussian_filter

                    self.blurred[sigma] = gaussian_filter(src, (sigma, sigma, 0), mode="reflect")
                src = self.blurred[sigma]
        cx, cy = self.w / 2, self.h / 2
        # Axis-aligned scale and shift: bilinear is separable (rows, then columns).
        i0, i1, wy = _taps((np.arange(self.h) + 0.5 - cy) / scale + cy - 0.5 - oy + self.by, src.shape[0])
        rows = src[i0] * (1 - wy)[:, None, None] + src[i1] * wy[:, None, None]
        j0, j1, wx = _taps((np.arange(self.w) + 0.5 - cx) / scale + cx - 0.5 - ox + self.bx, src.shape[1])
        out = rows[:, j0] * (1 - wx)[None, :, None] + rows[:, j1] * wx[None, :, None]
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def alpha(self, t: float) -> float:
        """Fade brightness at shot time t."""
        a = 1.0
        if self.shot.fade_in_s > 0:
            a = min(a, t / self.shot.fade_in_s)
        if self.shot.fade_out_s > 0:
            a = min(a, (self.shot.duration_s - t) / self.shot.fade_out_s)
        return float(min(1.0, max(0.0, a)))

    def render(self, t: float) -> tuple[np.ndarray, tuple[int, int], tuple[tuple[int, int, int, int], ...], float]:
        """Pixels (uint8 RGB), offset, visible sprite boxes and alpha at shot time t (scale: ``scale(t)``)."""
        ox, oy = self.offset(t)
        if self.shot.zoom:
            frame = self._zoomed(ox, oy, self.scale(t))
        else:
            y0 = self.by - oy if self.py == 0 else (self.by - oy) % self.py
            x0 = self.bx - ox if self.px == 0 else (self.bx - ox) % self.px
            frame = self.canvas[y0 : y0 + self.h, x0 : x0 + self.w].copy()
        boxes = []
        for s, pix in self.sprites:
            if t < s.appear_s - _EPS:
                continue
            sx = int(round(s.start[0] + s.velocity[0] * t))
            sy = int(round(s.start[1] + s.velocity[1] * t))
            sw, sh = s.size
            x1, y1 = max(sx, 0), max(sy, 0)
            x2, y2 = min(sx + sw, self.w), min(sy + sh, self.h)
            if x2 <= x1 or y2 <= y1:
                continue
            frame[y1:y2, x1:x2] = pix[y1 - sy : y2 - sy, x1 - sx : x2 - sx]
            boxes.append((x1, y1, x2 - x1, y2 - y1))
        a = self.alpha(t)
        if a < 1.0:
            frame = (frame.astype(np.float32) * a + 0.5).astype(np.uint8)
        return frame, (ox, oy), tuple(boxes), a


# --- writing ----------------------------------------------------------------------------------


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Validate (w, h): even, each within [MIN_SIDE, MAX_SIDE]."""
    w, h = (int(v) for v in size)
    if (w, h) != tuple(size):
        raise ValueError(f"size must be whole pixels, got {size}")
    if w % 2 or h % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {w}x{h}")
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise ValueError(f"width and height must each be within {MIN_SIDE}..{MAX_SIDE} px, got {w}x{h}")
    return w, h


def _check_shots(shots: list[Shot] | tuple[Shot, ...]) -> list[Shot]:
    """Validate the shot list (non-empty, positive durations, known photos, sane sprites)."""
    shots = list(shots)
    if not shots:
        raise ValueError("need at least one shot")
    for k, s in enumerate(shots):
        if not s.duration_s > 0:
            raise ValueError(f"shot {k}: duration_s must be > 0, got {s.duration_s}")
        if s.fade_in_s < 0 or s.fade_out_s < 0:
            raise ValueError(f"shot {k}: fades must be >= 0")
        if not (s.zoom > -1 and math.isfinite(s.zoom)):
            raise ValueError(f"shot {k}: zoom must be a finite number > -1, got {s.zoom}")
        _photo(s.image)
        for sp in s.sprites:
            _photo(sp.image)
            if sp.size[0] < 1 or sp.size[1] < 1:
                raise ValueError(f"shot {k}: sprite size must be positive, got {sp.size}")
    return shots


def _frame_ticks(duration_s: float, fps: float, vfr: bool, seed: int) -> tuple[list[int], Fraction, Fraction]:
    """Presentation times in time-base ticks, the time base and the nominal rate."""
    rate = Fraction(fps).limit_denominator(1001)
    if not vfr:
        n = max(1, math.ceil(duration_s * fps - 1e-6))
        return list(range(n)), 1 / rate, rate
    base = float(1 / VFR_TIME_BASE) / fps
    choices = np.array([round(base / 2), round(base), round(2 * base)], dtype=np.int64)
    if choices[0] < 1:
        raise ValueError(f"fps {fps} is too high for variable frame rate on a 1/90000 s time base")
    rng = np.random.default_rng([seed, 1])
    end = duration_s * float(1 / VFR_TIME_BASE)
    ticks, t = [], 0
    while t < end - 1e-3:
        ticks.append(t)
        t += int(rng.choice(choices, p=[0.4, 0.4, 0.2]))
    return ticks, VFR_TIME_BASE, rate


def write_video(
    path: str | Path,
    shots: list[Shot] | tuple[Shot, ...],
    size: tuple[int, int] = (512, 512),
    fps: float = 30.0,
    *,
    crf: int = 18,
    vfr: bool = False,
    seed: int = 0,
    noise: float = 0.0,
    x264_preset: str = "medium",
) -> GroundTruth:
    """Render ``shots`` and encode them as H.264 (libx264, yuv420p, no B-frames); return the truth."""
    w, h = _check_size(size)
    shots = _check_shots(shots)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be within 0..51, got {crf}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")

    starts = np.cumsum([0.0] + [s.duration_s for s in shots[:-1]]).tolist()
    total = float(sum(s.duration_s for s in shots))
    ticks, time_base, rate = _frame_ticks(total, fps, vfr, seed)
    times = [float(k * time_base) for k in ticks]
    shot_of = [bisect_right(starts, t + _EPS) - 1 for t in times]
    per_shot: list[list[float]] = [[] for _ in shots]
    for t, k in zip(times, shot_of):
        per_shot[k].append(t - starts[k])
    empty = [k for k, ts in enumerate(per_shot) if not ts]
    if empty:
        raise ValueError(f"shot(s) {empty} are too short to hold a frame at {fps:g} fps")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_rng = np.random.default_rng([seed, 2])
    frames: list[FrameTruth] = []
    cuts: list[float] = []
    renderer: _ShotRenderer | None = None
    gop = max(1, round(2 * fps))
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(
            "libx264", rate=rate, options={"crf": str(crf), "bf": "0", "g": str(gop), "preset": x264_preset}
        )
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # Set the encoder's time base and give frames pts in it (not frame.time_base: see bad_inputs).
        stream.codec_context.time_base = time_base
        for i, (tick, t, k) in enumerate(zip(ticks, times, shot_of)):
            if renderer is None or renderer.shot is not shots[k] or (frames and frames[-1].shot != k):
                renderer = _ShotRenderer(shots[k], w, h, per_shot[k])
                if i > 0:
                    cuts.append(t)
            pixels, offset, boxes, alpha = renderer.render(t - starts[k])
            if noise > 0:
                pixels = np.clip(pixels + noise_rng.normal(0.0, noise, pixels.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = tick
            for packet in stream.encode(frame):
                out.mux(packet)
            frames.append(FrameTruth(i, t, k, offset, boxes, alpha, renderer.scale(t - starts[k])))
        for packet in stream.encode():
            out.mux(packet)
    return GroundTruth(str(path), w, h, float(fps), bool(vfr), frames, shots, cuts)


# --- presets ----------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, pool: tuple[str, ...], n: int, avoid: tuple[str, ...] = ()) -> list[str]:
    """n distinct names from pool (not in avoid when possible), in a seeded order."""
    names = [p for p in pool if p not in avoid] or list(pool)
    order = rng.permutation(len(names))
    return [names[i] for i in order[:n]]


def _split(duration_s: float, fractions: list[float], fps: float) -> list[float]:
    """Durations proportional to ``fractions`` summing to ``duration_s``, boundaries on frame times."""
    bounds, acc = [0.0], 0.0
    for f in fractions[:-1]:
        acc += f * duration_s
        bounds.append(round(acc * fps) / fps)
    bounds.append(duration_s)
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _objects(rng: np.random.Generator, w: int, h: int, duration_s: float, background: str) -> tuple[Sprite, ...]:
    """Sprites for an objects shot (see ``preset``): one in view from the start, one popping in
    at half time, one gliding through around 3/4 of the shot, and for long shots one more gliding
    through every 6 s, so that something moves most of the time."""
    s = w / 512
    names = _pick(rng, SPRITE_PHOTOS, len(SPRITE_PHOTOS), avoid=(background,))
    # (time at which the sprite is at a random point of the frame's central area, appear_s)
    schedule = [(0.0, 0.0), (0.75 * duration_s, 0.0), (duration_s / 2, duration_s / 2)]
    schedule += [(t, 0.0) for t in np.arange(6.0, duration_s, 6.0) if min(abs(t - duration_s / 2), abs(t - 0.75 * duration_s)) >= 3.0]
    angle0 = rng.uniform(0, 2 * np.pi)
    sprites = []
    for j, (t_ref, appear) in enumerate(schedule):
        side = int(np.clip(round(rng.uniform(64, 96) * s), 4, min(w, h) // 3))
        sw, sh = side, int(np.clip(round(side / rng.uniform(0.75, 1.33)), 4, h // 2))
        speed = rng.uniform(30, 80) * s
        angle = angle0 + j * 2 * np.pi / 3 + rng.uniform(-0.4, 0.4)
        v = (float(speed * np.cos(angle)), float(speed * np.sin(angle)))
        cx = rng.uniform(0.15 * w, 0.85 * w - sw) if w - sw > 0.3 * w else (w - sw) / 2
        cy = rng.uniform(0.15 * h, 0.85 * h - sh) if h - sh > 0.3 * h else (h - sh) / 2
        start = (float(cx - v[0] * t_ref), float(cy - v[1] * t_ref))
        sprites.append(Sprite(names[j % len(names)], (sw, sh), start, v, float(appear)))
    return tuple(sprites)


def preset(name: str, size: tuple[int, int] = (512, 512), duration_s: float = 12.0, seed: int = 0, fps: float = 30.0) -> list[Shot]:
    """The shot list of preset ``name`` (one of ``PRESETS``); durations sum to ``duration_s``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    w, h = _check_size(size)
    s = w / 512
    rng = np.random.default_rng([seed, 0])
    sign = lambda: float(rng.choice([-1.0, 1.0])) if seed else 1.0  # noqa: E731 - seed 0: +x, +y

    if name == "static":
        return [Shot(duration_s, _pick(rng, BACKGROUNDS, 1)[0])]
    if name == "pan":
        return [Shot(duration_s, _pick(rng, BACKGROUNDS, 1)[0], pan=(48 * s * sign(), 16 * s * sign()))]
    if name == "fast_pan":
        return [Shot(duration_s, _pick(rng, BACKGROUNDS, 1)[0], pan=(200 * s * sign(), 0.0))]
    if name == "objects":
        bg = _pick(rng, BACKGROUNDS, 1)[0]
        return [Shot(duration_s, bg, sprites=_objects(rng, w, h, duration_s, bg))]
    if name == "cuts":
        photos = _pick(rng, BACKGROUNDS, 4)
        gentle = [(0.0, 0.0), (16 * s, 0.0), (0.0, 12 * s), (-12 * s, 8 * s)]
        pans = [gentle[i] for i in rng.permutation(4)]
        return [Shot(d, p, pan=v) for d, p, v in zip(_split(duration_s, [0.25] * 4, fps), photos, pans)]
    if name == "fade":
        a, b = _pick(rng, BACKGROUNDS, 2)
        d1, d2 = _split(duration_s, [0.5, 0.5], fps)
        fade = min(1.0, d1 / 4)
        return [Shot(d1, a, pan=(8 * s, 0.0), fade_in_s=fade, fade_out_s=fade), Shot(d2, b)]
    # mixed: static, pan, objects, then a brisk pan (40 px per sampled frame at 2 fps, inside the
    # +-64 px search window); every boundary is a hard cut. fast_pan is the beyond-window class.
    photos = _pick(rng, BACKGROUNDS, 4)
    d = _split(duration_s, [0.25] * 4, fps)
    return [
        Shot(d[0], photos[0]),
        Shot(d[1], photos[1], pan=(48 * s * sign(), 16 * s * sign())),
        Shot(d[2], photos[2], sprites=_objects(rng, w, h, d[2], photos[2])),
        Shot(d[3], photos[3], pan=(80 * s * sign(), 0.0)),
    ]


def write_preset(
    name: str,
    path: str | Path,
    size: tuple[int, int] = (512, 512),
    duration_s: float = 12.0,
    fps: float = 30.0,
    vfr: bool = False,
    seed: int = 0,
) -> GroundTruth:
    """Write preset ``name`` to ``path`` and return its ground truth."""
    return write_video(path, preset(name, size, duration_s, seed=seed, fps=fps), size, fps, vfr=vfr, seed=seed)
