"""Ingest: content keys across paths and settings, idempotence, atomic commits, crash recovery, bad files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from videomemory.bench.bad_inputs import write_bad_inputs
from videomemory.codec.config import CodecConfig
from videomemory.errors import FailedPrecondition, InvalidVideo, NotFound
from videomemory.memory import records
from videomemory.memory.ids import FrameId
from videomemory.memory.ingest import expand_sources, ingest_archive, ingest_video
from videomemory.memory.store import Store


def _physical(store: Store, key: str) -> tuple[int, int, int]:
    return store.count_rows("videos", key=key), store.count_rows("segments", key=key), store.count_rows("frames", key=key)


def _assert_exactly_once(store: Store, tenant: str, key: str) -> None:
    video = store.get_video(tenant, key)
    assert _physical(store, key) == (1, video.segments, video.frames)
    assert store.frames(video).num_rows == video.frames
    assert store.segments(video).num_rows == video.segments
    # Crop rows: exactly one per frame sent as changed cells, all of the visible ingest.
    rows = store.frames(video, columns=["role", "plan_role", "rects"]).to_pylist()
    sent = sum(1 for r in rows if r["rects"] and records.sends_crops(r["role"], r["plan_role"]))
    assert store.count_rows("crops", tenant, key) == sent == store.crops(video, None, ["ms"]).num_rows


def test_same_video_at_two_paths_and_two_fps_gets_one_key_and_equal_frame_ids(videos, tmp_path, store):
    copy = tmp_path / "copy" / "other-name.mp4"
    copy.parent.mkdir()
    shutil.copy(videos["objects"], copy)
    a = ingest_video(store, videos["objects"], tenant="t-two", config=CodecConfig(fps=2.0))
    b = ingest_video(store, copy, tenant="t-four", config=CodecConfig(fps=4.0))
    assert a.key == b.key and a.status == b.status == "indexed"
    ms2 = store.frames(store.get_video("t-two", a.key), columns=["ms"])["ms"].to_pylist()
    ms4 = store.frames(store.get_video("t-four", b.key), columns=["ms"])["ms"].to_pylist()
    assert len(ms4) == 2 * len(ms2)
    shared = set(ms2) & set(ms4)
    assert shared == set(ms2)  # every 2 fps instant is also a 4 fps instant: same source moment, same ms
    assert {FrameId(a.key, ms) for ms in shared} == {FrameId(b.key, ms) for ms in shared}


def test_reingest_is_a_no_op(videos, store):
    first = ingest_video(store, videos["cuts"])
    versions = {n: store.table(n).version for n in ("videos", "segments", "frames")}
    again = ingest_video(store, videos["cuts"], config=CodecConfig(fps=4.0))  # other settings: still the same video
    assert again.status == "skipped" and again.key == first.key and again.frames == first.frames
    assert {n: store.table(n).version for n in versions} == versions  # nothing was written
    _assert_exactly_once(store, "default", first.key)


def test_a_copy_elsewhere_is_skipped_and_says_which_file_the_stored_code_came_from(videos, store, tmp_path):
    first = ingest_video(store, videos["cuts"])
    copy = tmp_path / "elsewhere" / "renamed.mp4"
    copy.parent.mkdir()
    shutil.copy(videos["cuts"], copy)
    again = ingest_video(store, copy)
    assert again.status == "skipped" and again.key == first.key
    assert again.stored_source == str(videos["cuts"]) != again.source
    stored = store.get_video("default", first.key)
    assert again.stored_at == stored.created_at.isoformat(timespec="seconds") and again.stored_at[:4] >= "2026"
    assert first.stored_source == first.stored_at == ""  # only a skip has an earlier entry to point to


def test_replace_swaps_the_code_atomically_and_drops_the_old_rows(videos, store):
    first = ingest_video(store, videos["cuts"], config=CodecConfig(fps=2.0))
    second = ingest_video(store, videos["cuts"], config=CodecConfig(fps=1.0), replace=True)
    assert second.status == "replaced" and second.frames == first.frames // 2
    video = store.get_video("default", first.key)
    assert video.fps == 1.0 and video.frames == second.frames
    _assert_exactly_once(store, "default", first.key)


def test_a_failure_midway_leaves_the_store_as_it_was(videos, tmp_path, store, monkeypatch):
    good = ingest_video(store, videos["cuts"])
    before = {n: store.count_rows(n) for n in ("videos", "segments", "frames", "crops")}
    bad = write_bad_inputs(tmp_path / "bad")
    for name in ("truncated_data", "corrupt"):
        with pytest.raises(InvalidVideo):
            ingest_video(store, bad[name])
        assert {n: store.count_rows(n) for n in before} == before  # not even a claim row is left

    # A failure after rows were written (small batches, the coder dies at frame 7) is rolled back too.
    from videomemory.codec.encoder import Encoder
    from videomemory.memory import ingest as ingest_mod

    real_push = Encoder.push

    def dying_push(self, frame):
        if frame.sampled_index == 7:
            raise RuntimeError("simulated crash in the coder")
        return real_push(self, frame)

    monkeypatch.setattr(ingest_mod, "FRAME_BATCH", 2)
    monkeypatch.setattr(Encoder, "push", dying_push)
    version = store.table("frames").version
    with pytest.raises(RuntimeError):
        ingest_video(store, videos["pan"])
    assert store.table("frames").version >= version + 4  # three batches were written, then deleted
    assert {n: store.count_rows(n) for n in before} == before
    assert [v.key for v in store.list_videos("default")] == [good.key]
    _assert_exactly_once(store, "default", good.key)


def test_a_corrupt_file_in_a_folder_is_reported_and_the_others_are_indexed(videos, tmp_path, store):
    folder = tmp_path / "archive"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(videos["cuts"], folder / "a.mp4")
    shutil.copy(videos["pan"], folder / "sub" / "b.mp4")
    bad = write_bad_inputs(tmp_path / "bad")
    for name in ("corrupt", "text", "zero_frames"):
        shutil.copy(bad[name], folder / bad[name].name)
    (folder / "readme.md").write_text("not a video, not picked up")
    events = []
    results = ingest_archive(store, [folder], on_progress=events.append)
    by_name = {Path(r.source).name: r for r in results}
    assert set(by_name) == {"a.mp4", "b.mp4", bad["corrupt"].name, bad["text"].name, bad["zero_frames"].name}
    assert by_name["a.mp4"].status == by_name["b.mp4"].status == "indexed"
    for name in ("corrupt", "text", "zero_frames"):
        r = by_name[bad[name].name]
        assert r.status == "failed" and r.error_status == "INVALID_ARGUMENT" and bad[name].name in r.error
    assert sorted(v.key for v in store.list_videos("default")) == sorted([by_name["a.mp4"].key, by_name["b.mp4"].key])
    assert [e.stage for e in events].count("done") == 5
    assert any(e.stage == "frame" for e in events)


def test_same_content_twice_in_one_job_is_indexed_once_even_with_workers(videos, tmp_path, store):
    for i in range(3):
        shutil.copy(videos["cuts"], tmp_path / f"copy{i}.mp4")
    results = ingest_archive(store, [tmp_path / f"copy{i}.mp4" for i in range(3)], workers=3)
    assert sorted(r.status for r in results) == ["indexed", "skipped", "skipped"]
    _assert_exactly_once(store, "default", results[0].key)


def test_readers_never_see_a_half_written_video(videos, store):
    # Rows written but not committed are invisible...
    from videomemory.memory.ids import video_key

    key = video_key(videos["pan"])
    ingest = store.begin("default", key, str(videos["pan"]))
    ingest.add_frames([])
    assert store.status("default", key) == "ingesting"
    with pytest.raises(NotFound):
        store.get_video("default", key)
    assert store.list_videos("default") == []
    del ingest  # ...and a process that dies here leaves nothing a reader can see.

    # A reader polling during a real ingest sees nothing, then all of it.
    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        other = Store(store.uri)  # another connection, as another process would have
        while not stop.is_set():
            try:
                video = other.get_video("default", key)
            except NotFound:
                seen.append(-1)
                continue
            seen.append(other.frames(video).num_rows - video.frames)  # 0 when complete

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = ingest_video(store, videos["pan"])
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert -1 in seen and 0 in seen
    assert set(seen) <= {-1, 0}
    assert seen.index(0) > max(i for i, s in enumerate(seen) if s == -1)  # never back to invisible
    _assert_exactly_once(store, "default", result.key)  # the crashed claim's leftovers are gone


def test_a_second_claim_wins_and_the_first_commit_is_refused(videos, store):
    from videomemory.memory.ids import video_key

    key = video_key(videos["cuts"])
    first = store.begin("default", key, "a")
    second = store.begin("default", key, "b")
    with pytest.raises(FailedPrecondition, match="claimed by another ingest"):
        first.commit({"frames": 0, "segments": 0})
    assert store.status("default", key) == "ingesting" and second.ingest_id != first.ingest_id


def test_tenants_never_see_each_other(videos, store):
    r = ingest_video(store, videos["cuts"], tenant="alpha")
    assert [v.key for v in store.list_videos("alpha")] == [r.key]
    assert store.list_videos("beta") == []
    with pytest.raises(NotFound):
        store.get_video("beta", r.key)
    with pytest.raises(NotFound):
        store.delete_video("beta", r.key)
    _assert_exactly_once(store, "alpha", r.key)


def test_delete_removes_every_row(videos, store):
    r = ingest_video(store, videos["cuts"])
    store.delete_video("default", r.key)
    assert _physical(store, r.key) == (0, 0, 0)
    with pytest.raises(NotFound):
        store.get_video("default", r.key)


def test_expand_sources_reads_folders_globs_and_list_files(videos, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my archive\n{videos['cuts']}\n\n{videos['pan'].name}\n")
    shutil.copy(videos["pan"], tmp_path / videos["pan"].name)
    assert expand_sources([listing]) == [str(videos["cuts"]), str(tmp_path / videos["pan"].name)]
    assert expand_sources([str(videos["cuts"].parent / "*.mp4")]) == sorted(str(p) for p in videos.values())
    with pytest.raises(NotFound):
        expand_sources([tmp_path / "missing.mp4"])


@pytest.mark.slow
def test_kill_9_during_an_archive_job_then_a_rerun_indexes_every_video_exactly_once(videos, tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    for name, path in videos.items():
        shutil.copy(path, folder / f"{name}.mp4")
    from videomemory.bench import synth

    synth.write_preset("static", folder / "static.mp4", size=(320, 240), duration_s=6.0)
    uri = str(tmp_path / "store")
    cmd = [sys.executable, "-m", "videomemory", "index", str(folder), "--store", uri, "--json"]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    watcher = Store(uri)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(watcher.list_videos("default")) < 1:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    done_before = len(watcher.list_videos("default"))
    assert 1 <= done_before < 4, "the kill must land while the job is still running"

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    statuses = [line for line in rerun.stdout.splitlines() if '"status"' in line]
    assert sum('"skipped"' in s for s in statuses) == done_before
    videos_after = Store(uri).list_videos("default")
    assert len(videos_after) == 4
    for v in videos_after:
        _assert_exactly_once(Store(uri), "default", v.key)


def test_a_video_over_http_gets_the_same_key_and_code_as_the_local_file(videos, store):
    from http_range import serve_folder

    from videomemory.memory.resolve import resolve_frame

    local = ingest_video(store, videos["cuts"], tenant="local")
    with serve_folder(videos["cuts"].parent) as base:
        remote = ingest_video(store, base + videos["cuts"].name, tenant="remote")
        assert remote.key == local.key and remote.frames == local.frames and remote.source_bytes == 0
        r = resolve_frame(store, "remote", FrameId(remote.key, 2500), full_resolution=True)
        assert r.image_origin == "source" and r.source_uri.startswith("http://")
        with pytest.raises(NotFound):
            ingest_video(store, base + "missing.mp4")
