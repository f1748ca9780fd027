"""Clips: re-synthesised anchors, exact token counts, budgets, coverage, and packages whose tags resolve."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from videomemory.codec.config import CodecConfig
from videomemory.codec.decode import sample_frames
from videomemory.codec.encoder import psnr
from videomemory.codec.residual import AnchorCode, GopCode, PCode
from videomemory.errors import BudgetTooSmall, InvalidArgument, NotFound
from videomemory.memory.ingest import ingest_video
from videomemory.memory.resolve import resolve_citations
from videomemory.memory.store import Store
from videomemory.retrieval.clips import get_clip


@pytest.fixture(scope="module")
def indexed(videos, tmp_path_factory):
    """The objects video (moving sprites: P-frames with changed cells) in a store, with its sampled frames."""
    root = tmp_path_factory.mktemp("clips")
    source = root / "objects.mp4"
    shutil.copy(videos["objects"], source)
    store = Store(root / "store")
    key = ingest_video(store, source).key
    sampled = {f.pts_ms: f.image for f in sample_frames(source, 2.0, CodecConfig().grid)}
    return store, key, sampled


def _mid_gop_start(store, key) -> int:
    video = store.get_video("default", key)
    frames = store.frame_times(video).to_pylist()
    return next(f["ms"] for f in frames if f["role"] == "P" and f["pos"] >= 3)


def test_a_clip_starting_mid_gop_gets_a_resynthesised_anchor_at_38_db(indexed):
    store, key, sampled = indexed
    start = _mid_gop_start(store, key)
    clip = get_clip(store, "default", key, start + 120, start + 3000, 4000)  # starts between two samples
    first = clip.parts[0]
    assert first.role == "anchor" and first.resynthesised and first.frame.ms == start
    assert psnr(first.image, sampled[start]) >= 38.0
    # The clip's own code decodes without the store: the lossless anchor and the kept P-codes.
    gop = clip.gops[0]
    assert gop.anchor.format == "png" and np.array_equal(gop.anchor.decode(), first.image)
    code, enter, last = clip.codes[0]
    slow = GopCode(code.anchor, code.p_codes[:last]).reanchor(enter)  # the codec's own re-anchoring, from scratch
    assert enter > 0 and gop.anchor.data == slow.anchor.data and [p.to_bytes() for p in gop.p_codes] == [p.to_bytes() for p in slow.p_codes]
    rebuilt = GopCode(AnchorCode(gop.anchor.format, gop.anchor.data), tuple(PCode.from_bytes(p.to_bytes()) for p in gop.p_codes)).frames()
    later = [p for p in clip.parts[1:] if p.frame.ms < clip.parts[0].frame.ms + 500 * len(gop)]
    for part in later:
        img = rebuilt[(part.frame.ms - start) // 500]
        for crop in part.crops:
            x0, y0, x1, y1 = crop.box
            assert np.array_equal(img[y0:y1, x0:x1], crop.image)


def test_token_count_is_the_sum_over_parts_and_fits_the_budget(indexed):
    store, key, _ = indexed
    full = get_clip(store, "default", key, 0, 6000, 100_000)
    assert full.coverage == 1.0 and not full.dropped
    assert full.tokens == sum(p.image_tokens + p.text_tokens for p in full.parts)
    for part in full.parts[1:]:
        if part.role == "P":
            assert part.image_tokens == sum(c.cells for c in part.crops) > 0
            assert part.text_tokens == 4 + 2 * len(part.crops)  # the token model's overheads
    for budget in (256, 300, 400, full.tokens - 1):
        clip = get_clip(store, "default", key, 0, 6000, budget)
        assert clip.tokens <= budget and clip.parts[0].role == "anchor"
        assert clip.tokens == sum(p.tokens for p in clip.parts)
        assert clip.coverage < 1.0 and clip.dropped or any(p.trimmed for p in clip.parts)
    flat = get_clip(store, "default", key, 0, 6000, 100_000, plan="flat")
    assert all(p.role == "anchor" for p in flat.parts) and flat.tokens == 256 * len(flat.parts)


def test_a_budget_below_one_anchor_names_the_minimum(indexed):
    store, key, _ = indexed
    with pytest.raises(BudgetTooSmall, match="minimum is 256"):
        get_clip(store, "default", key, 0, 3000, 255)
    with pytest.raises(InvalidArgument, match="token_budget must be > 0"):
        get_clip(store, "default", key, 0, 3000, 0)
    assert issubclass(BudgetTooSmall, InvalidArgument)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [(3000, 1000, "start < end"), (-5, 100, "start < end"), (0, 11 * 60_000, "at most 10 minutes"), (9_000_000, 9_000_100, "past the end")],
)
def test_bad_ranges_are_invalid_arguments(indexed, start, end, message):
    store, key, _ = indexed
    with pytest.raises(InvalidArgument, match=message):
        get_clip(store, "default", key, start, end, 4000)


def test_another_tenants_video_is_not_found(indexed):
    store, key, _ = indexed
    with pytest.raises(NotFound):
        get_clip(store, "someone-else", key, 0, 3000, 4000)


def test_every_cite_tag_in_a_package_resolves_to_its_frame(indexed, tmp_path):
    store, key, sampled = indexed
    clip = get_clip(store, "default", key, _mid_gop_start(store, key), 6000, 600)
    clip.save(tmp_path / "pkg")
    meta = json.loads((tmp_path / "pkg" / "clip.json").read_text())
    assert meta["tokens"] == clip.tokens and len(meta["parts"]) == len(clip.parts)
    for rec in meta["parts"]:
        assert (tmp_path / "pkg" / rec.get("image", rec["crops"][0]["image"] if rec["crops"] else "clip.json")).is_file()
    messages = clip.to_messages("What moves?")
    texts = " ".join(c["text"] for c in messages[0]["content"] if c["type"] == "text")
    images = [c for c in messages[0]["content"] if c["type"] == "image_url"]
    assert len(images) == sum(1 if p.image is not None else len(p.crops) for p in clip.parts)
    cites = resolve_citations(store, "default", texts, image=True)
    assert [c.tag for c in cites] == [p.tag for p in clip.parts]
    for cite, part in zip(cites, clip.parts):
        assert cite.resolved is not None and cite.resolved.exact and cite.resolved.frame == part.frame
        assert psnr(cite.resolved.image, sampled[part.frame.ms]) >= 38.0


def test_a_cancelled_clip_request_stops_before_rebuilding(indexed):
    from videomemory.errors import Cancelled
    from videomemory.retrieval.clips import GOPS

    store, key, _ = indexed
    GOPS.clear()
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return True  # the caller has gone away

    with pytest.raises(Cancelled):
        get_clip(store, "default", key, 0, 6000, 4000, cancelled=cancelled)
    assert asked == [1] and GOPS.get((key, store.get_video("default", key).ingest_id, 0)) is None  # nothing rebuilt
    assert get_clip(store, "default", key, 0, 6000, 4000, cancelled=lambda: False).tokens > 0


def _packages_pixels(clip):
    return [(p.to_dict(), None if p.image is None else p.image.tobytes(), [c.image.tobytes() for c in p.crops]) for p in clip.parts]


def test_stored_crops_and_rebuilt_frames_give_byte_identical_packages(indexed):
    from videomemory.memory import records
    from videomemory.retrieval.clips import GOPS

    store, key, _ = indexed
    video = store.get_video("default", key)
    assert store.count_rows("crops", key=key) > 0  # the ingest stored the changed cells of its P-frames
    start = _mid_gop_start(store, key) + 120
    end = start + 9000
    GOPS.clear()
    served = get_clip(store, "default", key, start, end, 100_000)
    # Served from stored crops: the frames rebuilt stop at the clip's first one (its re-synthesised anchor).
    rows = {r["ms"]: r for r in store.frame_times(video).to_pylist()}
    first = rows[served.parts[0].frame.ms]
    assert any(rows[p.frame.ms]["gop"] == first["gop"] and p.crops for p in served.parts[1:])
    assert len(GOPS.get((key, video.ingest_id, first["gop"])).frames) == first["pos"] + 1
    GOPS.clear()
    rebuilt = get_clip(store, "default", key, start, end, 100_000, stored_crops=False)
    assert _packages_pixels(served) == _packages_pixels(rebuilt)
    # ... and both equal a straightforward rebuild of each whole GOP with GopCode.frames().
    code = store.frames(video, columns=["gop", "pos", "ms", "code_format", "code"]).to_pylist()
    frames = {g: records.gop_code([r for r in code if r["gop"] == g]).frames() for g in {rows[p.frame.ms]["gop"] for p in served.parts}}
    assert any(p.crops for p in served.parts) and served.parts[0].resynthesised
    for part in served.parts:
        img = frames[rows[part.frame.ms]["gop"]][rows[part.frame.ms]["pos"]]
        if part.image is not None:
            assert part.image.tobytes() == np.ascontiguousarray(img).tobytes()
        for crop in part.crops:
            x0, y0, x1, y1 = crop.box
            assert crop.image.tobytes() == np.ascontiguousarray(img[y0:y1, x0:x1]).tobytes()
    # The clip's own code is the same both ways, and the same as cutting the stored GOPs by hand.
    assert [(g.anchor.data, [p.to_bytes() for p in g.p_codes]) for g in served.gops] == \
        [(g.anchor.data, [p.to_bytes() for p in g.p_codes]) for g in rebuilt.gops]
    # Warm (the GOPs cached) and trimmed to a budget, the two paths still agree.
    for budget in (100_000, 700):
        a = get_clip(store, "default", key, start + 1000, end, budget)
        GOPS.clear()
        b = get_clip(store, "default", key, start + 1000, end, budget, stored_crops=False)
        assert _packages_pixels(a) == _packages_pixels(b)


def test_a_video_without_stored_crops_is_rebuilt_with_the_same_bytes(indexed, tmp_path):
    """A video ingested by schema version 1 has no crop rows: its P-frames are rebuilt from the code."""
    from videomemory.retrieval.clips import GOPS

    store, key, _ = indexed
    copy = tmp_path / "store"
    shutil.copytree(store.uri, copy)
    old = Store(copy)
    old.table("crops").delete(f"video_key = '{key}'")
    assert old.count_rows("crops", key=key) == 0
    start = _mid_gop_start(store, key)
    GOPS.clear()
    a = get_clip(old, "default", key, start, start + 8000, 100_000)
    GOPS.clear()
    b = get_clip(store, "default", key, start, start + 8000, 100_000)
    assert _packages_pixels(a) == _packages_pixels(b) and any(p.crops for p in a.parts)


def test_a_clip_uses_only_the_videos_current_ingest_and_tenant(indexed, tmp_path):
    """Frame rows of another ingest of the same key (a replacement being written) or of another
    tenant's copy sit in the same table: the clip keeps only its video's current ingest."""
    import pyarrow as pa

    from videomemory.retrieval.clips import GOPS

    store, key, _ = indexed
    copy = Store(tmp_path / "copy")
    for name in ("videos", "segments", "frames", "crops"):
        copy.table(name).add(store.table(name).search().limit(None).to_arrow())
    start = _mid_gop_start(copy, key)
    GOPS.clear()
    before = get_clip(copy, "default", key, start + 120, start + 4000, 4000)
    frames = copy.table("frames").search().limit(None).to_arrow()
    shifted = frames.set_column(frames.schema.get_field_index("ms"), "ms", pa.compute.add(frames["ms"], 120))
    stale = shifted.set_column(shifted.schema.get_field_index("ingest_id"), "ingest_id", pa.array(["0" * 32] * len(frames)))
    other = shifted.set_column(shifted.schema.get_field_index("tenant"), "tenant", pa.array(["other"] * len(frames)))
    copy.table("frames").add(stale)
    copy.table("frames").add(other)
    GOPS.clear()
    after = get_clip(copy, "default", key, start + 120, start + 4000, 4000)
    assert [p.tag for p in after.parts] == [p.tag for p in before.parts] and after.parts[0].frame.ms == start
    assert np.array_equal(after.parts[0].image, before.parts[0].image)


def test_the_pngs_of_a_package_are_its_images_and_are_not_encoded_again(indexed, monkeypatch):
    import io

    from PIL import Image

    from videomemory.retrieval import clips

    store, key, _ = indexed
    start = _mid_gop_start(store, key)
    monkeypatch.setattr(clips, "PNGS", clips.SizedLru(len, 64 << 20))  # this test's own cache
    clip = get_clip(store, "default", key, start + 120, start + 4000, 4000)
    pngs = clip.pngs()
    pixels = lambda data: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # noqa: E731
    assert len(pngs) == len(clip.parts) and any(crops for _, crops in pngs)
    for part, (full, crops) in zip(clip.parts, pngs):
        assert (full != b"") == (part.image is not None)
        assert part.image is None or np.array_equal(pixels(full), part.image)
        assert len(crops) == len(part.crops) and all(np.array_equal(pixels(d), c.image) for d, c in zip(crops, part.crops))
    encoded = []
    monkeypatch.setattr(clips, "png_bytes", lambda image, level=1: encoded.append(1) or b"")
    again = get_clip(store, "default", key, start + 120, start + 4000, 4000)
    assert again.pngs() == pngs and not encoded  # the same moments: from the cache
    assert get_clip(store, "default", key, start + 120, start + 4000, 4000).pngs(compress_level=6) and encoded  # another level


def test_without_stored_crops_the_p_frames_are_rebuilt_even_when_crops_are_cached(indexed):
    from videomemory.retrieval.clips import GOPS

    store, key, _ = indexed
    video = store.get_video("default", key)
    start = _mid_gop_start(store, key)
    GOPS.clear()
    a = get_clip(store, "default", key, start, start + 8000, 100_000)  # serves P-frames from stored crops
    b = get_clip(store, "default", key, start, start + 8000, 100_000, stored_crops=False)
    assert _packages_pixels(a) == _packages_pixels(b)
    sent = [p.frame.ms for p in b.parts if p.crops]
    rows = {r["ms"]: r for r in store.frame_times(video).to_pylist()}
    for ms in sent:  # each was rebuilt from the code, not taken from the crops the first clip cached
        gop = GOPS.get((key, video.ingest_id, rows[ms]["gop"]))
        assert gop is not None and rows[ms]["pos"] < len(gop.frames)
