"""The adaptive token plan, frame by frame, and rate control to a tokens-per-minute budget.

``Planner`` is causal: it sees each frame once, in order, with its role, its anchor reason and
its residual energy per token cell, and returns the frame's ``FramePlan``. The same object
serves files and live streams.

Without a budget (the default) it spends what the content needs:

* an anchor for a new scene (frame 0, pcost above gamma) is a full image;
* a P-frame sends its cells above ``cell_threshold`` (at most ``TokenModel.cap``);
* static stretches collapse: a run of P-frames with no cell to send costs the text overhead
  once ("unchanged since t"), not once per frame;
* a forced anchor (the GOP reached k_max) is sent in full only if the scene changed since the
  last full image (the cells sent since then reach ``refresh_fraction`` of an image); otherwise
  it is planned like a P-frame. The stored code keeps the anchor either way.

With a budget it works like CBR rate control for bits, with two levers:

* **cells** (fine, every frame): the allowance is the budget accrued so far minus what was
  spent; a P-frame sends its highest-energy cells up to that allowance (the threshold it
  effectively uses is the energy of the last cell sent), so an under-spend is paid back at once;
* **gamma** (coarse, anchors): while the plan is over budget by ``d`` tokens, gamma is scaled by
  ``2 ** (d / anchor_tokens)``, so marginal anchors (motion beyond the search window, fades)
  become P-frames first and hard cuts (pcost several times gamma) last; forced anchors are only
  sent in full when affordable. With tokens to spare that cells cannot absorb (the cap binds),
  a refresh anchor is taken.

An overshoot is bounded by one anchor and paid back within a few frames, so a video lands within
a few percent of the budget once it is longer than about 20 anchors' worth of tokens.
"""

from __future__ import annotations

import math

import numpy as np

from videomemory.codec.config import PlanConfig
from videomemory.codec.tokens import I, P, FramePlan, TokenModel, plan_cells, select_cells, select_top
from videomemory.errors import BudgetTooSmall


class Planner:
    """Causal adaptive token plan, with optional rate control (see the module docstring)."""

    def __init__(self, model: TokenModel, config: PlanConfig = PlanConfig(), fps: float = 2.0) -> None:
        self.model = model
        self.config = config
        self.fps = fps
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

    @property
    def _bucket(self) -> float:
        """Tokens the budget allows for the current frame (accrued, including it, minus spent)."""
        assert self.per_frame is not None
        return self.per_frame * (self.frames + 1) - self.spent

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
        if full and self.per_frame is not None and reason == "k_max":
            full = self._bucket >= self.model.anchor_tokens
        if full or energy is None:
            out = plan_cells(I, None, self.model)
            self._since_full = 0
        else:
            out = self._plan_p(energy)
            self._since_full += out.image_tokens
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
        """A P-frame's cells: above threshold, or the highest ones the budget allows."""
        if self.per_frame is None:
            mask = select_cells(energy, self.config.cell_threshold, self.model.cap)
            return self._collapse(plan_cells(P, mask, self.model))
        allowance = self._bucket
        k = min(self.model.cap, max(0, math.floor(allowance - self.model.p_overhead)))
        out = self._collapse(plan_cells(P, select_top(energy, k), self.model))
        while out.tokens > allowance and k > 0:  # rectangles cost overhead too; shrink to fit
            k = max(0, k - max(1, math.ceil(out.tokens - allowance)))
            out = self._collapse(plan_cells(P, select_top(energy, k), self.model))
        return out

    def _collapse(self, plan: FramePlan) -> FramePlan:
        """A P-frame with nothing to send right after another costs nothing (one "unchanged" line)."""
        if plan.role == P and not plan.rects and self._holding:
            return FramePlan(P, 0, 0)
        return plan

    @property
    def tokens_per_min(self) -> float:
        """What the plan spent so far, per minute of video (nan before the first frame)."""
        return self.spent / self.frames * self.fps * 60.0 if self.frames else float("nan")
