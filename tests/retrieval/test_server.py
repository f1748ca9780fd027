"""The gRPC API end to end: a server in its own process, the typed client, raw stubs, reflection, errors."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from http_range import serve_folder

from videomemory.bench import synth
from videomemory.codec.decode import frame_at
from videomemory.memory.store import Store
from videomemory.retrieval.client import VideoMemoryClient
from videomemory.retrieval.status import details_of
from videomemory.v1 import video_memory_pb2 as pb
from videomemory.v1 import video_memory_pb2_grpc as rpc

KEYS = "key-alpha=alpha,key-beta=beta"
SERVER_HTTP_ROOT: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory, videos):
    """A server process on a free loopback port; yields (target, store uri, ingest root)."""
    root = tmp_path_factory.mktemp("server")
    inbox = root / "inbox"
    inbox.mkdir()
    for name in ("cuts", "objects"):
        shutil.copy(videos[name], inbox / f"{name}.mp4")
    uri = str(root / "store")
    env = dict(os.environ, VIDEOMEMORY_API_KEYS=KEYS)
    with serve_folder(inbox) as http_root:  # the inbox over HTTP too: a URI root
        cmd = [sys.executable, "-m", "videomemory", "serve", "--store", uri, "--port", "0", "--ingest-root", str(inbox),
               "--ingest-root", http_root, "--workers", "4"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if "serving" not in line:
            proc.kill()
            pytest.fail(f"server did not start: {line}{proc.stderr.read()}")
        target = "127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        SERVER_HTTP_ROOT.append(http_root)
        yield target, uri, inbox
        proc.terminate()
        proc.wait(10)


def _counts(uri: str) -> dict[str, int]:
    store = Store(uri)
    return {name: store.count_rows(name) for name in ("videos", "segments", "frames", "embeddings")}


def test_end_to_end_through_the_client_and_raw_stubs(server, tmp_path):
    target, uri, inbox = server
    with VideoMemoryClient(target, "key-alpha") as client:
        progress = []
        cuts = client.ingest_video(inbox / "cuts.mp4", on_progress=progress.append)
        assert cuts.name.startswith("tenants/alpha/videos/") and cuts.frames == 12
        assert progress[-1].state == pb.IngestVideoProgress.DONE and not progress[-1].already_indexed
        objects = client.ingest_video(inbox / "objects.mp4", upload=True)  # the bytes, not a path
        again = []
        client.ingest_video(inbox / "cuts.mp4", on_progress=again.append)
        assert again[-1].already_indexed  # idempotent on the content key

        # Search with an image of a source frame: its segment comes first.
        from PIL import Image
        import io

        buf = io.BytesIO()
        Image.fromarray(frame_at(inbox / "objects.mp4", 4.2)).save(buf, "PNG")
        hits = client.search(image=buf.getvalue(), page_size=3).hits
        assert hits[0].video == objects.name and hits[0].segment_start_ms <= 4200 < hits[0].segment_end_ms

        # A clip that starts mid-GOP: its first frame is a re-synthesised anchor; every frame ID resolves.
        clip = client.get_clip(objects.name, 1250, 5000, 2000, include_code=True)
        assert clip.parts[0].role == "anchor" and clip.parts[0].resynthesised and clip.parts[0].png
        assert clip.tokens == sum(p.tokens for p in clip.parts) <= 2000 and clip.code[0].anchor_format == "png"
        # Its images are the library's, pixel for pixel: the anchor and every crop of every part.
        import numpy as np

        from videomemory.retrieval.clips import get_clip

        local = get_clip(Store(uri), "alpha", objects.name.rsplit("/", 1)[1], 1250, 5000, 2000)
        assert [p.tag for p in local.parts] == [p.tag for p in clip.parts]
        pixels = lambda data: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # noqa: E731
        assert np.array_equal(pixels(clip.parts[0].png), local.parts[0].image)
        sent = [(x.png, y.image) for p, q in zip(clip.parts, local.parts) for x, y in zip(p.crops, q.crops, strict=True)]
        assert sent and all(np.array_equal(pixels(a), b) for a, b in sent)
        for part in clip.parts:
            r = client.resolve_frame(part.frame)
            assert r.exact and r.frame == part.frame
        cited = client.resolve_citations(" ".join(p.tag for p in clip.parts), include_images=True)
        assert [c.resolved.frame for c in cited.citations] == [p.frame for p in clip.parts]
        assert all(c.resolved.png for c in cited.citations)

        # Pagination, then delete.
        first = client.list_videos(page_size=1)
        assert len(first.videos) == 1 and first.next_page_token
        second = client.list_videos(page_size=1, page_token=first.next_page_token)
        assert {first.videos[0].name, second.videos[0].name} == {cuts.name, objects.name} and not second.next_page_token
        assert [v.name for v in client.iter_videos(page_size=1)] == sorted([cuts.name, objects.name])
        use = client.get_usage(30.0)
        assert use.videos == 2 and use.tokens == cuts.tokens + objects.tokens and use.by_class
        assert use.forecast_tokens == pytest.approx(30.0 * use.tokens_per_minute)

    # The same calls through the raw generated stub.
    channel = grpc.insecure_channel(target)
    stub = rpc.VideoMemoryStub(channel)
    meta = (("x-api-key", "key-alpha"),)
    assert stub.GetVideo(pb.GetVideoRequest(name=cuts.name), metadata=meta).frames == 12
    tag = stub.ResolveFrame(pb.ResolveFrameRequest(frame=cuts.name + "/frames/2600"), metadata=meta)
    assert tag.frame == cuts.name + "/frames/2500" and not tag.exact
    stub.DeleteVideo(pb.DeleteVideoRequest(name=cuts.name), metadata=meta)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetVideo(pb.GetVideoRequest(name=cuts.name), metadata=meta)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert [v.name for v in stub.ListVideos(pb.ListVideosRequest(), metadata=meta).videos] == [objects.name]
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="videomemory.v1.VideoMemory"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()

    # And a delete through the client: the content comes back under the same name, then goes again.
    with VideoMemoryClient(target, "key-alpha") as client:
        back = client.ingest_video(inbox / "cuts.mp4")
        assert back.name == cuts.name
        client.delete_video(back.name)
        with pytest.raises(grpc.RpcError) as err:
            client.get_video(back.name)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_service_without_the_proto_files(server):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    target, _, _ = server
    with grpc.insecure_channel(target) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        assert "videomemory.v1.VideoMemory" in db.get_services()
        service = DescriptorPool(db).FindServiceByName("videomemory.v1.VideoMemory")
        assert {m.name for m in service.methods} >= {"IngestVideo", "Search", "GetClip", "ResolveFrame", "ListVideos", "DeleteVideo"}


def test_errors_get_their_documented_status_and_leave_the_store_unchanged(server):
    target, uri, inbox = server
    with VideoMemoryClient(target, "key-alpha") as alpha:
        video = alpha.ingest_video(inbox / "objects.mp4")
    before = _counts(uri)
    key = video.name.rsplit("/", 1)[1]

    def status(call, api_key="key-alpha", timeout=None):
        with VideoMemoryClient(target, api_key) as c:
            with pytest.raises(grpc.RpcError) as err:
                call(c) if timeout is None else call(c, timeout)
        return err.value

    e = status(lambda c: c.resolve_frame(f"tenants/alpha/videos/{'0' * 16}/frames/0"))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = status(lambda c: c.get_video("tenants/alpha/videos/not-a-key"))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(isinstance(d, error_details_pb2.BadRequest) and d.field_violations[0].field == "name" for d in details_of(e))
    e = status(lambda c: c.get_video(video.name), api_key="key-beta")  # another tenant's video
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = status(lambda c: c.get_video(f"tenants/beta/videos/{key}"), api_key="key-alpha")
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = status(lambda c: c.resolve_frame(f"[v{key[:8]}@1.000]"), api_key="key-beta")
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = status(lambda c: c.list_videos(), api_key=None)
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED and "x-api-key" in e.details()
    e = status(lambda c: c.list_videos(), api_key="wrong")
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    e = status(lambda c: c.search(image=b"\0" * (17 * 1024 * 1024)))  # over the 16 MiB request limit
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    e = status(lambda c: c.resolve_citations("x" * 100_001))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "100,000" in e.details()
    e = status(lambda c: c.get_clip(video.name, 0, 3000, 0))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "token_budget" in e.details()
    e = status(lambda c: c.get_clip(video.name, 0, 3000, 100))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "minimum is 256" in e.details()
    e = status(lambda c: c.get_clip(video.name, 3000, 1000, 4000))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "start < end" in e.details()
    e = status(lambda c, t: c.get_clip(video.name, 0, 6000, 4000, timeout=t), timeout=0.001)
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    e = status(lambda c: c.ingest_video(inbox / ".." / "outside.mp4"))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    link = inbox / "link.mp4"
    link.unlink(missing_ok=True)
    link.symlink_to(inbox.parent / "store")  # inside the root by name, outside by target
    e = status(lambda c: c.ingest_video(link))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED and "ingest roots" in e.details()
    e = status(lambda c: c.search(text="a dog"))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "--embedder" in e.details()
    time.sleep(0.2)
    assert _counts(uri) == before


def test_ingest_streams_progress_and_a_cancelled_ingest_stores_nothing(server, videos):
    target, uri, inbox = server
    longer = inbox / "longer.mp4"
    if not longer.exists():
        synth.write_preset("pan", longer, size=(320, 240), duration_s=20.0, seed=7)
    before = _counts(uri)
    channel = grpc.insecure_channel(target)
    stub = rpc.VideoMemoryStub(channel)
    call = stub.IngestVideo(iter([pb.IngestVideoRequest(uri=str(longer))]), metadata=(("x-api-key", "key-alpha"),))
    first = next(call)
    assert first.state == pb.IngestVideoProgress.CODING and first.frames >= 1  # progress arrives while coding
    call.cancel()
    time.sleep(3.0)  # let the server notice and roll back
    assert _counts(uri) == before
    with VideoMemoryClient(target, "key-alpha") as client:
        names = [v.name for v in client.iter_videos()]
    assert all(Store(uri).status("alpha", n.rsplit("/", 1)[1]) == "ready" for n in names)
    channel.close()


def test_a_live_stream_is_searchable_gop_by_gop_and_stored_like_a_file(server, videos):
    import av
    from PIL import Image

    target, uri, _ = server
    observed = []

    def frames():
        with av.open(str(videos["cuts"])) as container:  # anchors every 1.5 s: GOPs close while streaming
            for i, frame in enumerate(container.decode(video=0)):
                buf = io.BytesIO()
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(buf, "PNG")
                yield buf.getvalue(), round(float(frame.pts * frame.time_base) * 1000)
                if i == 100:  # 3.3 s in: two GOPs are closed; a reader must see them while we stream
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline:
                        live = [v for v in Store(uri).list_videos("beta") if v.status == "live"]
                        if live:
                            observed.append(live[0].segments)
                            break
                        time.sleep(0.1)

    with VideoMemoryClient(target, "key-beta") as client:
        done = client.ingest_frames("lobby-cam", frames())
        assert done.video.name.startswith("tenants/beta/videos/") and done.frames_received == 180
        assert observed and observed[0] >= 1 and done.segments_published >= observed[0]
        video = client.get_video(done.video.name)
        assert video.frames == 12  # 6 s at 2 fps, as from the file
        buf = io.BytesIO()
        Image.fromarray(frame_at(videos["cuts"], 4.7)).save(buf, "PNG")
        hits = client.search(image=buf.getvalue(), page_size=1).hits
        assert hits[0].video == done.video.name
        with pytest.raises(grpc.RpcError) as err:
            client.ingest_frames("broken-cam", iter([(b"not an image", 0)]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "image" in err.value.details()


def test_a_stream_that_breaks_off_keeps_every_frame_it_sent(server, videos):
    import av
    from PIL import Image

    target, uri, _ = server

    def frames(name, stop_at):
        with av.open(str(videos[name])) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i == stop_at:
                    yield b"not an image", 0  # the client sends garbage mid-stream
                    return
                buf = io.BytesIO()
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(buf, "PNG")
                yield buf.getvalue(), round(float(frame.pts * frame.time_base) * 1000)

    with VideoMemoryClient(target, "key-beta") as client:
        with pytest.raises(grpc.RpcError) as err:
            client.ingest_frames("door-cam", frames("objects", 75))  # 75 frames at 30 fps: instants 0, 0.5 .. 2.0
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "were kept as tenants/beta/videos/" in err.value.details(), err.value.details()
        name = err.value.details().split("kept as ", 1)[1].split(",", 1)[0]
        video = client.get_video(name)
        assert video.frames == 5  # nothing received was lost: the open GOP and the pending last frame were stored too
        assert Store(uri).status("beta", name.rsplit("/", 1)[1]) == "ready"

    # A client that goes away (cancels) mid-stream: the same, once the server notices.
    channel = grpc.insecure_channel(target)
    stub = rpc.VideoMemoryStub(channel)
    sent = []

    def requests():
        for i, (image, ms) in enumerate(frames("pan", 10_000)):
            sent.append(ms)
            yield pb.IngestFramesRequest(stream="gate-cam" if i == 0 else "", image=image, time_ms=ms)
            if i == 60:
                time.sleep(1.0)  # let the server code what it has
                call.cancel()
                return

    call = stub.IngestFrames.future(requests(), metadata=(("x-api-key", "key-beta"),))
    with pytest.raises(grpc.FutureCancelledError):
        call.result()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        gate = [v for v in Store(uri).list_videos("beta") if v.source_uri == "live:gate-cam"]
        if gate and gate[0].status == "ready":
            break
        time.sleep(0.2)
    assert gate and gate[0].status == "ready" and gate[0].frames >= 4, gate
    channel.close()


def test_cli_commands_go_through_the_server_with_server(server, tmp_path):
    import json

    from typer.testing import CliRunner

    from videomemory.cli import app

    target, uri, inbox = server
    run = CliRunner().invoke
    common = ["--server", target, "--api-key", "key-alpha"]
    res = run(app, ["index", str(inbox / "objects.mp4"), *common])
    assert res.exit_code == 0, res.output
    name = json.loads(res.stdout.splitlines()[0])["video"]
    res = run(app, ["list", *common])
    assert name in [json.loads(line)["name"] for line in res.stdout.splitlines()]
    query = tmp_path / "q.png"
    from PIL import Image

    Image.fromarray(frame_at(inbox / "objects.mp4", 2.2)).save(query)
    res = run(app, ["search", "--image", str(query), "--limit", "1", *common])
    hit = json.loads(res.stdout.splitlines()[0])
    assert hit["video"] == name
    res = run(app, ["clip", name.rsplit("/", 1)[1][:8], "--start", "1.2", "--end", "4", "--budget", "500", "--out", str(tmp_path / "pkg"), *common])
    assert res.exit_code == 0, res.output
    clip = json.loads(res.stdout)
    assert clip["parts"][0]["resynthesised"] and (tmp_path / "pkg" / "clip.json").is_file()
    res = run(app, ["cite", f"see {hit['tag']}", *common])
    assert res.exit_code == 0 and json.loads(res.stdout)["resolved"]["frame"] == hit["frame"]
    res = run(app, ["usage", *common])
    assert json.loads(res.stdout)["videos"] >= 1
    res = run(app, ["list", "--server", target, "--api-key", "nope"])
    assert res.exit_code == 2 and "UNAUTHENTICATED" in res.output


def test_network_uris_under_a_uri_root_are_ingested_and_others_refused(server):
    target, uri, inbox = server
    base = SERVER_HTTP_ROOT[-1]
    with VideoMemoryClient(target, "key-beta") as c:
        video = c.ingest_video(base + "objects.mp4")  # over HTTP, read by the server's FFmpeg
        assert video.frames == 12 and video.source_uri == base + "objects.mp4"
        with VideoMemoryClient(target, "key-alpha") as alpha:
            local = alpha.ingest_video(inbox / "objects.mp4")
        assert video.name.rsplit("/", 1)[1] == local.name.rsplit("/", 1)[1]  # same content, same key
        for bad in ("http://example.invalid/x.mp4", base + "../store/x.mp4", base + "a/%2e%2e/objects.mp4"):
            with pytest.raises(grpc.RpcError) as err:
                c.ingest_video(bad)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, bad
        with pytest.raises(grpc.RpcError) as err:
            c.ingest_video(base + "missing.mp4")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
