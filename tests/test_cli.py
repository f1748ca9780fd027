"""The CLI is a thin shell: JSON lines for machines, one-line errors (exit 2) for people."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from videomemory.bench.bad_inputs import write_bad_inputs, write_counter_video
from videomemory.cli import app

runner = CliRunner()


def _no_constant(name: str):
    raise AssertionError(f"{name} is not JSON")


def test_encode_json_prints_frames_gops_and_a_summary(tmp_path):
    video = write_counter_video(tmp_path / "c.mp4", 75, 30.0, size=(96, 64))
    result = runner.invoke(app, ["encode", str(video), "--grid", "96x64", "--json"])
    assert result.exit_code == 0, result.output
    # Strict JSON (no Infinity or NaN): the counter's first frame is rebuilt exactly, which reads 99 dB.
    records = [json.loads(line, parse_constant=_no_constant) for line in result.stdout.splitlines() if line.strip()]
    frames = [r for r in records if r["type"] == "frame"]
    assert frames[0]["psnr_db"] == 99.0 and records[-1]["psnr_min_db"] <= records[-1]["psnr_mean_db"] <= 99.0
    assert [f["sampled_index"] for f in frames] == [0, 1, 2, 3, 4]
    assert [f["pts_ms"] for f in frames] == [0, 500, 1000, 1500, 2000]
    assert [f["source_index"] for f in frames] == [0, 15, 30, 45, 60]
    assert frames[0]["role"] == "I" and frames[0]["pcost"] is None
    assert all(f["role"] in ("I", "P") and isinstance(f["pcost"], int) for f in frames[1:])
    gops = [r for r in records if r["type"] == "gop"]
    assert sum(g["frames"] for g in gops) == len(frames) and gops[0]["frames"] >= 1
    assert records[-1]["type"] == "summary"


def test_encode_table_names_roles_and_gop_lengths(tmp_path):
    video = write_counter_video(tmp_path / "c.mp4", 40, 20.0, size=(64, 64))
    result = runner.invoke(app, ["encode", str(video), "--grid", "64x64"])
    assert result.exit_code == 0, result.output
    assert "GOP" in result.stdout and " I " in result.stdout


def test_a_table_piped_to_a_file_keeps_its_column_names_whole(tmp_path):
    # Off a terminal rich assumes 80 columns and cut the encode table's 13 columns to "fr…", "ro…".
    video = write_counter_video(tmp_path / "c.mp4", 40, 20.0, size=(64, 64))
    run = subprocess.run([sys.executable, "-m", "videomemory", "encode", str(video), "--grid", "64x64"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    header = next(line for line in run.stdout.splitlines() if "frame" in line)
    for name in ("frame", "pts ms", "role", "pcost/block", "motion px", "why anchor", "GOP len", "class", "tokens", "PSNR dB"):
        assert name in header, (name, header)


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = write_bad_inputs(tmp_path)
    for name in ("random_bytes", "audio_only", "tiny", "zero_frames", "truncated_data"):
        result = runner.invoke(app, ["encode", str(bad[name])])
        assert result.exit_code == 2, (name, result.output)
        assert "error:" in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["encode", str(tmp_path / "missing.mp4")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_lenient_keeps_the_frames_before_the_damage(tmp_path):
    bad = write_bad_inputs(tmp_path)
    result = runner.invoke(app, ["encode", str(bad["truncated_data"]), "--grid", "160x128", "--json", "--lenient"])
    assert result.exit_code == 0, result.output
    assert any(json.loads(line)["type"] == "frame" for line in result.stdout.splitlines())


def test_encode_names_each_gops_content_class_and_hybrid_flag(tmp_path, monkeypatch):
    from videomemory import cli
    from videomemory.codec.stats import CLASSES

    video = write_counter_video(tmp_path / "c.mp4", 75, 30.0, size=(96, 64))
    result = runner.invoke(app, ["encode", str(video), "--grid", "96x64", "--json"])
    assert result.exit_code == 0, result.output
    gops = [r for r in map(json.loads, filter(str.strip, result.stdout.splitlines())) if r["type"] == "gop"]
    assert gops and all(g["content_class"] in CLASSES and isinstance(g["hybrid_flat"], bool) for g in gops)
    monkeypatch.setattr(cli.out, "width", 200)  # under `pytest -s` on a narrow terminal columns would be cut
    table = runner.invoke(app, ["encode", str(video), "--grid", "96x64"])
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if "GOP len" in line)
    assert "class" in header and "flat" in header
    assert gops[0]["content_class"] in table.stdout


def test_encode_vectors_gives_each_frames_field_and_its_most_common_vector_is_the_pan(tmp_path):
    path = tmp_path / "pan.mp4"
    assert runner.invoke(app, ["synth", "pan", str(path), "--size", "256x256", "--duration", "3"]).exit_code == 0
    vx, vy = json.loads(path.with_suffix(".json").read_text())["shots"][0]["pan"]  # content px/s
    want = [-round(vy / 2), -round(vx / 2)]  # (dy, dx) per sampled frame at 2 fps: where the content was
    assert want == [-4, -12]
    result = runner.invoke(app, ["encode", str(path), "--grid", "256x256", "--vectors"])  # --vectors implies --json
    assert result.exit_code == 0, result.output
    frames = [r for r in map(json.loads, filter(str.strip, result.stdout.splitlines())) if r["type"] == "frame"]
    assert "vectors" not in frames[0] and "motion_mode" not in frames[0]  # frame 0 has no reference
    for f in frames[1:]:
        assert len(f["vectors"]) == len(f["block_cost"]) == 16 and all(len(row) == 16 for row in f["vectors"])
        assert f["motion_mode"] == want and f["motion_mode_share"] >= 0.9
        assert f["global_motion"] == want  # what the rates were counted from (codec.motion.merge_global)
        inner = [v for row in f["vectors"][1:-1] for v in row[1:-1]]
        assert sum(v == want for v in inner) / len(inner) >= 0.95
        assert f["pcost"] == sum(map(sum, f["block_cost"]))
    plain = runner.invoke(app, ["encode", str(path), "--grid", "256x256", "--json"])
    assert "vectors" not in plain.stdout and "motion_mode" in plain.stdout


def test_synth_writes_the_video_and_its_ground_truth_with_cuts_on_its_own_frames(tmp_path):
    # Shot boundaries fall on the frame times of the rate asked for (5 s in four shots at 25 fps:
    # 1.24 s, 2.48 s, 3.76 s), so each cut is where a shot starts, not the next frame after it.
    path = tmp_path / "cuts.mp4"
    result = runner.invoke(app, ["synth", "cuts", str(path), "--size", "96x64", "--duration", "5", "--fps", "25"])
    assert result.exit_code == 0, result.output
    truth = json.loads(path.with_suffix(".json").read_text())
    assert truth["cuts_s"] == [1.24, 2.48, 3.76]
    assert path.stat().st_size > 0
