"""Search: an image query finds its video's segment among 20+ videos; filters, pages, staleness, errors."""

from __future__ import annotations

import numpy as np
import pytest

from videomemory.bench import synth
from videomemory.codec.config import CodecConfig, Grid
from videomemory.codec.decode import frame_at
from videomemory.errors import FailedPrecondition, InvalidArgument, NotFound
from videomemory.memory.ids import FrameId
from videomemory.memory.ingest import ingest_archive
from videomemory.memory.store import Store
from videomemory.retrieval.embed import load_embedder
from videomemory.retrieval.index import TenantIndex
from videomemory.retrieval.search import SearchFilter, search
from videomemory.retrieval.vectors import embed_missing

N_VIDEOS = 20
SIZE = (320, 240)
CUT_S = 3.0
CONFIG = CodecConfig(grid=Grid(256, 256))  # a smaller grid keeps 20 videos quick to index


def _shots(i: int) -> list[synth.Shot]:
    """Two shots per video (a cut at 3 s); backgrounds repeat across videos, sprites and pans tell them apart."""
    photos = synth.PHOTOS
    sprite = synth.Sprite(photos[(5 * i + 1) % len(photos)], (96, 72), ((i % 4) * 60.0, (i % 3) * 50.0), (6.0, 4.0))
    return [
        synth.Shot(CUT_S, photos[i % len(photos)], pan=(8.0 * (1 + i % 3), 0.0), sprites=(sprite,)),
        synth.Shot(CUT_S, photos[(7 * i + 3) % len(photos)], pan=(0.0, -6.0 * (1 + i % 2)), sprites=(sprite,)),
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20 indexed two-shot videos (tenant 'acme') with the offline embedder, and their paths."""
    root = tmp_path_factory.mktemp("search")
    paths = []
    for i in range(N_VIDEOS):
        path = root / f"v{i:02d}.mp4"
        synth.write_video(path, _shots(i), SIZE, 15.0, seed=i, x264_preset="veryfast")
        paths.append(path)
    store = Store(root / "store")
    results = ingest_archive(store, paths, tenant="acme", config=CONFIG)
    assert all(r.status == "indexed" for r in results), [r.error for r in results]
    embedder = load_embedder(None)
    assert embed_missing(store, "acme", embedder) == N_VIDEOS
    return store, embedder, [r.key for r in results], paths


@pytest.mark.parametrize("t", [1.3, 4.6])
def test_an_image_query_finds_its_videos_segment_at_rank_1_among_20_videos(corpus, t):
    store, embedder, keys, paths = corpus
    for i in range(N_VIDEOS):
        query = frame_at(paths[i], t)  # a source frame at full resolution, not a stored anchor
        page = search(store, "acme", embedder, image=query, page_size=5)
        top = page.hits[0]
        assert (top.video_key, top.start_ms <= t * 1000 < top.end_ms) == (keys[i], True), (i, [h.to_dict() for h in page.hits])
        assert len({(h.video_key, h.segment) for h in page.hits}) == len(page.hits)  # one hit per segment


def test_a_frame_id_query_finds_its_own_segment_first(corpus):
    store, embedder, keys, _ = corpus
    page = search(store, "acme", embedder, frame=FrameId(keys[3], 4500).tag, page_size=3)
    assert page.hits[0].video_key == keys[3] and page.hits[0].start_ms <= 4500 < page.hits[0].end_ms


def test_filters_restrict_hits_and_pages_continue_without_repeats(corpus):
    store, embedder, keys, paths = corpus
    query = frame_at(paths[0], 1.0)
    only = search(store, "acme", embedder, image=query, filters=SearchFilter(videos=(keys[5], keys[6])), page_size=10)
    assert only.hits and {h.video_key for h in only.hits} <= {keys[5], keys[6]}
    late = search(store, "acme", embedder, image=query, filters=SearchFilter(start_ms=3000), page_size=10)
    assert late.hits and all(h.frame.ms >= 3000 for h in late.hits)
    seen, token = [], ""
    for _ in range(4):
        page = search(store, "acme", embedder, image=query, page_size=7, page_token=token)
        seen += [(h.video_key, h.segment) for h in page.hits]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 28
    with pytest.raises(InvalidArgument, match="another query"):
        search(store, "acme", embedder, image=frame_at(paths[1], 1.0), page_size=7, page_token=token)
    with pytest.raises(InvalidArgument, match="malformed"):
        search(store, "acme", embedder, image=query, page_token="not-a-token")


def test_bad_queries_get_specific_errors(corpus):
    store, embedder, keys, _ = corpus
    with pytest.raises(FailedPrecondition, match="--embedder"):
        search(store, "acme", embedder, text="a cat on a sofa")
    with pytest.raises(InvalidArgument, match="exactly one"):
        search(store, "acme", embedder)
    with pytest.raises(InvalidArgument, match="page_size"):
        search(store, "acme", embedder, image=np.zeros((64, 64, 3), np.uint8), page_size=0)
    with pytest.raises(InvalidArgument, match="px per side"):
        search(store, "acme", embedder, image=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(NotFound):
        search(store, "acme", embedder, frame=FrameId("0" * 16, 0).name)
    with pytest.raises(InvalidArgument, match="content class"):
        SearchFilter(content_classes=("boring",))
    # Another tenant sees nothing, and cannot use this tenant's frames as queries.
    assert search(store, "other", embedder, image=np.zeros((64, 64, 3), np.uint8)).hits == []
    with pytest.raises(NotFound):
        search(store, "other", embedder, frame=FrameId(keys[0], 0).name)


def test_the_index_follows_the_store_and_is_never_silently_stale(corpus, tmp_path):
    store, embedder, keys, paths = corpus
    idx = TenantIndex.open(store, "acme", embedder.name)
    assert idx.status == "fresh (in memory)" and idx.vectors is not None  # loaded once per process
    n = idx.vectors.ntotal
    TenantIndex.forget()
    assert TenantIndex.open(store, "acme", embedder.name).status == "fresh"  # the saved files
    (idx.folder / "index.faiss").write_bytes(b"garbage")
    TenantIndex.forget()
    assert TenantIndex.open(store, "acme", embedder.name).status == "rebuilt (saved index damaged)"
    # A deleted video: the next open rebuilds without its vectors, and search never returns it.
    gone = store.get_video("acme", keys[0])
    store.delete_video("acme", keys[0])
    try:
        idx = TenantIndex.open(store, "acme", embedder.name)
        assert idx.status.startswith("rebuilt") and idx.vectors.ntotal < n
        assert all(h.video_key != keys[0] for h in search(store, "acme", embedder, image=frame_at(paths[0], 1.0)).hits)
    finally:  # put it back for the other tests (same content, same key)
        ingest_archive(store, [paths[0]], tenant="acme", config=CONFIG)
        embed_missing(store, "acme", embedder)
    idx = TenantIndex.open(store, "acme", embedder.name)
    assert idx.status == "updated (+1 videos)" and idx.vectors.ntotal == n
    assert gone.key == keys[0]
