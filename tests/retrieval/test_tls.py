"""TLS: a server started with a certificate serves TLS clients and refuses plaintext ones."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest

from videomemory.retrieval.client import VideoMemoryClient
from videomemory.retrieval.server import ServerConfig, build_server


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_tls_server_accepts_tls_clients_only(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    config = ServerConfig(store=str(tmp_path / "store"), port=0, single_tenant="default", tls_cert=str(cert), tls_key=str(key))
    server, port, _ = build_server(config)
    server.start()
    try:
        with VideoMemoryClient(f"localhost:{port}", root_cert=cert.read_bytes(), timeout=10) as c:
            assert list(c.list_videos().videos) == []
        with VideoMemoryClient(f"localhost:{port}", timeout=3) as plain:
            with pytest.raises(grpc.RpcError) as err:
                plain.list_videos()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)
