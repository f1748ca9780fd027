"""Vector search at 10k, 100k and 1M vectors: build time, single-query latency and recall@10, filtered too.

Run:  python -m videomemory.bench.search            (about 3 minutes on 2 cores, most of it the 1M index)
      python -m videomemory.bench.search --quick    (10k and 100k, 200 queries: under a minute)
      python -m videomemory.bench.search --sizes 10k,1M --dim 768 --threads 1

Data: clustered unit vectors in ``--dim`` dimensions, like the embeddings of video frames: N/50
cluster centres (a "shot" each) lie in a random 16-dimensional subspace, as real embeddings have a
low intrinsic dimension, so many clusters have close neighbours; each vector is its centre plus
isotropic noise 1.5 times its norm, normalised. Rows are ordered by cluster and grouped into videos
of 30 vectors (N/30 videos, 16-hex-digit keys), so a video is one or two shots. A query's exact
top-10 are mostly from its own cluster (all at 10k, about 80% at 1M: ``own_cluster_top10``) and
otherwise from neighbouring clusters. Queries are held-out vectors drawn the same way (seeded).

For each N, in the same run, on the same vectors:

- build: ``VectorIndex(dim, factory_for(N))``, then ``train`` and ``add`` (seconds of each);
- index bytes (``faiss.serialize_index``), the factory string and the default ``nprobe``;
- single-query searches (k=10) through ``VectorIndex.search`` with its defaults: p50 and p99
  latency over the queries, recall@10 against exact inner product search (``faiss.knn``; an
  exact tie with the 10th score counts as found), and the lists probed and distances computed per
  query (FAISS's IVF counters);
- the same, filtered with ``allowed`` (row ids) to 10% of the videos, two ways: ``block``, a
  contiguous run of videos in ingest order (content unrelated: spread over the space), and
  ``similar``, the videos most like one video (concentrated in a few lists: the hard case for an
  inverted file); recall is against exact search over just those rows.

Searches run with ``--threads`` FAISS threads (0 = FAISS's default, what the library does); the
build always uses FAISS's default. ``clip_latency`` then times ``get_clip`` for 10 s and 60 s
clips starting between two samples (so the anchor is re-synthesised) of a stored 90 s video: cold
(empty GOP cache) and warm (an overlapping clip right after, as an agent zooming in asks for), served
from stored crops and by rebuilding, against the baseline of rebuilding every frame of each GOP the
range touches (``--clips-only`` runs just this part). Prints tables and writes JSON
(default ``results/search.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from videomemory.bench.common import timed, write_json
from videomemory.retrieval.index import VectorIndex, factory_for

K = 10
PER_CLUSTER = 50  # vectors per cluster centre, on average
PER_VIDEO = 30  # vectors per video
RANK = 16  # dimension of the subspace the cluster centres lie in
NOISE = 1.5  # norm of a vector's noise against its centre's
FILTER_SHARE = 0.1  # share of the videos a filtered search keeps
CHUNK = 65_536  # rows generated at a time
SIZES = [10_000, 100_000, 1_000_000]


# ---------------------------------------------------------------------------- data


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic(n: int, dim: int, queries: int, seed: int = 0) -> dict:
    """Clustered unit vectors (n, dim) float32 with their clusters, and held-out queries (see the docstring)."""
    rng = np.random.default_rng(seed)
    clusters = max(1, n // PER_CLUSTER)
    rank = min(RANK, dim)
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)  # (rank, dim), orthonormal rows
    centres = _unit(rng.standard_normal((clusters, rank), dtype=np.float32) @ basis)
    labels = np.sort(rng.integers(0, clusters, n))
    scale = np.float32(NOISE / np.sqrt(dim))

    def draw(lab: np.ndarray) -> np.ndarray:
        return _unit(centres[lab] + rng.standard_normal((len(lab), dim), dtype=np.float32) * scale)

    x = np.empty((n, dim), np.float32)
    for start in range(0, n, CHUNK):
        x[start : start + CHUNK] = draw(labels[start : start + CHUNK])
    q_labels = rng.integers(0, clusters, queries)
    return {"x": x, "labels": labels, "q": draw(q_labels), "q_labels": q_labels}


def metadata(n: int, seed: int = 0) -> pa.Table:
    """The ``META_COLUMNS`` of ``n`` vectors, ``PER_VIDEO`` per video: keys, ingests, frame ms, GOPs, kinds."""
    rng = np.random.default_rng(seed + 1)
    videos = -(-n // PER_VIDEO)
    video = pa.array(np.arange(n) // PER_VIDEO)
    keys = pa.array([f"{k:016x}" for k in rng.integers(0, 2**63 - 1, videos, dtype=np.int64)])
    ingests = pa.array([rng.bytes(16).hex() for _ in range(videos)])
    frame = np.arange(n) % PER_VIDEO
    return pa.table({
        "video_key": keys.take(video),
        "ingest_id": ingests.take(video),
        "ms": pa.array(frame * 2000, pa.int64()),
        "gop": pa.array(frame // 10, pa.int32()),
        "kind": pa.array(np.where(frame % 10 == 0, "anchor", "event")),
    })


def subsets(x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Row ids of ``FILTER_SHARE`` of the videos: a contiguous block, and the videos most like one video."""
    n = len(x)
    starts = np.arange(0, n, PER_VIDEO)
    videos = len(starts)
    keep = max(1, round(FILTER_SHARE * videos))
    first = (videos - keep) // 2
    block = np.arange(starts[first], min(n, starts[first] + keep * PER_VIDEO), dtype=np.int64)
    means = _unit(np.add.reduceat(x, starts, axis=0))
    anchor = np.random.default_rng(seed + 2).integers(videos)
    near = np.sort(np.argsort(-(means @ means[anchor]), kind="stable")[:keep])
    rows = (starts[near][:, None] + np.arange(PER_VIDEO)).ravel()
    return {"block": block, "similar": rows[rows < n].astype(np.int64)}


