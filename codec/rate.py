"""The adaptive token plan, frame by frame, and rate control to a tokens-per-minute budget.

``Planner`` is causal: it sees each frame once, in order, with its role, its anchor reason and
its residual energy per token cell, and returns the frame's ``FramePlan``. The same object
serves files and live streams (``Encoder.push``); there is no lookahead and no second pass.

Without a budget (the default) it spends what the content needs:

* an anchor for a new scene (frame 0, pcost above gamma) is a full image;
* a P-frame sends its cells above ``cell_threshold`` (at most ``TokenModel.cap``);
* static stretches collapse: a run of P-frames with no cell to send costs the text overhead
  once ("unchanged since t"), not once per frame;
* a forced anchor (the GOP reached k_max) is sent in full only if the scene changed since the
  last full image (the cells sent since then reach ``refresh_fraction`` of an image); otherwise
  it is planned like a P-frame. The stored code keeps the anchor either way.

With a budget it is CBR rate control with a bounded-debt (VBV-like) bucket. The bucket ``b``
of a frame is the budget accrued through that frame minus what was spent before it; the debt
is ``-b`` after paying for the frame.

* **Full images only when affordable.** Frame 0 is always a full image; its debt,
  ``anchor_tokens - per_frame``, is repaid by the ``ratio - 1`` frames after it (at ``1/ratio``
  of flat). Any later full image (a cut, a changed forced anchor, a refresh) is sent only if
  ``b - anchor_tokens >= -debt_bound``, where ``debt_bound = min(anchor_tokens, max(per_frame,
  DEBT_SHARE * accrued))``, ``accrued`` being the budget so far and ``DEBT_SHARE`` 4%: on a
  short video one frame's allowance (repaid by the next frame), growing with the video so that
  long files and live streams can carry a cut's full image, and never more than one image (a
  VBV buffer of one anchor: a burst of cuts cannot silence the plan for long).
* **A declined full image is a partial intra refresh.** The stored code keeps its anchor; the
  plan sends, like a P-frame, the top cells that fit the bucket, ranked by the frame's energy
  (for an anchor, against the motion-compensated previous reconstruction, ``codec.encoder``).
* **Stale cells (receiver debt).** Under a budget, a cell above ``cell_threshold`` in a frame
  that does not send it becomes stale, with a priority that adds up the energies of the frames
  that skipped it; sending it, or a full image, resets it. The P-frame residual is against the
  codec's own reconstruction, which already holds the new scene after a declined cut, so
  without this the receiver would never be shown the cells the cut frame could not pay for.
  P-frames (declined anchors included) send owed cells (stale, or above threshold now) before
  any other, highest ``energy + stale`` first at octave granularity, ties in raster order (so a
  refresh comes as a few rectangles, not one rectangle and its overhead per cell): with ``k``
  cells a frame, a cut's ``S`` owed cells are all sent within ``ceil(S / k)`` frames unless new
  above-threshold content competes for the tokens (gradual intra refresh, as codecs do with
  periodic intra refresh). The stale map stays in screen cells and does **not** follow the
  median motion vector: the receiver warps what it holds by that vector, but a map of whole
  cells cannot follow the sub-cell drift of a pan (the montages pan by at most half a cell per
  sampled frame), and a shift would be wrong for every cell that does not move with the median
  (objects, the far side of a cut). What this leaves unseen is old content that slides across
  a stale/refreshed boundary while a refresh is under way.
* **Cells (CBR).** A P-frame sends its top-ranked cells up to the bucket (at most ``cap``;
  the largest count whose rectangles fit), so an under-spend is paid back at once; cells
  neither stale nor above threshold are filler.
* **gamma** (stored anchors): while the plan is in debt by ``d`` tokens, gamma is scaled by
  ``2 ** (d / anchor_tokens)`` (at most 2, since the debt is bounded); it changes what is
  stored, not what is sent. With tokens to spare that cells cannot absorb (the cap binds), a
  refresh anchor is asked for (``refresh_due``).

**Files know their length** (``expected_frames``: the sampled frames a file's declared duration
gives), and a debt only matters if it is still owed at the end. So for a file, a full image of
a mostly new picture (at least ``NEW_SCENE_SHARE``, half, of its cells owed: a cut, a slide
change) may also leave up to ``REPAY_SHARE * per_frame * frames_left`` (75% of what the frames
after it accrue; the rest pays their text overhead), still capped at one image; it becomes a
partial refresh only near the end. Showing a new scene whole at once, then holding it, beats
painting it in over several frames for the same tokens; where less than half the picture
changed (people walking into a fixed camera's view, a forced anchor), cells show the change for
fewer tokens and borrowing for a full image would silence the frames that repay it (measured on
the 16 s evaluation suite at 1/7 of flat, README). A live stream has no end to repay by
(``expected_frames=None``) and keeps the prefix bound below, so every prefix is within it; a
file whose declared duration is too long (a truncated file coded leniently) can end over by up
to one image.

The bound: with ``per_frame >= p_overhead`` (budgets above ``120 * p_overhead`` tokens per
minute at 2 fps), once frame 0's debt is repaid the debt after any frame is at most
``debt_bound`` (a full image leaves at most that; a P-frame either fits its bucket or sends no
cell and costs ``p_overhead``). So a video ends at most ``max(1 / frames, DEBT_SHARE)`` of its
budget over it (4% for any video of 16 s or more at 2 fps), whatever its cuts. It ends under
budget by what its last frame could not spend (rectangle overhead: a few tokens, but up to a
frame's allowance where that allowance barely pays for a rectangle, e.g. 256x256 at 1/12), or,
where the cap binds (budgets above about 1/4 of flat), by up to one refresh anchor plus a frame.
The price, for a live stream: since P-frames spend the bucket, it only holds a full image's
worth once the debt bound has grown to nearly an image, so in the first ``25 * (ratio - 1)``
frames (about 37 s at 1/4 of flat) every cut after frame 0 is a partial refresh. A file
borrows for it instead (above) until near its end.
"""

