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
                    "psnr_mean", "code_kb_per_min", "jpeg90_kb_per_min", "code_vs_jpeg90", "drift_any_db"):
            assert key in row["aggregate"] and row["aggregate"][key]["std"] == 0.0, key
        for rec in row["seeds"]:
            assert rec["flat_tpm"] == flat
            assert rec["paper_tpm"] <= rec["flat_tpm"]
            assert rec["adaptive_tpm"] <= rec["flat_tpm"]
            assert rec["uniform_tpm"] <= rec["adaptive_tpm"]
            assert rec["code_kb_per_min"] > 0 and rec["jpeg90_kb_per_min"] > 0


def test_drift_is_the_worst_first_p_to_last_p_gap_per_gop():
    inf = float("inf")
    roles = ["I", "P", "P", "P", "I", "P", "P", "I", "P", "P", "P"]
    psnrs = [45.0, 43.0, 42.5, 42.0, 44.0, 43.0, 41.0, 44.0, inf, 42.0, 41.0]
    got = token_budget.drift(psnrs, roles, k_max=3)
    assert got == {"drift_full_db": 1.0, "drift_any_db": 2.0, "full_gops": 1}  # the inf GOP is left out
    assert token_budget.drift([40.0, 39.0], ["I", "P"], k_max=3) == {"drift_full_db": None, "drift_any_db": None, "full_gops": 0}


def test_residual_changes_parse_into_a_residual_config():
    import pytest

    from videomemory.codec.config import ResidualConfig

    legacy = token_budget.residual_config("anchor_quality=90, anchor_psnr=0,frame_intra=false")
    assert legacy == ResidualConfig(anchor_quality=90, anchor_psnr=0.0, frame_intra=False)
    assert token_budget.residual_config("") == ResidualConfig()
    with pytest.raises(ValueError):
        token_budget.residual_config("no_such_field=1")
