"""The search-accuracy benchmark compares the fast search with the exhaustive one on a recipe it was not tuned on."""

from __future__ import annotations

from videomemory.bench import search_accuracy


def test_a_zoom_recipe_keeps_99pct_of_its_predicted_blocks_within_1pct(tmp_path):
    row = search_accuracy.measure("high-motion", 1, tmp_path, (256, 256), 6.0)
    assert row["recipe"] == "zoom" and row["predicted_pairs"] >= 8
    assert row["within_1pct"] >= 0.99 and 0 < row["worst_pair"] <= 1 and row["fast_core_ms_per_pair"] > 0
    search_accuracy.show({"grid": "256x256", "duration_s": 6.0, "rows": [row]})  # the table prints
