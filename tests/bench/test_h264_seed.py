"""bench.h264_seed: the Eq. 1 twin agrees with the search, and chained H.264 vectors follow a known pan."""

from __future__ import annotations

import numpy as np

from videomemory.bench import synth
from videomemory.bench.codec_truth import pan_vector
from videomemory.bench.h264_seed import block_costs, chain, source_motion
from videomemory.codec.config import BLOCK
from videomemory.codec.decode import sample_frames
from videomemory.codec.motion import as_tensor, fast_search

SIZE = (256, 256)


def test_block_costs_are_the_searchs_costs_for_its_own_vectors(tmp_path):
    truth = synth.write_video(tmp_path / "pan.mp4", [synth.Shot(3.0, "coffee", pan=(-30.0, 12.0))], SIZE, 10.0)
    a, b = (f.image for f in list(sample_frames(truth.path, fps=2.0, grid=None))[:2])
    field = fast_search(as_tensor(b), as_tensor(a), 64, 4)
    assert np.array_equal(block_costs(b, a, field.vectors.numpy().astype(np.int64), 4), field.cost.numpy())
    zero = block_costs(b, a, np.zeros((*field.cost.shape, 2), np.int64), 4)
    assert (zero > field.cost.numpy()).mean() > 0.9  # the pan is far cheaper than standing still


def test_chained_source_vectors_follow_a_pan_between_sampled_frames(tmp_path):
    """15 source frames of 2.4 and 0.8 px each chain to the pan between two sampled frames on
    most interior blocks, when every block predicts from the frame just before (libx264's
    veryfast: one reference). A pair whose interval holds an I-frame (every 2 s) is lost."""
    truth = synth.write_video(tmp_path / "pan.mp4", [synth.Shot(4.0, "astronaut", pan=(-72.0, 24.0))], SIZE, 30.0,
                              x264_preset="veryfast")
    fields = source_motion(truth.path)
    assert len(fields) == 120 and np.isnan(fields[0]).all() and np.isnan(fields[60]).all()  # the I-frames
    assert np.allclose(np.nanmedian(fields[1], (0, 1)), (-0.8, 2.4), atol=0.5)
    frames = list(sample_frames(truth.path, fps=2.0, grid=None))
    by, bx = SIZE[1] // BLOCK, SIZE[0] // BLOCK
    inner = (slice(2, by - 2), slice(2, bx - 2))
    shares = []
    for prev, cur in zip(frames, frames[1:]):
        got = chain(fields, prev.source_index, cur.source_index, by, bx)[inner]
        if prev.source_index < 60 <= cur.source_index:
            assert np.isnan(got).all()
            continue
        want = pan_vector(truth, prev, cur, (1.0, 1.0))
        shares.append((np.round(got) == want).all(-1).mean())
    assert len(shares) == 6 and min(shares) >= 0.8, shares
