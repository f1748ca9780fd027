"""The memory commands as a user runs them: index a folder, list, inspect, cite, plot."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from videomemory.bench.bad_inputs import write_bad_inputs
from videomemory.cli import app

runner = CliRunner()


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_index_list_inspect_cite_plot(videos, tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(videos["cuts"], folder / "cuts.mp4")
    bad = write_bad_inputs(tmp_path / "bad")
    shutil.copy(bad["corrupt"], folder / "broken.mp4")
    store = str(tmp_path / "store")

    res = runner.invoke(app, ["index", str(folder), "--store", store, "--json"])
    assert res.exit_code == 1  # one file failed: the job finished, and says so
    rows = _lines(res.stdout)
    by = {r["source"].rsplit("/", 1)[1]: r for r in rows if "source" in r}
    assert by["cuts.mp4"]["status"] == "indexed" and by["broken.mp4"]["status"] == "failed"
    assert "broken.mp4" in by["broken.mp4"]["error"] and rows[-1]["summary"]["failed"] == 1
    key = by["cuts.mp4"]["key"]

    res = runner.invoke(app, ["index", str(folder / "cuts.mp4"), "--store", store])
    assert res.exit_code == 0 and "1 already there" in res.stdout
    assert "renamed" not in res.stdout  # the same path: no need to say where the stored code came from
    shutil.copy(videos["cuts"], tmp_path / "renamed.mp4")
    res = runner.invoke(app, ["index", str(tmp_path / "renamed.mp4"), "--store", store])
    said = "".join(res.stdout.split())  # rich wraps and folds long lines
    assert res.exit_code == 0 and "renamed.mp4:alreadyindexedon20" in said
    assert f"from{folder / 'cuts.mp4'}" in said and "--replace" in said

    res = runner.invoke(app, ["list", "--store", store, "--json"])
    assert [v["key"] for v in _lines(res.stdout)] == [key]

    res = runner.invoke(app, ["inspect", key[:8], "--store", store, "--json"])
    assert res.exit_code == 0, res.output
    lines = _lines(res.stdout)
    assert lines[0]["video"]["key"] == key and len(lines) - 1 == lines[0]["video"]["segments"]
    assert lines[1]["anchor"] == f"videos/{key}/frames/0"

    tag = f"[v{key[:8]}@2.600]"
    res = runner.invoke(app, ["cite", f"see {tag} and [v{key[:8]}@99.000]", "--store", store, "--json", "--out", str(tmp_path / "png")])
    assert res.exit_code == 1  # the second tag is past the end
    cites = _lines(res.stdout)
    assert cites[0]["tag"] == tag and cites[0]["frame_tag"] == f"[v{key[:8]}@2.500]" and not cites[0]["exact"]
    assert cites[0]["frame"] == f"videos/{key}/frames/2500" and (tmp_path / "png" / f"{key}_2500_code.png").is_file()
    assert cites[1]["error_status"] == "NOT_FOUND" and "past the end" in cites[1]["error"]

    res = runner.invoke(app, ["cite", tag, "--store", store])  # the table spells the tag out (no markup eaten)
    assert res.exit_code == 0 and tag in res.stdout

    res = runner.invoke(app, ["inspect", "0123456789abcdef", "--store", store])
    assert res.exit_code == 2 and "not in this store" in res.output

    res = runner.invoke(app, ["plot", key, "--store", store, "--out", str(tmp_path / "t.png")])
    assert res.exit_code == 0 and (tmp_path / "t.png").stat().st_size > 10_000