from __future__ import annotations

import math

import numpy as np

from videomemory.codec.config import PlanConfig
from videomemory.codec.tokens import I, P, FramePlan, TokenModel, plan_cells, rects_mask, select_cells, select_top
from videomemory.errors import BudgetTooSmall, InvalidArgument

DEBT_SHARE = 0.04  # a full image may leave a debt of this share of the budget accrued so far (see above)
REPAY_SHARE = 0.75  # a file's full image may leave the debt this share of the frames left accrue (see above)
NEW_SCENE_SHARE = 0.5  # ... if at least this share of its cells is owed (a cut, not people walking in)
OWED_TIER = 1024.0  # rank offset of owed cells: above every octave of a finite energy (< 2**1024)


class Planner:
    """Causal adaptive token plan, with optional rate control (see the module docstring)."""

    def __init__(self, model: TokenModel, config: PlanConfig = PlanConfig(), fps: float = 2.0,
                 expected_frames: int | None = None) -> None:
        self.model = model
        self.config = config
        self.fps = fps
        if expected_frames is not None and expected_frames < 1:
            raise InvalidArgument(f"expected frames {expected_frames} must be >= 1 (or None for a live stream)")
        self.expected_frames = expected_frames  # a file's length in sampled frames; None: a live stream
        self.per_frame: float | None = None
        if config.budget_per_min is not None:
            if config.budget_per_min < model.anchor_tokens:
                raise BudgetTooSmall(
                    f"a budget of {config.budget_per_min:g} tokens per minute cannot pay for one full image "
                    f"({model.anchor_tokens} tokens on this grid) per minute; raise the budget or use a smaller grid"
                )
            self.per_frame = config.budget_per_min / (60.0 * fps)
        self.frames = 0
        self.spent = 0
        self._since_full = 0  # image tokens sent since the last full image
        self._holding = False  # the previous frame was a P-frame with nothing to send
        # Receiver debt under a budget: per cell, the accumulated energy of frames that did not
        # send it while it was above threshold (0: the receiver has the codec's content there).
        self.stale = np.zeros(model.cells, dtype=np.float64)

    @property
    def _bucket(self) -> float:
        """Tokens the budget allows for the current frame (accrued, including it, minus spent)."""
        assert self.per_frame is not None
        return self.per_frame * (self.frames + 1) - self.spent

    @property
    def debt_bound(self) -> float:
        """Most debt a full image may leave behind in any prefix (module docstring); 0 without a budget."""
        if self.per_frame is None:
            return 0.0
        accrued = self.per_frame * (self.frames + 1)
        return min(float(self.model.anchor_tokens), max(self.per_frame, DEBT_SHARE * accrued))

    @property
    def repay_bound(self) -> float:
        """Most debt a file's frames after this one can repay (0 for a live stream or without a budget)."""
        if self.per_frame is None or self.expected_frames is None:
            return 0.0
        left = max(0, self.expected_frames - self.frames - 1)
        return min(float(self.model.anchor_tokens), REPAY_SHARE * self.per_frame * left)

    def affordable(self, energy: np.ndarray | None = None) -> bool:
        """Whether the current frame may be a full image: the bucket after it stays above the bound.

        A file may borrow what its remaining frames repay, but only for a mostly new picture (at
        least ``NEW_SCENE_SHARE`` of the cells owed): where less changed, cells show it for less.
        """
        if self.per_frame is None:
            return True
        bound = self.debt_bound
        if energy is not None and self._owed(np.asarray(energy, dtype=np.float64)).mean() >= NEW_SCENE_SHARE:
            bound = max(bound, self.repay_bound)
        return self._bucket - self.model.anchor_tokens >= -bound

    def _owed(self, energy: np.ndarray) -> np.ndarray:
        """Cells the receiver is owed: stale, or above the threshold in this frame."""
        return (self.stale > 0) | (energy > self.config.cell_threshold)

    def gamma_scale(self) -> float:
        """Factor on gamma for the next frame's anchor decision (1 without a budget)."""
        if self.per_frame is None:
            return 1.0
        over = max(0.0, -self._bucket)
        return 2.0 ** (over / self.model.anchor_tokens)

    def refresh_due(self) -> bool:
        """Whether the budget has a full image to spare that cells could not absorb."""
        if self.per_frame is None or self.frames == 0:
            return False
        return self._bucket >= self.model.anchor_tokens + self.per_frame

    def plan(self, role: str, reason: str, energy: np.ndarray | None) -> FramePlan:
        """The plan of the next frame, given its role, anchor reason and residual energy per cell."""
        full = role == I and (reason != "k_max" or self._changed(energy))
        if full and energy is not None and self.per_frame is not None:
            full = self.affordable(energy)  # frame 0 (no energy) is always a full image
        if full or energy is None:
            out = plan_cells(I, None, self.model)
            self._since_full = 0
            self.stale[:] = 0.0
        else:
            out = self._plan_p(energy)
            self._since_full += out.image_tokens
            if self.per_frame is not None:
                self._mark_stale(np.asarray(energy, dtype=np.float64), out)
        self._holding = out.role == P and not out.rects
        self.frames += 1
        self.spent += out.tokens
        return out

    def _changed(self, energy: np.ndarray | None) -> bool:
        """Whether a forced anchor shows a scene changed enough since the last full image."""
        if energy is None:
            return True
        now = int(select_cells(energy, self.config.cell_threshold, self.model.anchor_tokens).sum())
        return self._since_full + now >= self.config.refresh_fraction * self.model.anchor_tokens

    def _plan_p(self, energy: np.ndarray) -> FramePlan:
        """A P-frame's cells: above threshold, or the highest-ranked ones the budget allows."""
        if self.per_frame is None:
            mask = select_cells(energy, self.config.cell_threshold, self.model.cap)
            return self._collapse(plan_cells(P, mask, self.model))
        rank = self._rank(np.asarray(energy, dtype=np.float64))
        allowance = self._bucket
        hi = min(self.model.cap, max(0, math.floor(allowance - self.model.p_overhead)))
        best = self._collapse(plan_cells(P, select_top(rank, 0), self.model))
        lo = 0  # the largest k known to fit (k = 0 is the text overhead alone)
        while lo < hi:  # rectangles cost overhead too: the largest k that fits, by bisection
            k = (lo + hi + 1) // 2
            out = self._collapse(plan_cells(P, select_top(rank, k), self.model))
            if out.tokens <= allowance:
                lo, best = k, out
            else:
                hi = k - 1
        return best

    def _rank(self, energy: np.ndarray) -> np.ndarray:
        """Send order of the cells under a budget (``select_top`` takes the highest, ties in raster order)."""
        # Owed cells (stale, or above threshold now) first, then filler; within each, by octave of
        # energy + stale, ties in raster order: the cells of one octave come in runs, so a
        # refresh is sent as a few rectangles instead of one rectangle (and its overhead) per cell.
        owed = self._owed(energy)
        return np.floor(np.log2(1.0 + energy + self.stale)) + np.where(owed, OWED_TIER, 0.0)

    def _mark_stale(self, energy: np.ndarray, out: FramePlan) -> None:
        """Cells above threshold (or already stale) that this frame did not send stay owed to the receiver."""
        owed = ~rects_mask(out.rects, self.model.cells) & self._owed(energy)
        self.stale = np.where(owed, self.stale + energy, 0.0)

    def _collapse(self, plan: FramePlan) -> FramePlan:
        """A P-frame with nothing to send right after another costs nothing (one "unchanged" line)."""
        if plan.role == P and not plan.rects and self._holding:
            return FramePlan(P, 0, 0)
        return plan

    @property
    def tokens_per_min(self) -> float:
        """What the plan spent so far, per minute of video (nan before the first frame)."""
        return self.spent / self.frames * self.fps * 60.0 if self.frames else float("nan")
