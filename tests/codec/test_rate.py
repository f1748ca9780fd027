"""Rate control (``codec.rate.Planner``) on synthetic energies: the debt bound and the gradual
intra refresh after a declined anchor. No video: each test takes milliseconds. The same rules on
generated videos are in ``test_codec_on_videos.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from videomemory.codec.config import Grid, PlanConfig
from videomemory.codec.rate import Planner
from videomemory.codec.tokens import I, P, TokenModel

MODEL = TokenModel(grid=Grid(512, 512))  # 256 tokens an image, 16x16 cells
FLAT = MODEL.anchor_tokens * 120.0  # tokens/min of flat at 2 fps
RATIOS = (4, 7, 12)


def _planner(ratio: float) -> Planner:
    return Planner(MODEL, PlanConfig(budget_per_min=FLAT / ratio), fps=2.0)


def _filler() -> np.ndarray:
    """Codec noise, the same every frame: highest at the top left, all below the threshold."""
    rows, cols = MODEL.cells
    r, c = np.mgrid[0:rows, 0:cols]
    return 20.0 - (r + c) * 0.5


def _cut(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(500.0, 5000.0, MODEL.cells)


def _sent(plan) -> np.ndarray:
    mask = np.zeros(MODEL.cells, dtype=bool)
    for r in plan.rects:
        mask[r.row : r.row + r.rows, r.col : r.col + r.cols] = True
    return mask


def _refresh_frames(planner: Planner, cells: int) -> int:
    """Frames a refresh of ``cells`` stale cells may take: the worst case of one rectangle per cell.

    After the debt bound, each frame's bucket is at least ``per_frame - p_overhead``; a frame pays
    its text overhead and at most ``1 + rect_overhead`` per cell, so it sends at least ``k`` cells.
    """
    m = planner.model
    k = math.floor((planner.per_frame - 2 * m.p_overhead) / (1 + m.rect_overhead))
    assert k >= 1, "the budget must pay for at least one cell a frame"
    return math.ceil(cells / k) + 1


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_debt_stays_within_one_frame_and_the_end_lands_within_5_percent(ratio, seed):
    # Cuts every 1-3 s (2-6 frames) over 16 s: the old rule (cut anchors always full, gamma scaled
    # by the debt) ran 1.5-2.5 images over.
    rng = np.random.default_rng(seed)
    planner = _planner(ratio)
    frames, next_cut = 32, 0
    for i in range(frames):
        if i == 0:
            plan = planner.plan(I, "first", None)
        elif i == next_cut:
            plan = planner.plan(I, "pcost", _cut(rng))
        else:
            plan = planner.plan(P, "", _filler() + rng.uniform(0, 5, MODEL.cells))
        if i == next_cut:
            next_cut = i + int(rng.integers(2, 7))
        accrued = planner.per_frame * (i + 1)
        if i == 0:
            assert plan.role == I, "frame 0 is always a full image"
        elif i >= ratio:  # frame 0's debt (ratio - 1 frames' allowance) is repaid
            assert planner.spent - accrued <= planner.debt_bound + 1e-9, f"frame {i}: {planner.spent - accrued:.1f} over"
    per_min = planner.tokens_per_min
    budget = FLAT / ratio
    assert abs(per_min - budget) <= 0.05 * budget, f"{per_min:.0f} tokens/min for a budget of {budget:.0f}"


@pytest.mark.parametrize("ratio", RATIOS)
def test_a_declined_cut_is_refreshed_stale_cells_first_within_the_bound(ratio):
    rng = np.random.default_rng(ratio)
    planner = _planner(ratio)
    planner.plan(I, "first", None)
    for _ in range(3 * ratio):  # repay frame 0, then a few frames of CBR filler
        planner.plan(P, "", _filler())
    cut = _cut(rng)
    plan = planner.plan(I, "pcost", cut)
    assert plan.role == P, "a full image the bucket cannot pay for must be declined"
    owed = cut > planner.config.cell_threshold
    seen = _sent(plan)
    assert (planner.stale > 0).sum() == (owed & ~seen).sum(), "every cell not sent is owed to the receiver"
    bound = _refresh_frames(planner, int(owed.sum()))
    for n in range(1, bound + 1):
        # After the cut the codec predicts well: only the same filler noise. Without stale cells
        # the plan would keep sending the top-left filler cells and never finish the new scene.
        plan = planner.plan(P, "", _filler())
        sent = _sent(plan)
        if (owed & ~seen).any():
            assert (sent <= (owed & ~seen)).all() or (owed <= (seen | sent)).all(), f"frame {n}: filler before stale cells"
        seen |= sent
        if (owed <= seen).all():
            break
    assert (owed <= seen).all(), f"{int((owed & ~seen).sum())} cells of the new scene still unsent after {bound} frames"
    assert not (planner.stale > 0).any(), "a stale cell resets when sent"


def test_stale_cells_go_highest_priority_first():
    planner = _planner(7)
    planner.plan(I, "first", None)
    for _ in range(10):
        planner.plan(P, "", _filler())
    cut = np.full(MODEL.cells, 400.0)
    cut[10:, :] = 6000.0  # the bottom rows changed most
    plan = planner.plan(I, "pcost", cut)
    assert plan.role == P
    sent = _sent(plan)
    assert sent.any() and sent[10:, :][sent[10:, :]].size == sent.sum(), "the highest-energy cells go first"


def test_without_a_budget_nothing_is_stale_and_cuts_are_full_images():
    planner = Planner(MODEL, PlanConfig(), fps=2.0)
    planner.plan(I, "first", None)
    rng = np.random.default_rng(0)
    for i in range(20):
        plan = planner.plan(I, "pcost", _cut(rng)) if i % 3 == 0 else planner.plan(P, "", _filler())
        assert plan.role == (I if i % 3 == 0 else P)
        assert not (planner.stale > 0).any()


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_file_sends_cuts_whole_when_the_rest_can_repay_them_and_still_lands_within_5_percent(ratio, seed):
    # The same cut-every-1-3-s montage as above, as a file of known length: cuts the frames left
    # can repay are full images (a live stream sends them as partial refreshes), cuts near the
    # end are not, and the end lands within 5% all the same.
    rng = np.random.default_rng(seed)
    frames = 32
    planner = Planner(MODEL, PlanConfig(budget_per_min=FLAT / ratio), fps=2.0, expected_frames=frames)
    live = _planner(ratio)
    full_file = full_live = 0
    next_cut = 0
    for i in range(frames):
        role, reason, energy = (I, "first", None) if i == 0 else (I, "pcost", _cut(rng)) if i == next_cut else \
            (P, "", _filler() + rng.uniform(0, 5, MODEL.cells))
        if i == next_cut:
            next_cut = i + int(rng.integers(2, 7))
        a, b = planner.plan(role, reason, energy), live.plan(role, reason, energy)
        full_file += i > 0 and a.role == I
        full_live += i > 0 and b.role == I
        left = frames - i - 1
        if a.role == I and i > 0:  # only a debt that the frames left can repay
            assert planner.spent - planner.per_frame * (i + 1) <= max(planner.per_frame, 0.04 * planner.per_frame * (i + 1), 0.75 * planner.per_frame * left) + 1e-9
    assert full_file > full_live, (full_file, full_live)
    budget = FLAT / ratio
    assert abs(planner.tokens_per_min - budget) <= 0.05 * budget, f"{planner.tokens_per_min:.0f} tokens/min for {budget:.0f}"


def test_expected_frames_must_be_positive():
    from videomemory.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="expected frames"):
        Planner(MODEL, PlanConfig(budget_per_min=FLAT / 7), expected_frames=0)
