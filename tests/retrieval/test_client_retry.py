"""The client retries UNAVAILABLE (a server restarting, a proxy between replicas) and gives up on other errors."""

from __future__ import annotations

import grpc
import pytest

from videomemory.retrieval import client as client_module
from videomemory.retrieval.client import VideoMemoryClient
from videomemory.retrieval.server import ServerConfig, build_server


class _FlakyFirstCalls(grpc.ServerInterceptor):
    """Answers the first ``n`` calls with UNAVAILABLE, as an overloaded or restarting replica does."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.calls = 0

    def intercept_service(self, continuation, details):
        self.calls += 1
        if self.left > 0:
            self.left -= 1

            def unavailable(request, context):
                context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

            return grpc.unary_unary_rpc_method_handler(unavailable)
        return continuation(details)


@pytest.fixture
def flaky(tmp_path):
    def start(n: int):
        interceptor = _FlakyFirstCalls(n)
        server, port, _ = build_server(ServerConfig(store=str(tmp_path / "store"), port=0, single_tenant="default"), (interceptor,))
        server.start()
        started.append(server)
        return port, interceptor

    started: list = []
    yield start
    for server in started:
        server.stop(0)


def test_unavailable_is_retried_until_it_succeeds(flaky):
    port, interceptor = flaky(2)
    with VideoMemoryClient(f"127.0.0.1:{port}", timeout=20) as c:
        assert list(c.list_videos().videos) == []
    assert interceptor.calls == 3  # two refusals, then the answer


def test_without_the_retry_policy_the_same_call_fails(flaky, monkeypatch):
    monkeypatch.setattr(client_module, "_RETRY", '{"methodConfig": []}')
    port, _ = flaky(2)
    with VideoMemoryClient(f"127.0.0.1:{port}", timeout=20) as c:
        with pytest.raises(grpc.RpcError) as err:
            c.list_videos()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_other_errors_are_not_retried(flaky):
    port, interceptor = flaky(0)
    with VideoMemoryClient(f"127.0.0.1:{port}", timeout=20) as c:
        with pytest.raises(grpc.RpcError) as err:
            c.get_video("tenants/default/videos/" + "0" * 16)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and interceptor.calls == 1
