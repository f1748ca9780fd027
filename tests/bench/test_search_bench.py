"""The search benchmark runs end to end on a flat and an inverted-file index and reports sane figures."""

from __future__ import annotations

import json
import math

from videomemory.bench import search
from videomemory.retrieval.index import FLAT_MAX, factory_for


def _numbers(value):
    """Every number inside a JSON-like value."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


def test_search_bench_measures_flat_and_ivf_unfiltered_and_filtered(capsys):
    result = json.loads(json.dumps(search.run([2_000, 60_000], dim=32, queries=30, clips=False)))
    assert result["benchmark"] == "search" and result["clips"] is None
    assert result["settings"]["sizes"] == [2_000, 60_000] and result["settings"]["dim"] == 32
    assert {"cpus", "faiss", "platform"} <= set(result["machine"])
    rows = result["rows"]
    assert [(r["n"], r["filter"]) for r in rows] == [(n, f) for n in (2_000, 60_000) for f in ("none", "block", "similar")]
    assert all(math.isfinite(x) for x in _numbers(result))
    keys = ("p50_ms", "p99_ms", "recall_at_10", "build_s", "index_bytes", "rows_searched", "distances_per_query")
    for row in rows:
        assert all(row[k] is not None for k in keys), row
        assert 0.0 <= row["recall_at_10"] <= 1.0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    flat, ivf = rows[:3], rows[3:]
    assert all(r["factory"] == "Flat" and r["nprobe"] == 0 and r["recall_at_10"] == 1.0 for r in flat)
    assert all(r["factory"].startswith("IVF") and r["nprobe"] > 0 and r["lists_per_query"] > 0 for r in ivf)
    assert ivf[1]["lists_per_query"] > ivf[0]["lists_per_query"]  # a filtered search probes more lists
    for filtered in rows[1:3] + rows[4:]:
        assert filtered["rows_searched"] < filtered["n"] / 5
    search.show(result)
    assert "recall@10" in capsys.readouterr().out


def test_factory_is_flat_below_flat_max_and_an_inverted_file_above():
    assert factory_for(1_000) == factory_for(FLAT_MAX - 1) == "Flat"
    for n in (FLAT_MAX, 1_000_000):
        lists, codes = factory_for(n).removeprefix("IVF").split(",")
        assert codes == "Flat" and int(lists) & (int(lists) - 1) == 0  # a power of two


def test_clip_latency_times_every_path_cold_and_warm(capsys):
    out = search.clip_latency(quick=True, reps=2, duration_s=12.0, lengths=(5,))
    assert [r["path"] for r in out["rows"]] == list(search.CLIP_PATHS)
    assert out["crop_bytes"] > 0 and out["stored_bytes"] > 0
    for r in out["rows"]:
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["tokens_mean"] > 0
        if r["path"] == "full-GOP rebuild":
            assert r["warm_p50_ms"] is None  # the baseline has no cache
        else:
            assert 0 < r["warm_p50_ms"] <= r["warm_p99_ms"]
    search.show({"settings": {"dim": 0, "k": 0, "queries": 0, "search_threads": 0}, "machine": {"cpus": 2, "faiss": ""},
                 "rows": [], "clips": out})
    assert "stored crops" in capsys.readouterr().out
