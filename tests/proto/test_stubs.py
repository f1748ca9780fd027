"""The checked-in stubs are exactly what proto/generate.py makes from the .proto sources."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "proto"


def test_stubs_regenerate_identically(tmp_path):
    spec = importlib.util.spec_from_file_location("generate", ROOT / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    fresh = generate.generate(tmp_path)
    assert fresh, "protoc wrote nothing"
    for path in fresh:
        rel = path.relative_to(tmp_path)
        checked_in = ROOT / rel
        assert checked_in.is_file(), f"{rel} is generated but not checked in: run `python proto/generate.py`"
        assert checked_in.read_bytes() == path.read_bytes(), f"{rel} is stale: run `python proto/generate.py`"


def test_the_service_and_its_methods_are_importable():
    from videomemory.v1 import video_memory_pb2, video_memory_pb2_grpc

    service = video_memory_pb2.DESCRIPTOR.services_by_name["VideoMemory"]
    assert {m.name for m in service.methods} >= {"IngestVideo", "Search", "GetClip", "ResolveFrame", "ResolveCitations",
                                                 "GetVideo", "ListVideos", "DeleteVideo"}
    assert hasattr(video_memory_pb2_grpc, "VideoMemoryStub")
