"""The evaluation suite's videos: four content classes with cut, event and motion ground truth.

Each video is a list of ``synth.Shot``s rendered by ``synth.write_video`` (real scikit-image
photographs, H.264), so everything drawn is known exactly. The classes (``CLASSES``) follow the
codec's content classes (``codec.stats``) and the issue's recipes:

* ``static``: a security camera. One fixed shot; 2-3 "people" (narrow sprites) walk in from the
  left or right edge at 25-45 px/s at spread-out times. Events: each person entering.
* ``low-motion``: even seeds are *slides* (two document photos, ``page`` then ``text``, one cut
  half way; on each slide two bullet labels pop in, and on the second slide a label is replaced
  by another at the same place); odd seeds are a *talking head* (a head-sized sprite drifting at
  2-8 px/s over a background with a slow hand-held drift, a caption that appears at 30% and is
  replaced at 65%). Events: every label appearing or changing.
* ``high-motion``: even seeds are a *fast pan* (120-220 px/s in a random direction, up to
  110 px per sampled frame, beyond the +-64 px search window for the faster ones) with one object
  popping in and one fast object entering from an edge; seeds 1, 5, 9, ... are a *zoom* (a photo
  zoomed into at 1.2-1.35x per second with a 30-60 px/s pan for the first half, then one cut to
  another photo zoomed out of at the same rate: content at the frame's edge moves 45-80 px/s
  radially on top of the pan), with one object popping in during the zoom-in and one fast object
  entering during the zoom-out; seeds 3, 7, ... are *fast objects* (three sprites crossing the
  frame at 150-300 px/s over a slowly panning background). Events: objects entering or popping in.
* ``high-cut``: an edited montage, shots of 1-3 s (on the source frame grid) from 14 photos,
  never the same photo twice in a row, each with a gentle pan; every second shot of at least
  1.5 s has an object popping in half way. Events: those objects.

Sprites are screen-space overlays (they do not move with a pan), as captions and labels are.

Ground truth, per video (``EvalVideo``):

* cuts: ``GroundTruth.cuts_s`` (time of the first frame of each new shot);
* events (``Event``): a sprite that becomes visible after its shot starts. Its time is the first
  source frame at which at least half of its area is inside the frame (at or after ``appear_s``),
  its box the visible part then; ``box_at`` gives its box at any later time (None before it
  appears, outside its shot, or when it is wholly outside the frame), with the renderer's own
  rounding. Sprites on screen from the first frame of their shot are not events (they come with
  the cut or were there all along). ``kind`` is ``"enter"`` (an object entering or popping in)
  or ``"label"`` (a label appearing or replaced);
* motion: each shot's pan (content velocity, px/s), zoom (``synth.Shot.zoom``: scale
  ``(1 + zoom) ** t`` about the frame centre) and each sprite's velocity, in the shots.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from videomemory.bench import synth
from videomemory.bench.synth import BACKGROUNDS, SPRITE_PHOTOS, GroundTruth, Shot, Sprite

#: Content classes, in table order (the codec's classes, ``codec.stats.CLASSES``).
CLASSES: tuple[str, ...] = ("static", "low-motion", "high-motion", "high-cut")
#: Photos a montage cuts between (backgrounds, a few more well-textured ones and a plain one, the
#: moon, whose cuts can cost under gamma). Each a different picture: skimage's "cat" is "chelsea"
#: (a montage cut between them was no cut at all).
MONTAGE_PHOTOS: tuple[str, ...] = BACKGROUNDS + ("moon", "clock", "grass", "gravel", "retina", "colorwheel")
SOURCE_FPS = 10.0  # frames/s of the generated files: enough for 2 fps sampling, quick to write
_EPS = 1e-9


@dataclass(frozen=True)
class Event:
    """A ground-truth event: sprite ``sprite`` of shot ``shot`` becomes visible at ``time_s``."""

    time_s: float
    kind: str  # "enter" or "label"
    shot: int
    sprite: int
    box: tuple[int, int, int, int]  # (x, y, w, h) visible at time_s


@dataclass
class EvalVideo:
    """One video of the suite: its class, its file and everything known about it."""

    name: str
    content_class: str
    recipe: str
    seed: int
    truth: GroundTruth
    labels: dict[tuple[int, int], str] = field(default_factory=dict)  # (shot, sprite) -> event kind
    events: list[Event] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The video file."""
        return self.truth.path

    def shot_start(self, k: int) -> float:
        """Start time of shot ``k`` in seconds."""
        return float(sum(s.duration_s for s in self.truth.shots[:k]))

    def box_at(self, event: Event, t: float) -> tuple[int, int, int, int] | None:
        """The event's sprite box (x, y, w, h), clipped to the frame, on screen at time ``t``."""
        f = self.truth.frame_at(t)
        if f.shot != event.shot:
            return None
        return _sprite_box(self.truth.shots[event.shot].sprites[event.sprite], f.time_s - self.shot_start(event.shot),
                           self.truth.width, self.truth.height)

    def summary(self) -> dict:
        """JSON-friendly ground truth: class, recipe, cuts, events and motion per shot."""
        return {
            "name": self.name,
            "class": self.content_class,
            "recipe": self.recipe,
            "seed": self.seed,
            "duration_s": self.truth.duration_s,
            "cuts_s": self.truth.cuts_s,
            "events": [asdict(e) for e in self.events],
            "shots": [{"duration_s": s.duration_s, "image": s.image, "pan_px_s": list(s.pan), "zoom_per_s": s.zoom,
                       "sprite_velocities_px_s": [list(p.velocity) for p in s.sprites]} for s in self.truth.shots],
        }


