"""The matched-budget evaluation suite: quick mode end to end, and the pieces it is built from."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from videomemory.bench import eval_suite
from videomemory.bench.eval_methods import METHODS, Send, budget_tpm, run_codec
from videomemory.bench.eval_metrics import Reference, cut_pr, event_hits, luma, psnr_of_mse
from videomemory.bench.eval_videos import CLASSES, make_video
from videomemory.codec.config import CodecConfig, Grid
from videomemory.codec.decode import sample_frames
from videomemory.codec.tokens import TokenModel


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick run of the suite (the CI size), shared by the tests below."""
    out = tmp_path_factory.mktemp("eval")
    result = eval_suite.run_suite(eval_suite.Settings.quick_mode(), out, log=False)
    return out, result


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.slow
def test_quick_run_writes_a_full_finite_table(quick):
    out, result = quick
    s = result["settings"]
    assert s["quick"] and s["videos"] == len(CLASSES) * s["per_class"]
    for name in ("eval.json", "eval.md", "fidelity_vs_tokens.png", "cost_spread.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "eval.json").read_text())["aggregate"] == json.loads(json.dumps(result["aggregate"]))
    agg = result["aggregate"]["methods"]
    assert set(agg) == {f"{r:g}" for r in s["ratios"]}
    for ratio in agg.values():
        assert list(ratio) == list(CLASSES)
        for cls in ratio.values():
            assert list(cls) == list(METHODS)
            for m in cls.values():
                for key in ("tokens_per_min", "psnr", "ssim"):
                    assert all(_finite(m[key][k]) for k in ("mean", "std", "worst")), key
                assert m["events"] > 0 and _finite(m["event_recall_pooled"]) and 0 <= m["event_recall_pooled"] <= 1
                assert 0 < m["ssim"]["mean"] <= 1
    md = (out / "eval.md").read_text()
    for r in s["ratios"]:
        table = md.split(f"## Budget 1/{r:g}")[1].split("##")[0]
        rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| class")]
        assert len(rows) == len(CLASSES) * len(METHODS)
        assert "nan" not in table and "inf" not in table
    assert "## Where the predictive code loses" in md
    for c in CLASSES:
        assert _finite(result["aggregate"]["cost"][c]["natural_tpm"]["mean"])
        assert _finite(result["aggregate"]["cost"][c]["first_part_error_pct"]["mean"])


@pytest.mark.slow
def test_every_baseline_spends_its_budget_and_no_more(quick):
    """flat/uniform/evs/paper: never over budget; flat/uniform/evs within one full image of it.

    ``adaptive`` is its causal rate control, one pass: over budget by at most its debt bound (one
    frame's allowance or 4% of the budget, ``codec.rate``), under it by at most about a frame's
    allowance (what the last frame could not spend on rectangles), and at or under flat.
    """
    _, result = quick
    s = result["settings"]
    anchor = s["tokens_per_image"]
    for v in result["videos"]:
        for key, budget in s["budgets_tpm"].items():
            allow = budget * v["minutes"]
            for m in ("flat", "uniform", "evs", "paper"):
                spent = v["methods"][m][key]["tokens"]
                assert spent <= allow + 1e-6, (v["video"], m, key)
            for m in ("flat", "uniform", "evs"):
                assert v["methods"][m][key]["tokens"] > allow - anchor, (v["video"], m, key)
            a = v["methods"]["adaptive"][key]["tokens"]
            per_frame = allow / v["frames"]
            assert allow - 2 * per_frame <= a <= allow + max(per_frame, 0.04 * allow) + 1e-6, (v["video"], key, a, allow)
            assert a <= v["frames"] * anchor
            rate = v["adaptive_rate"][key]
            assert rate["budget_tpm"] == budget and math.isclose(rate["tpm"] * v["minutes"], a)


@pytest.mark.slow
def test_adaptive_sees_more_events_than_uniform_at_the_loosest_budget(quick):
    _, result = quick
    loose = f"{min(result['settings']['ratios']):g}"
    hits = {m: sum(v["methods"][m][loose]["event_hits"] for v in result["videos"]) for m in ("adaptive", "uniform")}
    assert hits["adaptive"] > hits["uniform"], hits


def test_ssim_matches_scikit_image_on_the_same_luma():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    mse, ssim = Reference(b).fidelity(a)
    for i in range(2):
        want = structural_similarity(luma(a[i : i + 1])[0], luma(b[i : i + 1])[0], data_range=255)
        assert ssim[i] == pytest.approx(want, abs=1e-9)
        assert mse[i] == pytest.approx(np.mean((a[i].astype(float) - b[i]) ** 2))
        assert psnr_of_mse(mse[i]) == pytest.approx(10 * np.log10(255**2 / mse[i]))
    assert Reference(a).fidelity(a)[1] == pytest.approx([1.0, 1.0])


def test_cut_pr_matches_one_to_one_within_the_window():
    r = cut_pr([2.5, 2.6, 7.0], [2.4, 5.0])
    assert (r["matched"], r["claims"], r["cuts"]) == (1, 3, 2)
    assert r["precision"] == pytest.approx(1 / 3) and r["recall"] == 0.5
    assert cut_pr([], [])["recall"] == 1.0


def test_event_hits_need_the_box_covered_in_the_window():
    class E:
        time_s = 1.0

    cells = np.zeros((4, 4), bool)
    cells[0, 0] = True
    box = lambda e, t: (0, 0, 20, 20)  # noqa: E731 - inside cell (0, 0) of 32 px
    assert event_hits([E()], [Send(1.5, cells)], box, 32) == [True]
    assert event_hits([E()], [Send(1.6, cells)], box, 32) == [False]  # too late
    assert event_hits([E()], [Send(1.0, ~cells)], box, 32) == [False]  # wrong cells
    assert event_hits([E()], [Send(0.9), Send(1.2)], box, 32) == [True]  # a whole frame covers it


def test_suite_videos_have_their_ground_truth(tmp_path):
    for c in CLASSES:
        v = make_video(c, 1, tmp_path, (128, 128), 8.0)
        assert v.events, c
        for e in v.events:
            assert v.box_at(e, e.time_s) == e.box
            assert v.box_at(e, e.time_s - 0.2) != e.box  # it was not (half) there just before
        if c == "high-cut":
            assert len(v.truth.cuts_s) >= 2
            assert all(1.0 - 1e-6 <= b - a for a, b in zip([0.0] + v.truth.cuts_s, v.truth.cuts_s))
        else:
            assert len(v.truth.cuts_s) <= 1


@pytest.mark.slow
def test_replayed_motion_gives_the_same_code(tmp_path):
    """The budgeted passes reuse the unbudgeted pass's motion fields: identical to searching again."""
    v = make_video("high-cut", 0, tmp_path, (128, 128), 6.0)
    config = CodecConfig(grid=Grid(128, 128))
    frames = list(sample_frames(v.path, fps=2.0, grid=config.grid))
    base = run_codec(frames, config)
    budget = budget_tpm(TokenModel(grid=config.grid), 7.0)
    fresh = run_codec(frames, config, budget)
    replay = run_codec(frames, config, budget, motion=base.fields)
    assert fresh.plans == replay.plans and fresh.roles == replay.roles
    assert np.array_equal(fresh.images, replay.images)


def test_losses_section_names_what_the_data_says():
    def stats(x):
        return {"mean": x, "std": 0.0, "worst": x, "n": 1}

    def method(psnr, recall):
        return {"psnr": stats(psnr), "ssim": stats(0.5), "event_recall_pooled": recall}

    agg = {"methods": {"7": {c: {m: method(30.0, 1.0) for m in METHODS} for c in CLASSES}}}
    agg["methods"]["7"]["high-cut"]["uniform"] = method(31.5, 1.0)
    for c in agg["methods"]["7"].values():
        for m in c.values():
            m["tokens_per_min"], m["budget_tpm"] = stats(100.0), 100.0
    text = eval_suite.losses_section(agg, [7.0])
    assert "- 1/7, high-cut: PSNR 30.00 dB vs `uniform` 31.50 dB (-1.50)" in text
    assert text.count("\n- ") == 1


@pytest.mark.slow
def test_adaptive_sends_source_pixels_by_default_and_the_code_on_request(tmp_path):
    """pixels="source" pairs adaptive with the baselines (raw frames); "code" carries the codec's loss."""
    from videomemory.bench.eval_methods import adaptive_package

    v = make_video("low-motion", 0, tmp_path, (128, 128), 6.0)
    config = CodecConfig(grid=Grid(128, 128))
    model = TokenModel(grid=config.grid)
    frames = list(sample_frames(v.path, fps=2.0, grid=config.grid))
    run = run_codec(frames, config)
    source = adaptive_package(frames, run, model, 4.0)
    code = adaptive_package(frames, run, model, 4.0, pixels="code")
    assert np.array_equal(source.perceived[0], frames[0].image)  # the first full image is the sampled frame itself
    assert np.array_equal(code.perceived[0], run.images[0]) and not np.array_equal(code.perceived[0], frames[0].image)
    assert source.tokens == code.tokens  # the same plan either way
    with pytest.raises(ValueError, match="pixels"):
        adaptive_package(frames, run, model, 4.0, pixels="jpeg")
