"""search, clip, reindex and demo as a user runs them from the command line."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from videomemory.cli import app
from videomemory.codec.decode import frame_at

runner = CliRunner()


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_index_search_clip_reindex(videos, tmp_path):
    store = str(tmp_path / "store")
    res = runner.invoke(app, ["index", str(videos["cuts"]), str(videos["pan"]), "--store", store, "--json"])
    assert res.exit_code == 0, res.output
    keys = {r["source"]: r["key"] for r in _lines(res.stdout) if "source" in r}
    pan_key = keys[str(videos["pan"])]

    query = tmp_path / "query.png"
    Image.fromarray(frame_at(videos["pan"], 4.2)).save(query)
    res = runner.invoke(app, ["search", "--image", str(query), "--store", store, "--json", "--limit", "2"])
    assert res.exit_code == 0, res.output
    hits = _lines(res.stdout)
    assert hits[0]["video_key"] == pan_key and hits[0]["start_ms"] <= 4200 < hits[0]["end_ms"]
    assert hits[-1]["embedder"] == "descriptor-v1" and hits[-1]["next_page_token"]

    res = runner.invoke(app, ["search", "a dog", "--store", store])
    assert res.exit_code == 2 and "--embedder" in res.output  # text needs a text model: said plainly

    res = runner.invoke(app, ["clip", pan_key[:8], "--start", "1.2", "--end", "4", "--budget", "400", "--store", store,
                              "--out", str(tmp_path / "pkg"), "--messages", "--json"])
    assert res.exit_code == 0, res.output
    clip = _lines(res.stdout)[0]
    assert clip["tokens"] <= 400 and clip["parts"][0]["resynthesised"]
    assert (tmp_path / "pkg" / "clip.json").is_file() and (tmp_path / "pkg" / "messages.json").is_file()

    res = runner.invoke(app, ["clip", pan_key, "--start", "0", "--end", "3", "--budget", "100", "--store", store])
    assert res.exit_code == 2 and "minimum is 256" in res.output

    res = runner.invoke(app, ["reindex", "--store", store, "--rebuild"])
    assert res.exit_code == 0 and "rebuilt (forced)" in res.output


def test_demo_does_the_whole_job_offline(tmp_path):
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    assert res.exit_code == 0, res.output
    for step in ("1. Index", "2. Search", "3. Clip", "4. Cite"):
        assert step in res.stdout
    out = tmp_path / "out"
    clip = json.loads((out / "clip" / "clip.json").read_text())
    assert clip["tokens"] <= 600 and clip["parts"][0]["role"] == "anchor"
    assert list(out.glob("cited_*.png")) and (out / "timeline.png").is_file()
    again = runner.invoke(app, ["demo", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    assert again.exit_code == 0 and "already indexed" in again.stdout
