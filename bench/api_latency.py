"""gRPC overhead: Search and GetClip over loopback against the same calls in-process, at 1, 8 and 64 clients.

Run:  python -m videomemory.bench.api_latency            (about 2 minutes on 2 cores)
      python -m videomemory.bench.api_latency --quick    (under a minute: 1 and 8 clients, fewer calls)

Setup (in this run): three generated 30 s videos (mixed preset, 640x360) indexed into a fresh store
with the offline embedder; a server on a free loopback port (``build_server``, the default 8 RPC
workers, single tenant). Workload: ``Search`` with a PNG image query (page of 10) and ``GetClip`` of
a 10 s range starting between two samples (warm: the GOP cache is filled by a first call), each
bounded by ``--calls`` per setting and ``--seconds`` of wall time. For every number of concurrent
clients (threads sharing one channel) it measures p50/p99 latency and throughput, through gRPC and
through the library functions directly with the same threads, and prints the ratios.
Prints a table and writes JSON (default ``results/api_latency.json``).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from videomemory.bench import synth
from videomemory.bench.common import write_json
from videomemory.codec.decode import frame_at
from videomemory.memory.ingest import ingest_video
from videomemory.memory.store import Store
from videomemory.retrieval.client import VideoMemoryClient
from videomemory.retrieval.clips import get_clip
from videomemory.retrieval.embed import load_embedder
from videomemory.retrieval.search import search
from videomemory.retrieval.server import ServerConfig, build_server
from videomemory.retrieval.vectors import embed_video


def _load(fn: Callable[[], object], clients: int, calls: int, seconds: float) -> dict:
    """Run ``fn`` from ``clients`` threads until ``calls`` are done or ``seconds`` pass; latency and throughput."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    def worker(n: int) -> None:
        for _ in range(n):
            if time.perf_counter() > deadline:
                return
            t = time.perf_counter()
            fn()
            latencies.append((time.perf_counter() - t) * 1000)

    per = max(1, calls // clients)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, [per] * clients))
    wall = time.perf_counter() - t0
    return {
        "calls": len(latencies),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "per_s": round(len(latencies) / wall, 1),
    }


def run(quick: bool, calls: int, seconds: float, duration: float = 30.0) -> dict:
    """Measure every setting; return the JSON-ready results."""
    levels = [1, 8] if quick else [1, 8, 64]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vm-api-") as tmp:
        root = Path(tmp)
        store = Store(root / "store")
        embedder = load_embedder(None)
        keys = []
        for i in range(3):
            path = root / f"v{i}.mp4"
            synth.write_video(path, synth.preset("mixed", (640, 360), duration, seed=10 + i), (640, 360), 30.0, x264_preset="veryfast")
            video = store.get_video("default", ingest_video(store, path).key)
            embed_video(store, video, embedder)
            keys.append(video.key)
        buf = io.BytesIO()
        query = frame_at(root / "v1.mp4", duration * 0.6)
        Image.fromarray(query).save(buf, "PNG")
        png = buf.getvalue()
        start = 2250
        server, port, _ = build_server(ServerConfig(store=str(root / "store"), port=0, single_tenant="default"))
        server.start()
        try:
            with VideoMemoryClient(f"127.0.0.1:{port}", timeout=60) as client:
                name = f"tenants/default/videos/{keys[1]}"
                calls_by_kind = {
                    "Search": (
                        lambda: client.search(image=png, page_size=10),
                        lambda: search(store, "default", embedder, image=np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), page_size=10),
                    ),
                    "GetClip": (
                        lambda: client.get_clip(name, start, start + 10_000, 2000),
                        lambda: get_clip(store, "default", keys[1], start, start + 10_000, 2000),
                    ),
                }
                for kind, (remote, local) in calls_by_kind.items():
                    remote(), local()  # warm: index loaded, GOPs rebuilt
                    for clients in levels:
                        r = _load(remote, clients, calls, seconds)
                        lo = _load(local, clients, calls, seconds)
                        rows.append({
                            "call": kind, "clients": clients, "grpc": r, "in_process": lo,
                            "p50_ratio": round(r["p50_ms"] / lo["p50_ms"], 2),
                            "throughput_ratio": round(r["per_s"] / lo["per_s"], 2),
                        })
        finally:
            server.stop(0)
    return {
        "benchmark": "api_latency",
        "quick": quick,
        "settings": {"calls": calls, "seconds": seconds, "videos": 3, "video_s": duration, "server_workers": 8},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows,
    }


def show(result: dict) -> None:
    """Print the table."""
    table = Table(title=f"gRPC (loopback) vs in-process, {result['machine']['cpus']} cores, 8 server workers")
    for name in ("call", "clients", "gRPC p50 ms", "gRPC p99 ms", "gRPC /s", "in-proc p50 ms", "in-proc p99 ms", "in-proc /s",
                 "p50 ratio", "throughput ratio"):
        table.add_column(name, justify="right")
    for r in result["rows"]:
        g, lo = r["grpc"], r["in_process"]
        table.add_row(r["call"], str(r["clients"]), f"{g['p50_ms']:.1f}", f"{g['p99_ms']:.1f}", f"{g['per_s']:.1f}",
                      f"{lo['p50_ms']:.1f}", f"{lo['p99_ms']:.1f}", f"{lo['per_s']:.1f}", f"{r['p50_ratio']:.2f}",
                      f"{r['throughput_ratio']:.2f}")
    Console(width=200).print(table)


def main() -> None:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 and 8 clients, fewer calls")
    ap.add_argument("--calls", type=int, default=None, help="calls per setting (default 256, quick 64)")
    ap.add_argument("--seconds", type=float, default=None, help="wall-time cap per setting (default 15, quick 5)")
    ap.add_argument("--out", type=Path, default=Path("results/api_latency.json"))
    args = ap.parse_args()
    result = run(args.quick, args.calls or (64 if args.quick else 256), args.seconds or (5.0 if args.quick else 15.0))
    show(result)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