def _sprite_box(s: Sprite, t: float, w: int, h: int) -> tuple[int, int, int, int] | None:
    """Visible box of sprite ``s`` at shot time ``t`` (the renderer's rounding), or None."""
    if t < s.appear_s - _EPS:
        return None
    sx = int(round(s.start[0] + s.velocity[0] * t))
    sy = int(round(s.start[1] + s.velocity[1] * t))
    x1, y1 = max(sx, 0), max(sy, 0)
    x2, y2 = min(sx + s.size[0], w), min(sy + s.size[1], h)
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1, y1, x2 - x1, y2 - y1)


def find_events(truth: GroundTruth, labels: dict[tuple[int, int], str]) -> list[Event]:
    """Events of a rendered video: sprites that become at least half visible after their shot starts."""
    starts = np.cumsum([0.0] + [s.duration_s for s in truth.shots[:-1]]).tolist()
    events = []
    for k, shot in enumerate(truth.shots):
        frames = [f for f in truth.frames if f.shot == k]
        for j, sp in enumerate(shot.sprites):
            full = sp.size[0] * sp.size[1]
            for n, f in enumerate(frames):
                box = _sprite_box(sp, f.time_s - starts[k], truth.width, truth.height)
                if box is not None and box[2] * box[3] >= 0.5 * full:
                    if n > 0:
                        events.append(Event(f.time_s, labels.get((k, j), "enter"), k, j, box))
                    break
    return sorted(events, key=lambda e: e.time_s)


# --- recipes ------------------------------------------------------------------------------------


def _on_grid(t: float, fps: float = SOURCE_FPS) -> float:
    """``t`` rounded to the source frame grid."""
    return round(t * fps) / fps


def _walker(rng: np.random.Generator, w: int, h: int, s: float, t_in: float, speed: tuple[float, float]) -> Sprite:
    """A narrow sprite ("a person") whose centre crosses the left or right edge at ``t_in``."""
    sw, sh = max(4, round(rng.uniform(24, 36) * s)), max(8, round(rng.uniform(56, 80) * s))
    v = rng.uniform(*speed) * s
    y = float(rng.uniform(0.35 * h, 0.92 * h - sh))
    name = str(rng.choice(SPRITE_PHOTOS))
    if rng.random() < 0.5:  # from the left, moving right
        return Sprite(name, (sw, sh), (-sw / 2 - v * t_in, y), (v, 0.0))
    return Sprite(name, (sw, sh), (w - sw / 2 + v * t_in, y), (-v, 0.0))


