"""FAISS indexes over the store's vectors: one per (tenant, embedder), persisted, never silently stale.

``VectorIndex`` wraps one FAISS index with an explicit ID map (``IndexIDMap2``): the FAISS ID of
a vector is its row in ``VectorIndex.meta`` (video key, ingest, frame ms, GOP, kind), the one
place that maps FAISS IDs to frame IDs. The index type is a factory string chosen by size
(``factory_for``): exact inner product under ``FLAT_MAX`` vectors, an inverted file above (coarse
quantiser + flat vectors, probed with ``nprobe``), with scalar quantisation for the largest. The
inverted file has the power of two nearest 2·sqrt(n) lists (512 at 100k vectors, 2048 at 1M), its
k-means trained on 64 sampled vectors per list, and probes 1/32 of them (``default_nprobe``): on
clustered 512-d vectors (``bench/search.py``, 2 cores) that is recall@10 0.98 at 1M with a p99 of
about 6 ms, built in 80-95 s (45-60 s k-means, 35 s assigning the vectors). The usual
4-16·sqrt(n) lists with 256 training vectors each cost many minutes of k-means on few cores for
little gain at these sizes; HNSW builds slower still. Filters are FAISS ID selectors, so a
filtered search still returns ``k`` results. A filter that keeps a fraction f of the rows leaves
only f of every probed list, so a filtered search probes nprobe/f lists (at most all of them),
scanning about as many allowed vectors as an unfiltered search: recall@10 >= 0.97 for 10% of the
videos at 100k and 1M, also when they are concentrated in a few lists (nprobe/sqrt(f): 0.84-0.94).

``TenantIndex.open`` keeps an index in step with the store (and in memory between calls): it compares the store's
``embedded`` markers (which video ingests have complete vectors) with the fingerprint saved next
to the index, loads it when equal, adds the new videos when the store only gained some, and
rebuilds it from the store otherwise (a deleted or replaced video, another factory, a damaged
file). ``status`` says which happened. Files are written to a temporary name and renamed, so a
crash never leaves half an index. Where the installed FAISS sees GPUs, search runs on one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa

from videomemory.errors import DataLoss, FailedPrecondition, InvalidArgument
from videomemory.memory.store import Store

FLAT_MAX = 50_000  # exact search below this many vectors: it is fast enough and perfectly recalled
SQ_MIN = 2_000_000  # above this, 8-bit scalar quantisation keeps the index in memory
META_COLUMNS = ("video_key", "ingest_id", "ms", "gop", "kind")


def factory_for(n: int) -> str:
    """FAISS factory string for ``n`` vectors (see the module docstring)."""
    if n < FLAT_MAX:
        return "Flat"
    lists = int(2 ** round(np.log2(max(2 * np.sqrt(n), 256))))
    return f"IVF{lists},{'SQ8' if n >= SQ_MIN else 'Flat'}"


def default_nprobe(index: faiss.Index) -> int:
    """Inverted lists probed per query: ~3% of them (recall@10 >= 0.95 on clustered vectors), 8..256."""
    ivf = faiss.try_extract_index_ivf(index)
    return 0 if ivf is None else int(min(256, max(8, ivf.nlist // 32)))


class VectorIndex:
    """One FAISS index (inner product on L2-normalised vectors) plus the metadata of each vector."""

    def __init__(self, dim: int, factory: str = "Flat") -> None:
        if dim <= 0:
            raise InvalidArgument(f"vector dimension must be > 0, got {dim}")
        self.dim = dim
        self.factory = factory
        try:
            inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InvalidArgument(f"FAISS cannot build index {factory!r}: {exc}") from None
        self.index = faiss.IndexIDMap2(inner)
        self.meta = _empty_meta()
        self.nprobe = 0
        self._gpu: Any = None

    @property
    def ntotal(self) -> int:
        """Vectors in the index."""
        return int(self.index.ntotal)

    def train(self, vectors: np.ndarray) -> None:
        """Train the coarse quantiser (no-op for flat indexes); ``vectors`` (N, dim) float32."""
        if not self.index.is_trained:
            x = _check(vectors, self.dim)
            ivf = faiss.try_extract_index_ivf(self.index)
            need = ivf.nlist * 4 if ivf is not None else 1
            if len(x) < need:
                raise InvalidArgument(f"index {self.factory} needs >= {need} training vectors, got {len(x)}")
            rng = np.random.default_rng(0)
            size = 64 * ivf.nlist if ivf is not None else 256  # k-means points: see the module docstring
            sample = x if len(x) <= size else x[rng.choice(len(x), size, replace=False)]
            self.index.train(sample)
            self.nprobe = default_nprobe(self.index)

    def add(self, vectors: np.ndarray, meta: pa.Table) -> None:
        """Add vectors with one metadata row each (``META_COLUMNS``); their IDs continue the row count."""
        x = _check(vectors, self.dim)
        if len(x) != meta.num_rows:
            raise InvalidArgument(f"{len(x)} vectors but {meta.num_rows} metadata rows")
        if not self.index.is_trained:
            self.train(x)
        ids = np.arange(self.meta.num_rows, self.meta.num_rows + len(x), dtype=np.int64)
        self.index.add_with_ids(x, ids)
        self.meta = pa.concat_tables([self.meta, meta.select(list(META_COLUMNS)).cast(_META_SCHEMA)])
        self._gpu = None
        self._columns: dict[str, np.ndarray] = {}

    def column(self, name: str) -> np.ndarray:
        """A metadata column as a numpy array (cached: filters read it on every search)."""
        cache = self.__dict__.setdefault("_columns", {})
        if name not in cache:
            values = self.meta[name]
            cache[name] = np.asarray(values.to_pylist(), dtype=object) if pa.types.is_string(values.type) else values.to_numpy()
        return cache[name]

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per query: (scores, ids), both (Q, k); id -1 where fewer match. ``allowed``: row ids to keep."""
        q = _check(queries, self.dim)
        if k <= 0:
            raise InvalidArgument(f"k must be > 0, got {k}")
        if self.ntotal == 0:
            return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        probe = nprobe or self.nprobe
        ivf = faiss.try_extract_index_ivf(self.index)
        if allowed is not None and not nprobe and probe and ivf is not None:
            probe = int(min(ivf.nlist, -(-probe * self.ntotal // max(1, len(allowed)))))  # nprobe / f, see the module docstring
        params: Any = None
        sel = None
        if allowed is not None:  # a bitmap over row ids: built and probed faster than an id hash set
            bits = np.zeros(self.meta.num_rows, dtype=bool)
            bits[np.asarray(allowed, dtype=np.int64)] = True
            sel = faiss.IDSelectorBitmap(np.packbits(bits, bitorder="little"))
        if probe and ivf is not None:
            params = faiss.SearchParametersIVF(sel=sel, nprobe=probe)
        elif sel is not None:
            params = faiss.SearchParameters(sel=sel)
        index = self._search_index() if params is None else self.index
        scores, ids = index.search(q, k, params=params) if params is not None else index.search(q, k)
        return scores, ids

    def _search_index(self) -> Any:
        """The index to search: a GPU copy where FAISS sees a GPU (same results), else this one."""
        if self._gpu is None:
            self._gpu = self.index
            if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
                self._gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, self.index)
        return self._gpu

    def save(self, folder: Path) -> None:
        """Write ``index.faiss`` and ``meta.arrow`` into ``folder`` (each via a temporary file and a rename)."""
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / "index.faiss", faiss.serialize_index(self.index).tobytes())
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, self.meta.schema) as writer:
            writer.write_table(self.meta)
        _atomic_write(folder / "meta.arrow", sink.getvalue().to_pybytes())

    @classmethod
    def load(cls, folder: Path, dim: int, factory: str) -> "VectorIndex":
        """Read what ``save`` wrote; DataLoss when the files are damaged or disagree."""
        out = cls.__new__(cls)
        out.dim, out.factory, out._gpu = dim, factory, None
        try:
            out.index = faiss.deserialize_index(np.frombuffer((folder / "index.faiss").read_bytes(), dtype=np.uint8))
            with pa.ipc.open_file(pa.memory_map(str(folder / "meta.arrow"))) as reader:
                out.meta = reader.read_all()
        except (OSError, RuntimeError, pa.ArrowInvalid) as exc:
            raise DataLoss(f"search index in {folder} is damaged ({exc}); it will be rebuilt from the store") from None
        if out.index.d != dim or out.index.ntotal != out.meta.num_rows:
            raise DataLoss(f"search index in {folder} does not match its metadata; it will be rebuilt from the store")
        out.nprobe = default_nprobe(out.index)
        return out