# ---------------------------------------------------------------------------- measures


def exact(q: np.ndarray, x: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``K`` inner products of every query (over ``rows`` of ``x`` when given): (scores, row ids)."""
    base = x if rows is None else np.ascontiguousarray(x[rows])
    scores, ids = faiss.knn(q, base, K, metric=faiss.METRIC_INNER_PRODUCT)
    return scores, (ids if rows is None else rows[ids])


def recall(ids: np.ndarray, scores: np.ndarray, true_ids: np.ndarray, true_scores: np.ndarray) -> float:
    """Mean recall@K: a result counts when it is in the exact top-K or ties the exact K-th score."""
    hits = [
        sum(1 for i, s in zip(got, got_s) if i >= 0 and (i in want or s >= kth - 1e-5)) / K
        for got, got_s, want, kth in zip(ids, scores, (set(t) for t in true_ids), true_scores[:, -1])
    ]
    return float(np.mean(hits))


def searches(vi: VectorIndex, q: np.ndarray, allowed: np.ndarray | None) -> dict:
    """One ``VectorIndex.search`` per query: latencies in ms, results, and IVF lists / distances per query."""
    for i in range(min(5, len(q))):  # warm-up, not counted
        vi.search(q[i], K, allowed=allowed)
    stats = faiss.cvar.indexIVF_stats
    stats.reset()
    lat = np.empty(len(q))
    scores = np.empty((len(q), K), np.float32)
    ids = np.empty((len(q), K), np.int64)
    for i in range(len(q)):
        t0 = time.perf_counter()
        s, r = vi.search(q[i], K, allowed=allowed)
        lat[i] = (time.perf_counter() - t0) * 1e3
        scores[i], ids[i] = s[0], r[0]
    ivf = faiss.try_extract_index_ivf(vi.index) is not None
    return {
        "lat": lat, "scores": scores, "ids": ids,
        "lists": stats.nlist / len(q) if ivf else None,
        "distances": stats.ndis / len(q) if ivf else (vi.ntotal if allowed is None else len(allowed)),
    }


# ---------------------------------------------------------------------------- GetClip


CLIP_PATHS = ("stored crops", "rebuild", "full-GOP rebuild")


def _full_gop_rebuild(store, video, start_ms: int, end_ms: int) -> None:
    """The baseline: what ``get_clip`` did before stored crops, read and rebuild every frame of each GOP the range touches."""
    from lancedb.expr import col, lit

    from videomemory.memory import records

    times = store.frames(video, col("ms") <= lit(start_ms), ["ms"])["ms"].to_pylist()
    rows = store.frames(video, (col("ms") >= lit(max(times))) & (col("ms") < lit(end_ms)), ["gop"]).to_pylist()
    gops = sorted({r["gop"] for r in rows})
    code = store.frames(video, col("gop").isin(gops), ["gop", "pos", "ms", "code_format", "code"]).to_pylist()
    for g in gops:
        records.gop_code(sorted((r for r in code if r["gop"] == g), key=lambda r: r["pos"])).frames()


def clip_latency(quick: bool, reps: int | None = None, duration_s: float = 90.0, lengths: tuple[int, ...] = (10, 60)) -> dict:
    """GetClip p50/p99 for 10 s and 60 s clips of a stored 90 s video (mixed preset), from a fresh store each call.

    Three paths on the same clips, interleaved: ``stored crops`` (``get_clip``: P-frames served from
    the crops stored at ingest, only the clip's first GOP rebuilt up to its start), ``rebuild``
    (``get_clip(stored_crops=False)``: what a video ingested without crops gets, every frame the
    package needs rebuilt, GOPs in parallel) and ``full-GOP rebuild`` (the baseline: the old path's
    reads and ``GopCode.frames()`` of every GOP the range touches, without building a package).
    """
    import tempfile

    from videomemory.bench import synth
    from videomemory.codec.config import set_cpu_threads
    from videomemory.memory.ingest import ingest_video
    from videomemory.memory.store import Store
    from videomemory.retrieval.clips import GOPS, get_clip

    set_cpu_threads()  # torch threads as the CLI and the server run them (codec.config.set_cpu_threads)

    reps = reps or (5 if quick else 20)
    out: dict = {"video": f"mixed preset, 640x360, {duration_s:g} s, coded at 2 fps on 512x512", "reps": reps, "rows": []}
    total_ms = int(duration_s * 1000)
    with tempfile.TemporaryDirectory(prefix="vm-clips-") as tmp:
        path = Path(tmp) / "mixed.mp4"
        synth.write_video(path, synth.preset("mixed", (640, 360), duration_s, seed=2), (640, 360), 30.0, x264_preset="veryfast")
        store = Store(Path(tmp) / "store")
        key = ingest_video(store, path).key
        video = store.get_video("default", key)
        out["stored_bytes"] = video.stored_bytes
        out["crop_bytes"] = int(sum(len(b) for b in store.table("crops").search().where(f"video_key = '{key}'")
                                    .select(["crops"]).limit(None).to_arrow()["crops"].to_pylist()))
        rng = np.random.default_rng(0)
        get_clip(store, "default", key, 250, 4_250, 100_000)  # imports and first-query costs, not counted
        for length_s in lengths:
            cold: dict = {p: [] for p in CLIP_PATHS}
            warm: dict = {p: [] for p in CLIP_PATHS[:2]}
            parts, tokens = [], []
            for _ in range(reps):
                start = int(rng.integers(0, total_ms - length_s * 1000)) // 10 * 10 + 250  # between samples: mid-GOP
                end = start + length_s * 1000
                for name in CLIP_PATHS:
                    GOPS.clear()  # cold: nothing cached
                    if name == "full-GOP rebuild":
                        _, wall, _ = timed(lambda: _full_gop_rebuild(store, video, start, end))
                        cold[name].append(wall * 1000)
                        continue
                    crops = name == "stored crops"
                    clip, wall, _ = timed(lambda: get_clip(store, "default", key, start, end, 100_000, stored_crops=crops))
                    cold[name].append(wall * 1000)
                    # warm: an overlapping clip right after (an agent zooming in), what it read and rebuilt cached
                    _, wall, _ = timed(lambda: get_clip(store, "default", key, start + 1000, end, 100_000, stored_crops=crops))
                    warm[name].append(wall * 1000)
                    if crops:
                        parts.append(len(clip.parts))
                        tokens.append(clip.tokens)
            for name in CLIP_PATHS:
                w = warm.get(name)
                out["rows"].append({
                    "clip_s": length_s,
                    "path": name,
                    "p50_ms": round(float(np.percentile(cold[name], 50)), 1),
                    "p99_ms": round(float(np.percentile(cold[name], 99)), 1),
                    "warm_p50_ms": round(float(np.percentile(w, 50)), 1) if w else None,
                    "warm_p99_ms": round(float(np.percentile(w, 99)), 1) if w else None,
                    "frames": length_s * 2,
                    "parts_mean": round(float(np.mean(parts)), 1),
                    "tokens_mean": round(float(np.mean(tokens))),
                })
    return out


# ---------------------------------------------------------------------------- run


def _measure(n: int, dim: int, queries: int, seed: int, threads: int) -> list[dict]:
    """Build the index of ``n`` vectors and search it (``threads`` FAISS threads) unfiltered and filtered."""
    data, gen_s, _ = timed(lambda: synthetic(n, dim, queries, seed))
    x, q = data["x"], data["q"]
    meta = metadata(n, seed)
    factory = factory_for(n)
    vi = VectorIndex(dim, factory)
    _, train_s, _ = timed(lambda: vi.train(x))
    _, add_s, _ = timed(lambda: vi.add(x, meta))
    index_bytes = int(faiss.serialize_index(vi.index).nbytes)
    base = {
        "n": n, "factory": factory, "nprobe": vi.nprobe, "data_s": round(gen_s, 2),
        "train_s": round(train_s, 2), "add_s": round(add_s, 2), "build_s": round(train_s + add_s, 2),
        "index_bytes": index_bytes, "index_mb": round(index_bytes / 2**20, 1),
    }
    rows = []
    for name, allowed in [("none", None), *subsets(x, seed).items()]:
        true_scores, true_ids = exact(q, x, allowed)
        default = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads or default)
        try:
            got = searches(vi, q, allowed)
        finally:
            faiss.omp_set_num_threads(default)
        row = {
            **base, "filter": name, "rows_searched": n if allowed is None else len(allowed),
            "p50_ms": round(float(np.percentile(got["lat"], 50)), 3),
            "p99_ms": round(float(np.percentile(got["lat"], 99)), 3),
            "mean_ms": round(float(got["lat"].mean()), 3),
            "recall_at_10": round(recall(got["ids"], got["scores"], true_ids, true_scores), 4),
            "lists_per_query": None if got["lists"] is None else round(got["lists"], 1),
            "distances_per_query": round(float(got["distances"])),
        }
        if allowed is None:
            row["own_cluster_top10"] = round(float((data["labels"][true_ids] == data["q_labels"][:, None]).mean()), 3)
        rows.append(row)
    return rows


def run(sizes: list[int], dim: int = 512, queries: int = 1000, quick: bool = False, threads: int = 0, seed: int = 0,
        clips: bool = True, clip_reps: int | None = None) -> dict:
    """Measure every size (none: only the clips); return the JSON-ready results."""
    default_threads = faiss.omp_get_max_threads()
    rows = [row for n in sizes for row in _measure(n, dim, queries, seed, threads)]
    return {
        "benchmark": "search",
        "quick": quick,
        "settings": {
            "sizes": sizes, "dim": dim, "k": K, "queries": queries, "seed": seed,
            "search_threads": threads or default_threads, "build_threads": default_threads,
            "data": {"per_cluster": PER_CLUSTER, "per_video": PER_VIDEO, "subspace_rank": RANK, "noise": NOISE},
            "filter_share_of_videos": FILTER_SHARE,
            "aims_at_1m": {"p99_ms_below": 20, "recall_at_10_at_least": 0.95},
        },
        "machine": {
            "cpus": os.cpu_count(), "faiss": faiss.__version__, "faiss_simd": faiss.get_compile_options(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        },
        "rows": rows,
        "clips": clip_latency(quick, clip_reps) if clips else None,
    }


def show(result: dict) -> None:
    """Print the table."""
    s = result["settings"]
    table = Table(title=f"Vector search: dim {s['dim']}, k {s['k']}, {s['queries']} single queries, "
                        f"{s['search_threads']} search threads, {result['machine']['cpus']} cores, FAISS {result['machine']['faiss']}")
    cols = [
        ("n", "vectors", "{:,}"), ("filter", "filter", "{}"), ("rows_searched", "rows", "{:,}"),
        ("factory", "factory", "{}"), ("nprobe", "nprobe", "{}"), ("build_s", "build s", "{:.1f}"),
        ("index_mb", "index MB", "{:,.1f}"), ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
        ("recall_at_10", "recall@10", "{:.3f}"), ("lists_per_query", "lists/query", "{:,.0f}"),
        ("distances_per_query", "distances/query", "{:,}"), ("own_cluster_top10", "own cluster", "{:.0%}"),
    ]
    for _, title, _ in cols:
        table.add_column(title, justify="right")
    for row in result["rows"]:
        first = row["filter"] == "none"
        cells = []
        for key, _, fmt in cols:
            value = row.get(key)
            if key in ("factory", "nprobe", "build_s", "index_mb") and not first:
                value = None  # the same index as the row above
            cells.append("" if value is None else fmt.format(value))
        table.add_row(*cells)
    if result["rows"]:
        Console(width=200).print(table)  # wide enough for every column, also when piped
    clips = result.get("clips")
    if clips:
        extra = clips.get("crop_bytes", 0) / max(clips.get("stored_bytes", 1), 1)
        t = Table(title=f"GetClip: {clips['video']}, {clips['reps']} clips each; cold = empty GOP cache; "
                        f"stored crops add {extra:.0%} to the code's bytes")
        for name in ("clip s", "path", "frames", "parts", "tokens", "cold p50 ms", "cold p99 ms", "warm p50 ms", "warm p99 ms"):
            t.add_column(name, justify="right")

        def ms(v: float | None) -> str:
            return "" if v is None else f"{v:.1f}"

        for r in clips["rows"]:
            t.add_row(str(r["clip_s"]), r.get("path", ""), str(r["frames"]), f"{r['parts_mean']:.1f}", f"{r['tokens_mean']:,}",
                      ms(r["p50_ms"]), ms(r["p99_ms"]), ms(r["warm_p50_ms"]), ms(r["warm_p99_ms"]))
        Console(width=200).print(t)


def _size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def main() -> None:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10k and 100k vectors, 200 queries")
    ap.add_argument("--sizes", default=None, help="comma list of vector counts, e.g. 10k,100k,1M (default: those)")
    ap.add_argument("--dim", type=int, default=512, help="vector dimension (512: the CLIP family's)")
    ap.add_argument("--queries", type=int, default=None, help="single queries per row (default 1000, quick 200)")
    ap.add_argument("--threads", type=int, default=0, help="FAISS threads for the searches (0 = FAISS's default)")
    ap.add_argument("--clips-only", action="store_true", help="only the GetClip latencies (no vector search)")
    ap.add_argument("--no-clips", action="store_true", help="only the vector search")
    ap.add_argument("--clip-reps", type=int, default=None, help="clips per length and path (default 20, quick 5)")
    ap.add_argument("--out", type=Path, default=Path("results/search.json"))
    args = ap.parse_args()
    sizes = [_size(s) for s in args.sizes.split(",")] if args.sizes else (SIZES[:2] if args.quick else SIZES)
    if args.clips_only:
        sizes = []
    queries = args.queries or (200 if args.quick else 1000)
    result = run(sizes, args.dim, queries, args.quick, args.threads, clips=not args.no_clips, clip_reps=args.clip_reps)
    show(result)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