def _static(rng: np.random.Generator, w: int, h: int, d: float) -> tuple[str, list[Shot], dict]:
    s = w / 512
    n = int(rng.integers(2, 4))
    times = [d * (0.08 + 0.72 * (j + rng.uniform(0.1, 0.9)) / n) for j in range(n)]
    walkers = tuple(_walker(rng, w, h, s, t, (25, 45)) for t in times)
    return "camera", [Shot(d, str(rng.choice(BACKGROUNDS)), sprites=walkers)], {}


def _label(rng: np.random.Generator, size: tuple[int, int], at: tuple[float, float], appear: float, avoid: str = "") -> Sprite:
    """A still label (a bullet, a caption) popping in at ``appear`` s."""
    names = [p for p in SPRITE_PHOTOS if p != avoid]
    return Sprite(str(rng.choice(names)), size, at, (0.0, 0.0), appear)


def _slides(rng: np.random.Generator, w: int, h: int, d: float) -> tuple[str, list[Shot], dict]:
    d1 = _on_grid(d / 2)
    size = (max(8, round(0.45 * w)), max(8, round(0.1 * h)))
    shots, labels = [], {}
    for k, (photo, dur) in enumerate((("page", d1), ("text", d - d1))):
        t1, t2 = sorted(rng.uniform(0.15, 0.85, 2) * dur)
        t1, t2 = _on_grid(t1), _on_grid(max(t2, t1 + 1.0))
        first = _label(rng, size, (0.1 * w, 0.2 * h), t1)
        # Slide 1: a second bullet below; slide 2: the bullet is replaced in place (a label change).
        at = (0.1 * w, 0.38 * h) if k == 0 else first.start
        second = _label(rng, size, at, min(t2, dur - 0.6), avoid=first.image)
        shots.append(Shot(dur, photo, sprites=(first, second)))
        labels[(k, 0)] = labels[(k, 1)] = "label"
    return "slides", shots, labels


def _talking_head(rng: np.random.Generator, w: int, h: int, d: float) -> tuple[str, list[Shot], dict]:
    s = w / 512
    sign = lambda: float(rng.choice([-1.0, 1.0]))  # noqa: E731
    drift = (sign() * rng.uniform(3, 6) * s, sign() * rng.uniform(2, 4) * s)
    hw, hh = round(0.3 * w), round(0.4 * h)
    head = Sprite(str(rng.choice(["astronaut", "chelsea"])), (hw, hh), ((w - hw) / 2, 0.18 * h),
                  (sign() * rng.uniform(4, 8) * s, sign() * rng.uniform(2, 4) * s))
    size = (max(8, round(0.5 * w)), max(8, round(0.08 * h)))
    cap1 = _label(rng, size, (0.25 * w, 0.84 * h), _on_grid(0.3 * d), avoid=head.image)
    cap2 = _label(rng, size, cap1.start, _on_grid(0.65 * d), avoid=cap1.image)
    bg = str(rng.choice([b for b in BACKGROUNDS if b != head.image]))
    return "talking-head", [Shot(d, bg, pan=drift, sprites=(head, cap1, cap2))], {(0, 1): "label", (0, 2): "label"}


