"""Frame IDs and cite tags: round trips, content keys, and specific errors for malformed input."""

from __future__ import annotations

import shutil

import av
import pytest

from videomemory.errors import InvalidArgument, InvalidVideo
from videomemory.memory import ids
from videomemory.memory.ids import FrameId, MalformedId

KEY = "3f9a2c1d0b7e4a55"


@pytest.mark.parametrize("ms", [0, 1, 999, 1000, 12500, 3_600_000 * 5 + 7])
def test_name_and_tag_round_trip(ms):
    fid = FrameId(KEY, ms)
    assert ids.parse_name(fid.name) == (None, fid)
    assert ids.parse_name(fid.tenant_name("acme-prod")) == ("acme-prod", fid)
    tag = ids.parse_tag(fid.tag)
    assert fid.key.startswith(tag.key_prefix) and tag.ms == ms
    assert fid.tag == f"[v{KEY[:8]}@{ms // 1000}.{ms % 1000:03d}]"


def test_tags_accept_the_short_spellings_models_write():
    assert ids.parse_tag("[v3f9a2c@12.5s]").ms == 12500
    assert ids.parse_tag("[v3f9a2c1d@12]").ms == 12000
    assert ids.parse_tag("[v3f9a2c1d@0.05]").ms == 50


@pytest.mark.parametrize(
    "text",
    ["[v3f9a@1.0]", "[vXYZ12345@1.0]", "[v3f9a2c1d@-1.0]", "[v3f9a2c1d@1.0001]", "[v3f9a2c1d1.0]", "v3f9a2c1d@1.0", "", "[v3f9a2c1d@abc]"],
)
def test_malformed_tags_raise_a_specific_error_with_an_example(text):
    with pytest.raises(MalformedId, match="e.g."):
        ids.parse_tag(text)


@pytest.mark.parametrize(
    "name",
    [
        "videos/3f9a2c1d0b7e4a55/frames/-5",
        "videos/3f9a2c1d0b7e4a55/frames/1.5",
        "videos/3F9A2C1D0B7E4A55/frames/10",
        "videos/3f9a/frames/10",
        "videos/3f9a2c1d0b7e4a55",
        "tenants/Bad_Tenant/videos/3f9a2c1d0b7e4a55/frames/10",
        "videos/3f9a2c1d0b7e4a55/frames/99999999999999",
        "../../etc/passwd",
    ],
)
def test_malformed_names_raise_invalid_argument(name):
    with pytest.raises(MalformedId):
        ids.parse_name(name)
    assert issubclass(MalformedId, InvalidArgument)


def test_find_tags_reports_malformed_ones_too():
    text = "The cup falls at [v3f9a2c1d@12.500], see also [vzz@1] and [v3f9a2c1d@13.000]."
    assert ids.find_tags(text) == ["[v3f9a2c1d@12.500]", "[vzz@1]", "[v3f9a2c1d@13.000]"]


def test_video_key_is_content_derived(videos, tmp_path):
    a = videos["cuts"]
    copy = tmp_path / "elsewhere" / "renamed.mp4"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    remux = tmp_path / "remux.mkv"
    with av.open(str(a)) as src, av.open(str(remux), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    key = ids.video_key(a)
    assert ids.check_key(key) == key
    assert ids.video_key(copy) == key  # another path
    assert ids.video_key(remux) == key  # another container, same stream
    assert len({key, ids.video_key(videos["objects"]), ids.video_key(videos["pan"])}) == 3


def test_video_key_of_a_non_video_is_an_invalid_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(InvalidVideo):
        ids.video_key(path)
