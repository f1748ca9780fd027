"""The API latency benchmark runs end to end on short videos and reports finite ratios."""

from __future__ import annotations

import math

from videomemory.bench import api_latency


def test_api_latency_measures_grpc_against_in_process():
    result = api_latency.run(quick=True, calls=8, seconds=1.0, duration=6.0)  # each setting capped at 1 s: the test checks the wiring, the bench the figures
    assert {(r["call"], r["clients"]) for r in result["rows"]} == {("Search", 1), ("Search", 8), ("GetClip", 1), ("GetClip", 8)}
    for r in result["rows"]:
        for side in ("grpc", "in_process"):
            assert r[side]["calls"] >= 1 and all(math.isfinite(r[side][k]) and r[side][k] > 0 for k in ("p50_ms", "p99_ms", "per_s"))
        assert math.isfinite(r["p50_ratio"]) and math.isfinite(r["throughput_ratio"])
    api_latency.show(result)