def _object(rng: np.random.Generator, w: int, h: int, s: float) -> tuple[int, int]:
    side = int(np.clip(round(rng.uniform(64, 96) * s), 8, min(w, h) // 3))
    return side, int(np.clip(round(side / rng.uniform(0.75, 1.33)), 8, h // 2))


def _crossing(rng: np.random.Generator, w: int, h: int, s: float, t_in: float, speed: float) -> Sprite:
    """An object whose centre crosses a random edge at ``t_in`` moving into the frame."""
    sw, sh = _object(rng, w, h, s)
    edge = int(rng.integers(4))
    cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
    if edge == 0:  # left -> right
        v, c = (speed, rng.uniform(-0.2, 0.2) * speed), (0.0, cy)
    elif edge == 1:  # right -> left
        v, c = (-speed, rng.uniform(-0.2, 0.2) * speed), (float(w), cy)
    elif edge == 2:  # top -> down
        v, c = (rng.uniform(-0.2, 0.2) * speed, speed), (cx, 0.0)
    else:  # bottom -> up
        v, c = (rng.uniform(-0.2, 0.2) * speed, -speed), (cx, float(h))
    start = (float(c[0] - sw / 2 - v[0] * t_in), float(c[1] - sh / 2 - v[1] * t_in))
    return Sprite(str(rng.choice(SPRITE_PHOTOS)), (sw, sh), start, (float(v[0]), float(v[1])))


def _fast_pan(rng: np.random.Generator, w: int, h: int, d: float) -> tuple[str, list[Shot], dict]:
    s = w / 512
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(120, 220) * s
    pan = (float(speed * np.cos(angle)), float(speed * np.sin(angle)))
    sw, sh = _object(rng, w, h, s)
    pop = Sprite(str(rng.choice(SPRITE_PHOTOS)), (sw, sh), (rng.uniform(0.2 * w, 0.8 * w - sw), rng.uniform(0.2 * h, 0.8 * h - sh)),
                 (float(rng.uniform(-40, 40) * s), float(rng.uniform(-40, 40) * s)), _on_grid(0.35 * d))
    fast = _crossing(rng, w, h, s, 0.7 * d, rng.uniform(150, 250) * s)
    return "fast-pan", [Shot(d, str(rng.choice(BACKGROUNDS)), pan=pan, sprites=(pop, fast))], {}


def _zoom(rng: np.random.Generator, w: int, h: int, d: float) -> tuple[str, list[Shot], dict]:
    """Zoom into one photo (with a pan) for the first half, cut, zoom out of another for the rest."""
    s = w / 512
    d1 = _on_grid(d / 2)
    rate = float(rng.uniform(1.2, 1.35))  # scale factor per second
    a, b = (str(x) for x in rng.choice(BACKGROUNDS, 2, replace=False))
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(30, 60) * s
    pan = (float(speed * np.cos(angle)), float(speed * np.sin(angle)))
    sw, sh = _object(rng, w, h, s)
    pop = Sprite(str(rng.choice(SPRITE_PHOTOS)), (sw, sh), (rng.uniform(0.2 * w, 0.8 * w - sw), rng.uniform(0.2 * h, 0.8 * h - sh)),
                 (0.0, 0.0), _on_grid(0.6 * d1))
    fast = _crossing(rng, w, h, s, 0.4 * (d - d1), rng.uniform(150, 250) * s)
    return "zoom", [Shot(d1, a, pan=pan, sprites=(pop,), zoom=rate - 1.0),
                    Shot(d - d1, b, pan=(-pan[0], -pan[1]), sprites=(fast,), zoom=1.0 / rate - 1.0)], {}


def _fast_objects(rng: np.random.Generator, w: int, h: int, d: float) -> tuple[str, list[Shot], dict]:
    s = w / 512
    pan = (float(rng.uniform(-20, 20) * s), float(rng.uniform(-10, 10) * s))
    times = [d * (0.1 + 0.75 * (j + rng.uniform(0.1, 0.9)) / 3) for j in range(3)]
    sprites = tuple(_crossing(rng, w, h, s, t, rng.uniform(150, 300) * s) for t in times)
    return "fast-objects", [Shot(d, str(rng.choice(BACKGROUNDS)), pan=pan, sprites=sprites)], {}


def _montage(rng: np.random.Generator, w: int, h: int, d: float, lo: float = 1.0, hi: float = 3.0) -> tuple[str, list[Shot], dict]:
    s = w / 512
    durations: list[float] = []
    while not durations or sum(durations) < d - lo + _EPS:
        durations.append(_on_grid(rng.uniform(lo, hi)))
    durations[-1] = round(d - sum(durations[:-1]), 6)  # the last shot ends with the video
    if durations[-1] < lo - _EPS and len(durations) > 1:  # fold a short tail into the previous shot
        durations[-2] = round(durations[-2] + durations.pop(), 6)
    shots, prev = [], ""
    for k, dur in enumerate(durations):
        photo = str(rng.choice([p for p in MONTAGE_PHOTOS if p != prev]))
        prev = photo
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0, 30) * s
        pan = (float(speed * np.cos(angle)), float(speed * np.sin(angle)))
        sprites: tuple[Sprite, ...] = ()
        if k % 2 == 1 and dur >= 1.5:
            sw, sh = _object(rng, w, h, s)
            at = (float(rng.uniform(0.15 * w, 0.85 * w - sw)), float(rng.uniform(0.15 * h, 0.85 * h - sh)))
            sprites = (Sprite(str(rng.choice([p for p in SPRITE_PHOTOS if p != photo])), (sw, sh), at, (0.0, 0.0), _on_grid(dur / 2)),)
        shots.append(Shot(dur, photo, pan=pan, sprites=sprites))
    return "montage", shots, {}


def recipe(content_class: str, seed: int, size: tuple[int, int] = (512, 512), duration_s: float = 20.0) -> tuple[str, list[Shot], dict]:
    """(recipe name, shots, event kinds by (shot, sprite)) of one video of ``content_class``."""
    if content_class not in CLASSES:
        raise ValueError(f"unknown class {content_class!r}; choose one of {', '.join(CLASSES)}")
    w, h = size
    rng = np.random.default_rng([seed, CLASSES.index(content_class), 8])
    if content_class == "static":
        return _static(rng, w, h, duration_s)
    if content_class == "low-motion":
        return (_slides if seed % 2 == 0 else _talking_head)(rng, w, h, duration_s)
    if content_class == "high-motion":
        return (_fast_pan if seed % 2 == 0 else _zoom if seed % 4 == 1 else _fast_objects)(rng, w, h, duration_s)
    return _montage(rng, w, h, duration_s)


def make_video(content_class: str, seed: int, folder: str | Path, size: tuple[int, int] = (512, 512),
               duration_s: float = 20.0) -> EvalVideo:
    """Render one suite video into ``folder`` and return it with its ground truth."""
    name, shots, labels = recipe(content_class, seed, size, duration_s)
    path = Path(folder) / f"{content_class}-{seed}.mp4"
    truth = synth.write_video(path, shots, size, SOURCE_FPS, seed=seed, x264_preset="veryfast")
    return EvalVideo(f"{content_class}-{seed}", content_class, name, seed, truth, labels, find_events(truth, labels))


# --- long videos: the cost forecast from the first minute ---------------------------------------

#: Source frame rate of the long videos: 5 fps is enough for 2 fps sampling and halves the render.
LONG_SOURCE_FPS = 5.0
FIRST_MINUTE_S = 60.0


def change_time(duration_s: float) -> float:
    """When a long video's content changes (where it does): a fifth of the way past the first minute."""
    return _on_grid(FIRST_MINUTE_S + 0.2 * (duration_s - FIRST_MINUTE_S), LONG_SOURCE_FPS)


def _slide_deck(rng: np.random.Generator, w: int, h: int, d: float, first: str = "page") -> list[Shot]:
    """Slides of 30-50 s alternating between the two document photos, each with two labels popping in."""
    size = (max(8, round(0.45 * w)), max(8, round(0.1 * h)))
    durations: list[float] = []
    while not durations or sum(durations) < d - 30.0 + _EPS:
        durations.append(_on_grid(rng.uniform(30.0, 50.0), LONG_SOURCE_FPS))
    durations[-1] = round(d - sum(durations[:-1]), 6)
    shots = []
    for k, dur in enumerate(durations):
        photo = ("page", "text")[(k + (first == "text")) % 2]
        a = _label(rng, size, (0.1 * w, 0.2 * h), _on_grid(rng.uniform(0.1, 0.4) * dur, LONG_SOURCE_FPS))
        b = _label(rng, size, (0.1 * w, 0.38 * h), _on_grid(rng.uniform(0.5, 0.8) * dur, LONG_SOURCE_FPS), avoid=a.image)
        shots.append(Shot(dur, photo, sprites=(a, b)))
    return shots


def long_recipe(content_class: str, seed: int, size: tuple[int, int] = (256, 256),
                duration_s: float = 180.0) -> tuple[str, list[Shot]]:
    """(recipe name, shots) of a long video (more than a minute) of ``content_class``.

    Seed 0 and 1 of each class; odd seeds keep one pace, even seeds change it at
    ``change_time(duration_s)`` (after the first minute), so a first-minute forecast is not
    trivially right:

    * static: ``camera-arrivals`` (an empty scene until the change, then a person every 8-16 s)
      and ``camera-steady`` (a person every 15-30 s throughout);
    * low-motion: ``talk-then-slides`` (a talking head until the change, then a slide deck) and
      ``lecture`` (slides of 30-50 s with labels popping in, throughout);
    * high-motion: ``pan-then-still`` (a fast pan with objects until the change, then a fixed
      camera with an object crossing now and then) and ``zooms`` (alternating zoom-in and
      zoom-out shots of 4-7 s with a pan and fast objects, throughout);
    * high-cut: ``montage-slowing`` (shots of 1-3 s until the change, then 6-12 s) and
      ``montage-quickening`` (4-8 s, then 1-2 s).
    """
    if content_class not in CLASSES:
        raise ValueError(f"unknown class {content_class!r}; choose one of {', '.join(CLASSES)}")
    if duration_s <= FIRST_MINUTE_S + 5.0:
        raise ValueError(f"a long video must be longer than {FIRST_MINUTE_S + 5.0:g} s, got {duration_s:g}")
    w, h = size
    s = w / 512
    rng = np.random.default_rng([seed, CLASSES.index(content_class), 60])
    d, tc = duration_s, change_time(duration_s)
    changes = seed % 2 == 0
    if content_class == "static":
        gap = (8.0, 16.0) if changes else (15.0, 30.0)
        t, times = (tc if changes else rng.uniform(2.0, 10.0)), []
        while t < d - 2.0:
            times.append(t)
            t += rng.uniform(*gap)
        walkers = tuple(_walker(rng, w, h, s, float(x), (25, 45)) for x in times)
        return ("camera-arrivals" if changes else "camera-steady"), [Shot(d, str(rng.choice(BACKGROUNDS)), sprites=walkers)]
    if content_class == "low-motion":
        if not changes:
            return "lecture", _slide_deck(rng, w, h, d)
        _, head, _ = _talking_head(rng, w, h, tc)
        return "talk-then-slides", head + _slide_deck(rng, w, h, d - tc)
    if content_class == "high-motion":
        if changes:
            _, pan, _ = _fast_pan(rng, w, h, tc)
            rest = d - tc
            crossers = tuple(_crossing(rng, w, h, s, float(t), rng.uniform(150, 300) * s) for t in np.arange(5.0, rest - 2.0, 20.0))
            return "pan-then-still", pan + [Shot(rest, str(rng.choice(BACKGROUNDS)), sprites=crossers)]
        shots: list[Shot] = []
        while sum(x.duration_s for x in shots) < d - 15.0 + _EPS:
            dur = _on_grid(rng.uniform(8.0, 14.0), LONG_SOURCE_FPS)
            _, pair, _ = _zoom(rng, w, h, dur)
            shots += pair
        used = sum(x.duration_s for x in shots[:-1])
        shots[-1] = dataclasses.replace(shots[-1], duration_s=round(d - used, 6))
        return "zooms", shots
    if changes:
        _, a, _ = _montage(rng, w, h, tc, 1.0, 3.0)
        _, b, _ = _montage(rng, w, h, d - tc, 6.0, 12.0)
        return "montage-slowing", a + b
    _, a, _ = _montage(rng, w, h, tc, 4.0, 8.0)
    _, b, _ = _montage(rng, w, h, d - tc, 1.0, 2.0)
    return "montage-quickening", a + b


def make_long_video(content_class: str, seed: int, folder: str | Path, size: tuple[int, int] = (256, 256),
                    duration_s: float = 180.0) -> tuple[str, GroundTruth]:
    """Render one long video (``long_recipe``) into ``folder``: (recipe name, ground truth)."""
    name, shots = long_recipe(content_class, seed, size, duration_s)
    path = Path(folder) / f"long-{content_class}-{seed}.mp4"
    return name, synth.write_video(path, shots, size, LONG_SOURCE_FPS, seed=seed, x264_preset="veryfast")
