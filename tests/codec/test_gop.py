"""The anchor rule, gamma calibration and the causal encoder, on pcost series with known answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from videomemory.codec.config import GopConfig, Grid
from videomemory.codec.gop import I, P, assign_roles, calibrate_gamma, decide, gop_lengths, scene_band
from videomemory.errors import InvalidArgument


def test_first_frame_is_an_anchor_and_static_footage_gives_full_gops():
    gop = GopConfig(gamma_per_block=1000.0, k_max=16)
    roles = assign_roles([None] + [0.0] * 50, gop)
    assert roles[0] == I
    # 51 frames: GOPs of exactly k_max + 1 frames, then the remainder.
    assert gop_lengths(roles) == [17, 17, 17]


def test_a_pcost_spike_starts_a_gop_at_that_frame():
    gop = GopConfig(gamma_per_block=1000.0, k_max=16)
    series = [None, 10, 20, 5000, 10, 10]
    roles = assign_roles(series, gop)
    assert roles == [I, P, P, I, P, P]
    assert decide(5000, 2, gop) == "pcost"
    assert decide(10, 16, gop) == "k_max"
    assert decide(None, 0, gop) == "first"
    assert decide(10, 3, gop) == ""


def test_the_scene_rule_takes_a_frame_under_gamma_that_its_prediction_does_not_explain():
    gop = GopConfig(gamma_per_block=8000.0, k_max=16, scene_ratio=1.5, scene_floor=0.5)
    assert decide(6000, 2, gop, unexplained=3.4) == "scene"
    assert decide(6000, 2, gop, unexplained=1.5) == ""  # the residual no larger than 1.5x the picture's detail
    assert decide(3900, 2, gop, unexplained=9.0) == ""  # under half of gamma: cheap to predict, whatever the ratio
    assert decide(6000, 2, gop) == ""  # not measured
    assert decide(9000, 2, gop, unexplained=0.1) == "pcost"
    assert decide(6000, 16, gop, unexplained=3.4) == "scene"  # a cut, not the cadence
    assert decide(6000, 2, replace(gop, scene_ratio=0.0), unexplained=9.0) == ""  # PAPER's rule alone
    # rate control's gamma moves the band with it
    assert decide(6000, 2, gop, gamma_scale=2.0, unexplained=9.0) == ""
    assert decide(9000, 2, gop, gamma_scale=2.0, unexplained=9.0) == "scene"
    assert [scene_band(v, gop) for v in (4000, 4001, 8000, 8001)] == [False, True, True, False]
    assert not scene_band(6000, replace(gop, scene_ratio=0.0))
    assert assign_roles([None, 10, 6000, 6000, 10], gop, [None, None, 3.4, 0.6, None]) == [I, P, I, P, P]
    with pytest.raises(ValueError):
        assign_roles([None, 10], gop, [None])


@pytest.mark.parametrize("change", [dict(scene_ratio=-1.0), dict(scene_floor=1.5), dict(scene_floor=-0.1)])
def test_bad_scene_settings_are_refused(change):
    with pytest.raises(InvalidArgument, match="scene"):
        GopConfig(**change)


def test_gamma_is_per_block_so_one_value_serves_every_grid():
    # The same footage on a 4x larger grid has 4x the pcost but the same pcost per block.
    small, large = Grid(256, 256), Grid(512, 512)
    per_block = [None, 100.0, 9000.0, 100.0]
    totals_small = [None] + [v * small.n_blocks for v in per_block[1:]]
    totals_large = [None] + [v * large.n_blocks for v in per_block[1:]]
    gop = GopConfig(gamma_per_block=5000.0)
    as_small = assign_roles([None] + [t / small.n_blocks for t in totals_small[1:]], gop)
    as_large = assign_roles([None] + [t / large.n_blocks for t in totals_large[1:]], gop)
    assert as_small == as_large == [I, P, I, P]


def test_calibration_reaches_the_target_median():
    import random
    import statistics

    rng = random.Random(0)
    # Mostly small costs with occasional spikes of varying height.
    videos = [[None] + [rng.choice([rng.uniform(50, 150)] * 9 + [rng.uniform(500, 5000)]) for _ in range(300)]
              for _ in range(4)]
    def median_p(gamma: float) -> float:
        cfg = GopConfig(gamma_per_block=gamma, k_max=16)
        return statistics.median(n - 1 for v in videos for n in gop_lengths(assign_roles(v, cfg)))

    for target in (4, 8, 12):
        gamma = calibrate_gamma(videos, target_median_p=target, k_max=16)
        assert median_p(gamma) >= target
        # The smallest such gamma: one more anchor (the next lower pcost) and the median falls short.
        below = max(x for v in videos for x in v[1:] if x < gamma)
        assert median_p(below * 0.999) < target


def test_calibration_rejects_empty_input():
    with pytest.raises(InvalidArgument):
        calibrate_gamma([[None]])


def test_median_p_per_gop_counts_p_frames_of_every_gop():
    from videomemory.codec.gop import median_p_per_gop

    gop = GopConfig(gamma_per_block=1000.0, k_max=16)
    # GOPs of 3, 1 and 5 frames -> 2, 0 and 4 P-frames; median 2. A second video adds GOPs of 17 and 4 frames.
    first = [None, 1, 1, 5000, 5000, 1, 1, 1, 1]
    assert median_p_per_gop([first], gop) == 2
    assert median_p_per_gop([first, [None] + [1] * 20], gop) == 3  # counts 2, 0, 4, 16, 3


def test_the_gop_coder_hands_on_the_frame_it_converted():
    # codec.encoder.Encoder codes the residual from this tensor instead of converting the image again.
    import numpy as np
    import torch

    from videomemory.codec.config import CodecConfig
    from videomemory.codec.decode import SampledFrame
    from videomemory.codec.gop import GopEncoder

    encoder = GopEncoder(CodecConfig(grid=Grid(64, 64)), "cpu")
    assert encoder.current is None
    rng = np.random.default_rng(0)
    for i in range(2):
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        frame = SampledFrame.from_array(image, i, i / 2)
        encoder.push(frame)
        assert torch.equal(encoder.current, torch.from_numpy(image).permute(2, 0, 1))
        assert np.shares_memory(encoder.current.numpy(), frame.image)  # on the CPU a view, not a copy


def test_a_live_caller_may_reuse_one_buffer_for_every_frame():
    # The GOP coder keeps each frame's image as the next reference; from_array copies the
    # caller's buffer, so refilling it cannot change the reference under the coder.
    import numpy as np
    import torch

    from videomemory.codec.config import CodecConfig
    from videomemory.codec.decode import SampledFrame
    from videomemory.codec.gop import GopEncoder

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    images = [np.roll(base, 3 * i, axis=1) for i in range(4)]
    config = CodecConfig(grid=Grid(64, 64))
    fresh, reused = GopEncoder(config, "cpu"), GopEncoder(config, "cpu")
    buffer = np.empty_like(base)
    for i, image in enumerate(images):
        buffer[:] = image
        a = fresh.push(SampledFrame.from_array(image.copy(), i, i / 2))
        b = reused.push(SampledFrame.from_array(buffer, i, i / 2))
        assert a.summary() == b.summary()
        if i:
            assert a.motion.pcost > 0 and torch.equal(a.motion.vectors, b.motion.vectors)
