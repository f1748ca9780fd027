"""The token-budget benchmark runs end to end on tiny videos and writes consistent JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from videomemory.bench import token_budget
from videomemory.codec.config import Grid


def test_token_budget_writes_json_with_plans_in_order(tmp_path):
    out = tmp_path / "tokens.json"
    args = ["--size", "128", "--seeds", "1", "--duration", "10", "--presets", "static,objects", "--json", str(out)]
    res = CliRunner().invoke(token_budget.app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    result = json.loads(out.read_text())
    settings = result["settings"]
    assert {"size", "seeds", "duration_s", "torch_threads", "cpu_count"} <= settings.keys()
    assert (settings["size"], settings["seeds"], settings["duration_s"]) == (128, 1, 10.0)
    assert [p["preset"] for p in result["presets"]] == ["static", "objects"]
    flat = 120 * Grid(128, 128).tokens_per_image  # 2 fps = 120 full images a minute
    for row in result["presets"]:
        assert {"preset", "class", "seeds", "aggregate"} <= row.keys()
        assert len(row["seeds"]) == 1
        for key in ("adaptive_tpm", "paper_tpm", "flat_tpm", "uniform_tpm", "saving_vs_flat_pct",
                    "psnr_mean", "code_kb_per_min", "jpeg90_kb_per_min", "code_vs_jpeg90"):
            assert key in row["aggregate"] and row["aggregate"][key]["std"] == 0.0, key
        for rec in row["seeds"]:
            assert rec["flat_tpm"] == flat
            assert rec["paper_tpm"] <= rec["flat_tpm"]
            assert rec["adaptive_tpm"] <= rec["flat_tpm"]
            assert rec["uniform_tpm"] <= rec["adaptive_tpm"]
            assert rec["code_kb_per_min"] > 0 and rec["jpeg90_kb_per_min"] > 0
