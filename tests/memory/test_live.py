"""Live streams: frames pushed one by one give the file's code, and each GOP is visible once it closes."""

from __future__ import annotations

import av
import pytest

from videomemory.codec.config import CodecConfig
from videomemory.errors import FailedPrecondition, NotFound
from videomemory.memory.ingest import ingest_video
from videomemory.memory.live import LiveIngest
from videomemory.memory.store import Store


def _source_frames(path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24"), float(frame.pts * frame.time_base)


def test_a_stream_pushed_frame_by_frame_matches_the_file_and_grows_gop_by_gop(videos, store, tmp_path):
    seen = []

    def on_publish(video, gop):
        reader = Store(store.uri)  # another connection sees exactly the published GOPs
        v = reader.get_video("default", video.key)
        seen.append((v.status, v.segments, reader.frames(v).num_rows, len(gop)))

    live = LiveIngest(store, "cam-1", config=CodecConfig(), on_publish=on_publish)
    for image, t in _source_frames(videos["cuts"]):
        live.push(image, t)
        if live.key and not seen:
            with pytest.raises(NotFound):  # nothing visible before the first GOP closes
                store.get_video("default", live.key)
    video = live.close()
    assert video.status == "ready" and seen[-1][0] == "ready"
    assert [s[0] for s in seen[:-1]] == ["live"] * (len(seen) - 1) and len(seen) >= 3
    assert [s[1] for s in seen] == list(range(1, len(seen) + 1))  # one more segment each time
    assert all(rows == sum(s[3] for s in seen[: i + 1]) for i, (_, _, rows, _) in enumerate(seen))

    file_store = Store(tmp_path / "file")
    key = ingest_video(file_store, videos["cuts"], config=CodecConfig()).key
    from_file = file_store.frame_times(file_store.get_video("default", key)).to_pylist()
    from_live = store.frame_times(store.get_video("default", video.key)).to_pylist()
    assert [(f["ms"], f["role"], f["gop"]) for f in from_live] == [(f["ms"], f["role"], f["gop"]) for f in from_file]

    again = LiveIngest(store, "cam-1", config=CodecConfig())
    image, t = next(_source_frames(videos["cuts"]))
    with pytest.raises(FailedPrecondition, match="already stored"):
        again.push(image, t)


def test_a_stream_left_live_by_a_crash_is_not_silently_taken_over(videos, store):
    live = LiveIngest(store, "cam-crash", config=CodecConfig())
    for image, t in _source_frames(videos["cuts"]):
        if live.push(image, t) is not None:  # the first GOP is published; then the server "dies"
            break
    published = store.get_video("default", live.key)
    assert published.status == "live" and published.segments == 1
    again = LiveIngest(store, "cam-crash", config=CodecConfig())
    image, t = next(_source_frames(videos["cuts"]))
    with pytest.raises(FailedPrecondition, match="still live"):
        again.push(image, t)
    after = store.get_video("default", live.key)  # what was published is still there, unchanged
    assert (after.status, after.segments, after.ingest_id) == ("live", 1, published.ingest_id)
    assert store.frames(after).num_rows == published.frames
