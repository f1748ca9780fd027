"""The ingest benchmark runs end to end on a short video and reports finite, consistent figures."""

from __future__ import annotations

import math

from videomemory.bench import ingest


def test_ingest_bench_measures_ingest_against_decode_in_one_run():
    result = ingest.run(quick=True, duration=3.0, sizes=["480p"], device="cpu")
    (row,) = result["rows"]
    assert row["size"] == "854x480" and row["sampled_frames"] == 6 and row["duration_s"] == 3.0
    for key in ("decode_s", "ingest_s", "ratio", "x_realtime", "stored_kb_per_min", "source_kb_per_min", "stored_vs_source"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert abs(row["ratio"] - row["ingest_s"] / row["decode_s"]) < 0.01 + 0.01 * row["ratio"]
    ingest.show(result)  # the table prints without error