_META_SCHEMA = pa.schema(
    [("video_key", pa.string()), ("ingest_id", pa.string()), ("ms", pa.int64()), ("gop", pa.int32()), ("kind", pa.string())]
)


def _empty_meta() -> pa.Table:
    return _META_SCHEMA.empty_table()


def _check(vectors: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise InvalidArgument(f"vectors must be (N, {dim}), got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise InvalidArgument("vectors contain NaN or infinity")
    return x


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------- per tenant, kept in step


def index_root(store: Store) -> Path:
    """Where indexes of ``store`` live: beside a local store, else in the user cache."""
    if "://" not in store.uri:
        return Path(store.uri) / "_faiss"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "videomemory" / "faiss" / hashlib.sha1(store.uri.encode()).hexdigest()[:16]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]


def _fingerprint(markers: list[dict[str, Any]]) -> list[list[Any]]:
    return [[m["video_key"], m["ingest_id"], int(m["vectors"])] for m in markers]


@dataclass
class TenantIndex:
    """The search index of one tenant and embedder, in step with the store when opened."""

    store: Store
    tenant: str
    embedder: str
    vectors: VectorIndex | None
    status: str  # fresh | fresh (in memory) | updated (+N videos) | rebuilt (why) | empty
    folder: Path
    fingerprint: list[list[Any]] = field(default_factory=list)

    @classmethod
    def open(cls, store: Store, tenant: str, embedder: str, *, factory: str | None = None, rebuild: bool = False) -> "TenantIndex":
        """Load the saved index, bring it up to date with the store, or rebuild it (see the module docstring)."""
        folder = index_root(store) / tenant / _slug(embedder)
        markers = store.embedded(tenant, embedder)
        if not markers:
            return cls(store, tenant, embedder, None, "empty", folder)
        dims = {int(m["dim"]) for m in markers}
        if len(dims) != 1:
            raise DataLoss(f"embedder {embedder!r} stored vectors of dimensions {sorted(dims)}; re-embed with `videomemory reindex`")
        dim = dims.pop()
        current = _fingerprint(markers)
        key = (store.uri, tenant, embedder)
        cached = _LOADED.get(key)
        if cached is not None and not rebuild and cached.fingerprint == current and (not factory or cached.vectors.factory == factory):
            cached.status = "fresh (in memory)"
            return cached
        idx = cls._open(store, tenant, embedder, folder, dim, current, markers, factory, rebuild)
        idx.fingerprint = current
        _LOADED[key] = idx
        return idx

    @staticmethod
    def forget() -> None:
        """Drop the indexes held in memory (the next ``open`` reads the saved files)."""
        _LOADED.clear()

    @classmethod
    def _open(cls, store: Store, tenant: str, embedder: str, folder: Path, dim: int, current: list[list[Any]],
              markers: list[dict[str, Any]], factory: str | None, rebuild: bool) -> "TenantIndex":
        n = sum(int(m["vectors"]) for m in markers)
        want = factory or factory_for(n)
        state = _read_state(folder)
        why = "forced" if rebuild else "no saved index"
        if state is not None and not rebuild:
            saved = state.get("fingerprint", [])
            if state.get("dim") != dim or (factory and state.get("factory") != factory):
                why = "index settings changed"
            elif saved == current:
                try:
                    return cls(store, tenant, embedder, VectorIndex.load(folder, dim, state["factory"]), "fresh", folder)
                except DataLoss:
                    why = "saved index damaged"
            elif {tuple(x) for x in saved} <= {tuple(x) for x in current} and (factory or state["factory"]) == state["factory"]:
                try:
                    vi = VectorIndex.load(folder, dim, state["factory"])
                except DataLoss:
                    why = "saved index damaged"
                else:
                    have = {tuple(x[:2]) for x in saved}
                    new = [(k, i) for k, i, _ in current if (k, i) not in have]
                    _add_from_store(vi, store, tenant, embedder, new)
                    idx = cls(store, tenant, embedder, vi, f"updated (+{len(new)} videos)", folder)
                    idx._save(current)
                    return idx
            else:
                why = "videos were removed or re-coded since it was built"
        vi = VectorIndex(dim, want)
        _add_from_store(vi, store, tenant, embedder, [(k, i) for k, i, _ in current])
        idx = cls(store, tenant, embedder, vi, f"rebuilt ({why})", folder)
        idx._save(current)
        return idx

    def _save(self, fingerprint: list[list[Any]]) -> None:
        assert self.vectors is not None
        self.vectors.save(self.folder)
        state = {"fingerprint": fingerprint, "dim": self.vectors.dim, "factory": self.vectors.factory, "ntotal": self.vectors.ntotal}
        _atomic_write(self.folder / "state.json", json.dumps(state).encode())


# Indexes loaded in this process, by (store URI, tenant, embedder): a server loads each once and
# only re-reads the store's small marker table per query to know it is still current.
_LOADED: dict[tuple[str, str, str], TenantIndex] = {}


def _read_state(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None


def _add_from_store(vi: VectorIndex, store: Store, tenant: str, embedder: str, pairs: list[tuple[str, str]]) -> None:
    """Add the stored vectors of these (key, ingest_id) pairs, read in chunks of videos and added at once.

    One ``add`` lets an untrained index train on a sample of *all* the vectors, not on the first chunk.
    """
    chunk = 512
    vectors, metas = [], []
    for start in range(0, len(pairs), chunk):
        rows = store.embeddings(tenant, embedder, pairs[start : start + chunk])
        if rows.num_rows == 0:
            continue
        flat = rows["vector"].combine_chunks()
        x = np.asarray(flat.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(rows.num_rows, -1)
        if x.shape[1] != vi.dim:
            raise FailedPrecondition(f"stored vectors have dimension {x.shape[1]}, the index {vi.dim}; run `videomemory reindex`")
        vectors.append(x)
        metas.append(rows.select(list(META_COLUMNS)))
    if vectors:
        vi.add(np.concatenate(vectors), pa.concat_tables(metas))
