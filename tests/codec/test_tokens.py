"""The token model: exact counts per grid, exact cell covers, the plans' budgets, the P-tokenizer seam."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from videomemory.codec.config import Grid
from videomemory.codec.tokens import (
    PLANS,
    FramePlan,
    PTokenizer,
    Rect,
    ResidualCellsTokenizer,
    TokenModel,
    UniformSampler,
    merge_cells,
    p_input,
    plan_adaptive,
    plan_cells,
    plan_flat,
    plan_paper,
    plan_uniform,
    rects_mask,
    select_cells,
    select_top,
    summarise,
)
from videomemory.errors import InvalidArgument

MODEL = TokenModel()


def covered(rects: list[Rect], shape: tuple[int, int]) -> np.ndarray:
    """How many rectangles cover each cell."""
    count = np.zeros(shape, dtype=int)
    for r in rects:
        count[r.row : r.row + r.rows, r.col : r.col + r.cols] += 1
    return count


def assert_exact_cover(mask: np.ndarray) -> list[Rect]:
    rects = merge_cells(mask)
    count = covered(rects, mask.shape)
    assert count.max(initial=0) <= 1, "rectangles overlap"
    assert np.array_equal(count == 1, mask), "cover differs from the mask"
    return rects


def test_rects_mask_is_the_inverse_of_merge_cells():
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = rng.random((12, 20)) < 0.3
        assert np.array_equal(rects_mask(merge_cells(mask), mask.shape), mask)
    assert not rects_mask([], (2, 3)).any()


@pytest.mark.parametrize(
    ("width", "height", "cells", "anchor"),
    [(512, 512, (16, 16), 256), (640, 384, (12, 20), 240), (32, 32, (1, 1), 1), (1024, 256, (8, 32), 256)],
)
def test_anchor_costs_exactly_one_token_per_32px_cell(width, height, cells, anchor):
    model = TokenModel(grid=Grid(width, height))
    assert model.cells == cells
    assert model.anchor_tokens == anchor == cells[0] * cells[1]
    assert plan_flat(model).tokens == anchor
    assert model.cap == anchor // 4


def test_bad_settings_are_rejected():
    with pytest.raises(InvalidArgument):
        TokenModel(p_overhead=-1)
    with pytest.raises(InvalidArgument):
        TokenModel(cap_cells=-1)
    with pytest.raises(InvalidArgument):
        FramePlan("X", 0, 0)
    assert TokenModel(cap_cells=0).cap == 0


def test_rect_pixel_box_is_exclusive_and_on_the_grid():
    grid = Grid(640, 384)
    assert Rect(1, 2, 3, 4).to_px(grid) == (64, 32, 192, 128)
    assert Rect(0, 0, 12, 20).to_px(grid) == (0, 0, 640, 384)
    with pytest.raises(InvalidArgument):
        Rect(0, 0, 13, 1).to_px(grid)


def test_filled_rectangle_is_one_rect_and_checkerboard_one_per_cell():
    mask = np.zeros((16, 16), dtype=bool)
    mask[3:9, 5:12] = True
    assert assert_exact_cover(mask) == [Rect(3, 5, 6, 7)]

    checker = (np.add.outer(np.arange(8), np.arange(8)) % 2).astype(bool)
    rects = assert_exact_cover(checker)
    assert len(rects) == 32 and all(r.cells == 1 for r in rects)

    assert merge_cells(np.zeros((4, 4), dtype=bool)) == []
    assert merge_cells(np.ones((64, 64), dtype=bool)) == [Rect(0, 0, 64, 64)]


@pytest.mark.parametrize("seed", range(8))
def test_random_masks_round_trip_exactly_and_deterministically(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 65, size=2))
    mask = rng.random(shape) < rng.uniform(0.05, 0.95)
    rects = assert_exact_cover(mask)
    assert rects == merge_cells(mask.copy())
    assert sum(r.cells for r in rects) == int(mask.sum())


def test_static_p_frame_costs_only_its_text_overhead():
    plan = plan_adaptive("P", np.zeros(MODEL.cells), MODEL, threshold=10.0)
    assert plan.role == "P" and plan.rects == ()
    assert plan.tokens == MODEL.p_overhead == 4


def test_a_moving_blob_sends_exactly_its_cells():
    energy = np.full(MODEL.cells, 2.0)
    energy[4:6, 7:10] = 500.0  # a 2x3 block of cells
    energy[10, 2] = 300.0  # and one lone cell
    plan = plan_adaptive("P", energy, MODEL, threshold=50.0)
    mask = np.zeros(MODEL.cells, dtype=bool)
    for r in plan.rects:
        mask[r.row : r.row + r.rows, r.col : r.col + r.cols] = True
    assert np.array_equal(mask, energy > 50.0)
    assert plan.rects == (Rect(4, 7, 2, 3), Rect(10, 2, 1, 1))
    assert plan.image_tokens == 7
    assert plan.overhead_tokens == MODEL.p_overhead + 2 * MODEL.rect_overhead
    assert plan.tokens == 7 + 4 + 4


def test_an_anchor_is_a_full_image_whatever_the_energy():
    assert plan_adaptive("I", None, MODEL, threshold=1.0) == FramePlan("I", 256, 0)
    assert plan_cells("-", None, MODEL).tokens == 0


def test_cap_keeps_the_highest_energies_with_row_major_ties():
    energy = np.arange(256, dtype=float).reshape(16, 16)
    mask = select_cells(energy, threshold=-1.0, cap=10)
    assert mask.sum() == 10 and mask.ravel()[-10:].all()
    # The model's default cap is a quarter of the image.
    plan = plan_adaptive("P", energy, MODEL, threshold=-1.0)
    assert plan.image_tokens == MODEL.cap == 64

    flat = np.ones((4, 4))
    flat[3, 3] = 2.0
    tied = select_cells(flat, threshold=0.5, cap=3)
    assert np.flatnonzero(tied).tolist() == [0, 1, 15]
    assert np.flatnonzero(select_top(flat, 3)).tolist() == [0, 1, 15]
    # select_top ignores thresholds and clips k.
    assert select_top(np.zeros((2, 2)), 99).all()
    assert not select_top(np.ones((2, 2)), -3).any()
    # Cells at or below the threshold are never sent, cap or no cap.
    assert not select_cells(np.full((4, 4), 5.0), threshold=5.0, cap=16).any()


def test_plan_cells_takes_the_mask_as_given():
    mask = np.zeros(MODEL.cells, dtype=bool)
    mask[:, :9] = True  # 144 cells, more than the cap: rate control decides, not the cap
    plan = plan_cells("P", mask, MODEL)
    assert plan.image_tokens == 144 and len(plan.rects) == 1
    with pytest.raises(InvalidArgument):
        plan_cells("P", np.ones((3, 3), dtype=bool), MODEL)


@pytest.mark.parametrize("k", [0, 1, 8, 16])
def test_paper_plan_costs_256_plus_16k_per_gop(k):
    roles = ["I"] + ["P"] * k
    assert sum(plan_paper(r, MODEL).tokens for r in roles) == 256 + 16 * k
    assert all(plan_paper(r, MODEL).overhead_tokens == 0 for r in roles)


@pytest.mark.parametrize(("n_frames", "total"), [(100, 32_000), (100, 2560), (7, 1000), (1, 256), (10, 255), (0, 999)])
def test_uniform_plan_fits_the_budget_evenly_from_frame_0(n_frames, total):
    plans = plan_uniform(n_frames, total, MODEL)
    assert len(plans) == n_frames
    spent = sum(p.tokens for p in plans)
    kept = [i for i, p in enumerate(plans) if p.role == "I"]
    assert spent <= total
    assert spent > total - MODEL.anchor_tokens or len(kept) == n_frames
    assert all(p.tokens == 0 for p in plans if p.role == "-")
    if kept:
        assert kept[0] == 0
        gaps = np.diff(kept + [n_frames])
        assert gaps.max() - gaps.min() <= 1  # evenly spaced
    else:
        assert total < MODEL.anchor_tokens or n_frames == 0


@pytest.mark.parametrize("tpf", [0.5, 25.6, 100.0, 255.9, 256.0])
def test_uniform_sampler_spends_within_one_anchor_of_its_allowance(tpf):
    sampler = UniformSampler(MODEL, tpf)
    plans = [sampler.push() for _ in range(500)]
    assert plans[0].role == "I"
    spent = 0
    for n, plan in enumerate(plans, start=1):
        spent += plan.tokens
        assert abs(spent - n * tpf) <= MODEL.anchor_tokens
    assert sampler.spent == spent


def test_uniform_sampler_matches_the_offline_plan():
    for n_frames, anchors in [(100, 10), (37, 5), (9, 9), (50, 1)]:
        offline = plan_uniform(n_frames, anchors * 256, MODEL)
        sampler = UniformSampler(MODEL, Fraction(anchors * 256, n_frames))
        assert [sampler.push() for _ in range(n_frames)] == offline
    zero = UniformSampler(MODEL, 0.0)
    assert all(zero.push().role == "-" for _ in range(5))


def test_summary_counts_and_rates():
    plans = [plan_paper(r, MODEL) for r in ["I"] + ["P"] * 3] + [FramePlan("-", 0, 0)] * 4
    s = summarise(plans, fps=2.0)
    assert s["tokens"] == 256 + 48
    assert (s["frames"], s["frames_sent"], s["anchors"], s["p_frames"]) == (8, 4, 1, 3)
    assert s["tokens_per_minute"] == pytest.approx(304 / (8 / 2.0 / 60))
    assert s["tokens_per_frame"] == pytest.approx(38.0)
    assert summarise([], fps=2.0)["tokens"] == 0
    assert PLANS == ("adaptive", "paper", "flat", "uniform")


def test_p_input_scales_residual_and_broadcasts_each_block_vector():
    h, w = 32, 48
    residual = torch.zeros(3, h, w, dtype=torch.int16)
    residual[0, 0, 0], residual[2, 5, 7] = 255, -51
    vectors = torch.zeros(2, 3, 2, dtype=torch.int32)
    vectors[1, 2] = torch.tensor([3, -6])  # block row 1, col 2: pixels y 16..31, x 32..47
    u = p_input(residual, vectors)
    assert u.shape == (5, h, w) and u.dtype == torch.float32
    assert u[0, 0, 0] == 1.0 and u[2, 5, 7] == pytest.approx(-0.2)
    block = u[3:, 16:32, 32:48]
    assert torch.all(block[0] == 3 / 48) and torch.all(block[1] == -6 / 48)
    assert u[3:].abs().sum() == pytest.approx(16 * 16 * 9 / 48)  # nothing outside the block
    with pytest.raises(InvalidArgument):
        p_input(residual.to(torch.uint8), vectors)
    with pytest.raises(InvalidArgument):
        p_input(residual, torch.zeros(3, 3, 2, dtype=torch.int32))


def test_p_tokenizer_protocol_and_the_training_free_reference():
    class Dummy:
        n_tokens = 16

        def __call__(self, u: torch.Tensor) -> torch.Tensor:
            return torch.zeros(self.n_tokens, 8)

    assert isinstance(Dummy(), PTokenizer)
    assert not isinstance(object(), PTokenizer)

    tok = ResidualCellsTokenizer()
    assert isinstance(tok, PTokenizer)
    residual = torch.zeros(3, 512, 512, dtype=torch.int16)
    residual[:, 64:96, 128:160] = 100  # one busy cell: row 2, col 4
    u = p_input(residual, torch.ones(32, 32, 2, dtype=torch.int32))
    out = tok(u)
    assert out.shape == (16, 5) and out.dtype == torch.float32
    busy = out[(out[:, 0] > 0)]
    assert busy.shape[0] == 1 and busy[0, 0] == pytest.approx(100 / 255)
    assert torch.allclose(out[:, 3:], torch.full((16, 2), 1 / 512))
    # A frame with fewer cells than tokens pads with zeros.
    assert tok(torch.ones(5, 64, 64)).shape == (16, 5)
