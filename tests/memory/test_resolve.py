"""Resolving frame IDs and cite tags: exact moments, nearest frames, images, tenants, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from videomemory.codec.config import CodecConfig
from videomemory.codec.decode import sample_frames
from videomemory.codec.encoder import psnr
from videomemory.errors import InvalidArgument, NotFound
from videomemory.memory.ids import FrameId, MalformedId
from videomemory.memory.ingest import ingest_video
from videomemory.memory.resolve import resolve_citations, resolve_frame
from videomemory.memory.store import Store


@pytest.fixture(scope="module")
def indexed(videos, tmp_path_factory):
    """A store with the pan video indexed (tenant 'acme'), and its sampled frames by ms."""
    root = tmp_path_factory.mktemp("resolve")
    source = root / "pan.mp4"
    shutil.copy(videos["pan"], source)
    store = Store(root / "store")
    result = ingest_video(store, source, tenant="acme")
    sampled = {f.pts_ms: f for f in sample_frames(source, 2.0, CodecConfig().grid)}
    return store, result.key, sampled, source


def test_a_p_frame_cite_tag_resolves_to_its_image_at_38_db_or_better(indexed):
    store, key, sampled, _ = indexed
    video = store.get_video("acme", key)
    frames = store.frame_times(video).to_pylist()
    p_frames = [f for f in frames if f["role"] == "P"]
    assert len(p_frames) >= 6
    for f in p_frames[:: max(1, len(p_frames) // 4)] + [max(p_frames, key=lambda r: r["pos"])]:
        tag = FrameId(key, f["ms"]).tag
        r = resolve_frame(store, "acme", tag)
        assert r.exact and r.role == "P" and r.frame.ms == f["ms"] and r.image_origin == "code"
        assert r.anchor.ms == r.segment_start_ms < r.frame.ms and r.anchor.ms == f["ms"] - 500 * f["pos"]
        assert r.source_index == sampled[f["ms"]].source_index
        assert psnr(r.image, sampled[f["ms"]].image) >= 38.0
        assert abs(psnr(r.image, sampled[f["ms"]].image) - r.psnr) < 0.01  # the stored PSNR is the truth


def test_an_unsampled_moment_resolves_to_the_nearest_sampled_frame_and_says_so(indexed):
    store, key, _, _ = indexed
    r = resolve_frame(store, "acme", f"videos/{key}/frames/2610", image=False)
    assert r.frame.ms == 2500 and not r.exact and r.requested_ms == 2610
    assert "nearest sampled frame, 110 ms earlier" in r.notes[0]
    r = resolve_frame(store, "acme", FrameId(key, 2880), image=False)
    assert r.frame.ms == 3000 and "120 ms later" in r.notes[0]


def test_full_resolution_decodes_the_exact_source_frame(indexed):
    store, key, sampled, source = indexed
    r = resolve_frame(store, "acme", FrameId(key, 3500), full_resolution=True)
    assert r.image_origin == "source" and r.image.shape == (240, 320, 3)
    truth = next(f for f in sample_frames(source, 2.0, None) if f.pts_ms == 3500)
    assert np.array_equal(r.image, truth.image)


def test_full_resolution_falls_back_to_the_code_when_the_source_is_gone(indexed, tmp_path):
    store, key, _, source = indexed
    moved = tmp_path / "moved.mp4"
    shutil.move(source, moved)
    try:
        r = resolve_frame(store, "acme", FrameId(key, 3500), full_resolution=True)
    finally:
        shutil.move(moved, source)
    assert r.image_origin == "code" and r.image.shape == (512, 512, 3)
    assert any("not reachable" in n for n in r.notes)


def test_errors_are_specific(indexed):
    store, key, _, _ = indexed
    with pytest.raises(NotFound, match="past the end"):
        resolve_frame(store, "acme", FrameId(key, 60_000))
    with pytest.raises(NotFound):
        resolve_frame(store, "acme", FrameId("0" * 16, 0))
    with pytest.raises(MalformedId):
        resolve_frame(store, "acme", "videos/xyz/frames/1")
    # Another tenant's video is simply not there, by name, by tag, or with its tenant spelled out.
    with pytest.raises(NotFound):
        resolve_frame(store, "other", FrameId(key, 0))
    with pytest.raises(NotFound):
        resolve_frame(store, "other", FrameId(key, 0).tag)
    with pytest.raises(NotFound):
        resolve_frame(store, "other", FrameId(key, 0).tenant_name("acme"))


def test_an_ambiguous_tag_prefix_is_refused_not_guessed(indexed, monkeypatch):
    store, key, _, _ = indexed
    video = store.get_video("acme", key)
    monkeypatch.setattr(Store, "find_videos", lambda self, tenant, prefix: [video, video])
    with pytest.raises(InvalidArgument, match="ambiguous"):
        resolve_frame(store, "acme", FrameId(key, 0).tag)


def test_resolve_citations_resolves_every_tag_in_an_answer(indexed):
    store, key, _, _ = indexed
    a, b = FrameId(key, 1000).tag, FrameId(key, 4500).tag
    answer = f"The camera pans right {a}, and keeps going {b}; no person appears [v00000000@1.000] [vbad@x]."
    cites = resolve_citations(store, "acme", answer)
    assert [c.tag for c in cites] == [a, b, "[v00000000@1.000]", "[vbad@x]"]
    assert [c.start for c in cites] == [answer.index(c.tag) for c in cites]
    assert cites[0].resolved.frame == FrameId(key, 1000) and cites[1].resolved.frame == FrameId(key, 4500)
    assert cites[2].error_status == "NOT_FOUND" and cites[3].error_status == "INVALID_ARGUMENT"
    assert resolve_citations(store, "other", answer)[0].error_status == "NOT_FOUND"


def test_a_frame_the_plan_did_not_send_still_resolves_and_says_so(videos, store):
    key = ingest_video(store, videos["static"]).key
    video = store.get_video("default", key)
    unsent = [f for f in store.frame_times(video).to_pylist() if f["image_tokens"] + f["overhead_tokens"] == 0]
    assert unsent, "a static shot collapses: most of its frames are not sent"
    r = resolve_frame(store, "default", FrameId(key, unsent[-1]["ms"]))
    assert r.exact and not r.sent and any("did not send" in n for n in r.notes)
    assert r.image is not None and r.psnr >= 38.0
