"""The matched-budget evaluation suite: quick mode end to end, and the pieces it is built from."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from videomemory.bench import eval_suite
from videomemory.bench.eval_methods import METHODS, Send, budget_tpm, run_codec
from videomemory.bench.eval_metrics import Reference, cut_pr, event_hits, luma, psnr_of_mse
from videomemory.bench.eval_videos import CLASSES, change_time, long_recipe, make_long_video, make_video
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
        fc = result["aggregate"]["forecast"][c]
        assert fc["videos"] == s["forecast_per_class"] > 0
        for key in ("natural_tpm", "first_minute_error_pct", "class_rate_error_pct"):
            assert all(_finite(fc[key][k]) for k in ("mean", "std", "worst")), (c, key)
    for r in result["videos"] + result["long_videos"]:
        assert _finite(r["natural_tpm"]) and r["natural_tpm"] > 0, r["video"]
    for r in result["long_videos"]:
        assert r["duration_s"] == pytest.approx(s["forecast_duration_s"]) and s["forecast_duration_s"] > 60
        assert r["first_minute_frames"] == 120 < r["frames"]
    table = md.split("## Forecast of a video's cost from its first minute")[1].split("##")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| class", "| video"))]
    assert len(rows) == len(CLASSES) + len(result["long_videos"]) and "nan" not in table


def _scenedetect_importable() -> bool:
    try:
        import scenedetect  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _scenedetect_importable(),
                    reason="scenedetect not importable: pip install -e '.[eval]' (scenedetect-headless) for the PySceneDetect column")
def test_the_scenedetect_column_is_real_numbers(quick):
    out, result = quick
    assert result["settings"]["scenedetect"]
    for v in result["videos"]:
        sd = v["cuts"]["scenedetect"]
        assert sd is not None and all(_finite(t) for t in sd["times"]), v["video"]
    for c in CLASSES:
        x = result["aggregate"]["cuts"][c]["scenedetect"]
        assert _finite(x["precision"]) and _finite(x["recall"]) and 0 <= x["recall"] <= 1, c
    assert result["aggregate"]["cuts"]["high-cut"]["scenedetect"]["cuts"] > 0
    table = (out / "eval.md").read_text().split("## Cut detection")[1].split("##")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| class")]
    assert len(rows) == len(CLASSES) and not any(line.rstrip(" |").endswith("n/a") for line in rows)


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


def test_a_montage_cuts_between_different_pictures():
    """Each photo a montage can cut to is a different picture (skimage's "cat" is "chelsea": a
    "cut" between them was no cut, and counted as a missed one)."""
    from videomemory.bench.eval_videos import MONTAGE_PHOTOS
    from videomemory.bench.synth import _photo

    pictures = [_photo(p) for p in MONTAGE_PHOTOS]
    for i, a in enumerate(pictures):
        for j in range(i):
            b = pictures[j]
            assert a.shape != b.shape or not np.array_equal(a, b), (MONTAGE_PHOTOS[i], MONTAGE_PHOTOS[j])


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


def test_long_videos_change_after_the_first_minute_in_the_even_seeds():
    """The forecast videos: the shots fill the duration, and where the pace changes it changes
    after the first minute (so the first minute is no sample of the rest)."""
    for d in (70.0, 180.0):
        tc = change_time(d)
        assert 60.0 < tc < d
        for c in CLASSES:
            for seed in (0, 1):
                name, shots = long_recipe(c, seed, (128, 128), d)
                assert sum(x.duration_s for x in shots) == pytest.approx(d), (c, seed)
                assert all(x.duration_s > 0.5 for x in shots), (c, seed)
        static = long_recipe("static", 0, (128, 128), d)[1][0]
        assert all(sp.velocity[0] * sp.start[0] <= 0 for sp in static.sprites)  # each walks into the frame
        # Nobody in view before the change: a walker's centre crosses the edge at tc or later.
        assert min(abs(sp.start[0] + sp.size[0] / 2 - (0 if sp.velocity[0] > 0 else 128)) / abs(sp.velocity[0])
                   for sp in static.sprites) >= tc - 1e-6
        slow = long_recipe("high-cut", 0, (128, 128), d)[1]
        ends = np.cumsum([x.duration_s for x in slow])
        assert max(x.duration_s for x, e in zip(slow, ends) if e <= tc + 1e-6) <= 3.0 + 1e-6
        assert min(x.duration_s for x, e in zip(slow, ends) if e > tc + 1e-6) >= 3.0  # 6-12 s (the tail may be shorter)
    with pytest.raises(ValueError, match="longer"):
        long_recipe("static", 0, (128, 128), 60.0)


@pytest.mark.slow
def test_the_first_minute_forecast_sees_only_the_first_minute(tmp_path):
    """The codec is causal: the first minute's statistics of the whole run are those of coding
    the first minute alone (a strict prefix, nothing from later frames leaks into the forecast)."""
    from videomemory.codec.stats import content_stats

    import dataclasses

    _, truth = make_long_video("high-cut", 0, tmp_path, (128, 128), 66.0)
    config = CodecConfig(grid=Grid(128, 128))
    config = config.with_(residual=dataclasses.replace(config.residual, anchor_format="jpeg"))  # as the suite (AVIF: 20x slower)
    frames = list(sample_frames(truth.path, fps=2.0, grid=config.grid))
    n = eval_suite.first_minute_frames([f.time_s for f in frames])
    assert n == 120 < len(frames)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the suite's workers (on a loaded 2-core machine, 2 threads cost 10x the CPU)
    try:
        whole = run_codec(frames, config, keep=True)
        alone = run_codec(frames[:n], config, keep=True)
    finally:
        torch.set_num_threads(threads)
    assert whole.plans[:n] == alone.plans and whole.roles[:n] == alone.roles
    assert content_stats(whole.encoded[:n]) == content_stats(alone.encoded)


def test_forecast_errors_price_the_first_minutes_class_at_the_suites_rate():
    suite = [{"codec_class": "static", "natural_tpm": 100.0}, {"codec_class": "static", "natural_tpm": 300.0},
             {"codec_class": "high-cut", "natural_tpm": 1000.0}]
    longs = [{"first_minute_class": "static", "first_minute_tpm": 50.0, "natural_tpm": 100.0},
             {"first_minute_class": "high-motion", "first_minute_tpm": 400.0, "natural_tpm": 400.0}]
    eval_suite.forecast_errors(longs, suite, suite_flat_tpm=2000.0, long_flat_tpm=1000.0)
    a, b = longs[0]["forecast"], longs[1]["forecast"]
    assert a["class_rate_tpm"] == pytest.approx(100.0)  # static's mean share 0.1 of a 1,000 flat
    assert a["first_minute_signed_pct"] == pytest.approx(-50.0) and a["first_minute_error_pct"] == pytest.approx(50.0)
    assert a["class_rate_error_pct"] == pytest.approx(0.0) and a["class_rate_from"] == 2
    assert b["class_rate_from"] == 0 and b["class_rate_tpm"] == pytest.approx(1000.0 * (0.05 + 0.15 + 0.5) / 3)
    assert b["first_minute_error_pct"] == 0.0
