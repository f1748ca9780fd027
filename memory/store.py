"""The store of record: LanceDB tables ``videos``, ``segments`` and ``frames`` (``memory.schema``).

``Store(uri)`` opens an embedded directory (the default) or any URI LanceDB takes. It moves rows
and computes nothing. Writes go through ``Store.begin`` -> ``Ingest.add_frames/add_segments`` ->
``Ingest.commit``:

1. ``begin`` claims the (tenant, key) video row with a fresh ``ingest_id`` (status ``ingesting``),
   or says the video is already ``ready`` (re-ingest is a no-op unless ``replace``).
2. Frame and segment rows are appended in batches, tagged with that ``ingest_id``. They are
   invisible: every read goes through a ``ready`` video row and takes only its ``ingest_id``.
3. ``commit`` flips the video row to ``ready`` with this ``ingest_id`` in one merge-insert (one
   LanceDB version): the whole video becomes visible at once, or, if the process dies before, not
   at all. It then deletes rows of every other ingest of that video (crashed runs, a replaced code).

A reader that races a replacement checks the frame count against the video row and retries once.
Filters are built with ``lancedb.expr`` from validated values, never by pasting user text.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.expr import Expr, col, lit

from videomemory.errors import FailedPrecondition, InvalidArgument, NotFound
from videomemory.memory import schema as S
from videomemory.memory.ids import check_key, check_tenant

DEFAULT_TENANT = "default"
ENV_STORE = "VIDEOMEMORY_STORE"


def default_uri() -> str:
    """``$VIDEOMEMORY_STORE``, else ``$XDG_DATA_HOME/videomemory/store`` (~/.local/share/...)."""
    if os.environ.get(ENV_STORE):
        return os.environ[ENV_STORE]
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "videomemory" / "store")


@dataclass(frozen=True)
class Video:
    """A video row as readers see it."""

    tenant: str
    key: str
    status: str
    ingest_id: str
    source_uri: str
    source_bytes: int
    source_codec: str
    width: int
    height: int
    source_fps: float | None
    duration_ms: int
    fps: float
    grid_width: int
    grid_height: int
    frames: int
    segments: int
    tokens: int
    tokens_per_min: float
    stored_bytes: int
    content_class: str
    hybrid_flat: bool
    codec: dict[str, Any] = field(repr=False)
    stats: dict[str, Any] = field(repr=False)
    created_at: datetime | None = None
    ingest_seconds: float = 0.0

    @property
    def name(self) -> str:
        """Resource name, ``tenants/{tenant}/videos/{key}``."""
        return f"tenants/{self.tenant}/videos/{self.key}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Video":
        """Build from a ``videos`` row."""
        return cls(
            tenant=row["tenant"],
            key=row["video_key"],
            status=row["status"],
            ingest_id=row["ingest_id"],
            source_uri=row.get("source_uri") or "",
            source_bytes=row.get("source_bytes") or 0,
            source_codec=row.get("source_codec") or "",
            width=row.get("width") or 0,
            height=row.get("height") or 0,
            source_fps=row.get("source_fps"),
            duration_ms=row.get("duration_ms") or 0,
            fps=row.get("fps") or 0.0,
            grid_width=row.get("grid_width") or 0,
            grid_height=row.get("grid_height") or 0,
            frames=row.get("frames") or 0,
            segments=row.get("segments") or 0,
            tokens=row.get("tokens") or 0,
            tokens_per_min=row.get("tokens_per_min") or 0.0,
            stored_bytes=row.get("stored_bytes") or 0,
            content_class=row.get("content_class") or "",
            hybrid_flat=bool(row.get("hybrid_flat")),
            codec=json.loads(row.get("codec_json") or "{}"),
            stats=json.loads(row.get("stats_json") or "{}"),
            created_at=row.get("created_at"),
            ingest_seconds=row.get("ingest_seconds") or 0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        out["name"] = self.name
        return out


def _visible(tenant: str) -> Expr:
    """Rows of videos a reader may see: ready, or live (their published GOPs)."""
    return (col("tenant") == lit(check_tenant(tenant))) & col("status").isin(list(S.VISIBLE))


def _eq(**values: str) -> Expr:
    """``a = 'x' AND b = 'y'`` as a typed expression."""
    items = list(values.items())
    expr = col(items[0][0]) == lit(items[0][1])
    for name, value in items[1:]:
        expr = expr & (col(name) == lit(value))
    return expr


class _AsyncReader:
    """The store's hot reads through LanceDB's async API, each one awaited query on one event-loop thread per process.

    The sync API runs each step of a read (schema checks, the plan, every batch) as its own call
    into LanceDB's loop thread, about 6 per query; while other threads hold the GIL (a clip rebuilds
    GOPs and decodes images beside its reads) each call waits for it. A clip's frame-rows read took
    23 ms that way against 13 ms as one awaited query with three Python threads busy (6.2 against
    5.5 ms idle), and cold 60 s clips 80 against 72 ms p50 (96 each, interleaved).
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _start = threading.Lock()

    def __init__(self, uri: str, consistency: timedelta | None) -> None:
        self.uri, self.consistency = uri, consistency
        self._tables: dict[str, Any] = {}  # AsyncTable by name, touched only on the loop thread

    @classmethod
    def _run(cls, coro: Any) -> Any:
        with cls._start:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="videomemory-lance", daemon=True).start()
                cls._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, cls._loop).result()

    def arrow(self, name: str, where: Expr, columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        """Rows of table ``name`` matching ``where`` (all columns unless ``columns``; all rows unless ``limit``)."""

        async def read() -> pa.Table:
            table = self._tables.get(name)
            if table is None:
                db = await lancedb.connect_async(self.uri, read_consistency_interval=self.consistency)
                table = self._tables[name] = await db.open_table(name)
            query = table.query().where(where.to_sql())
            if columns is not None:
                query = query.select(columns)
            if limit is not None:
                query = query.limit(limit)
            return await query.to_arrow()

        return self._run(read())


class Store:
    """One LanceDB database holding every tenant's videos, segments and frames."""

    def __init__(self, uri: str | os.PathLike[str] | None = None, *, consistency: timedelta | None = timedelta(0)) -> None:
        """Open (creating when missing) the store at ``uri``; ``consistency`` 0 sees other processes' commits at once."""
        self.uri = str(uri) if uri is not None else default_uri()
        if "://" not in self.uri:
            Path(self.uri).mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(self.uri, read_consistency_interval=consistency)
        self._reader = _AsyncReader(self.uri, consistency)
        existing = set(self.db.list_tables().tables)
        self._tables: dict[str, Any] = {}
        for name, schema in S.TABLES.items():
            if name in existing:
                table = self.db.open_table(name)
                found = S.version_of(table.schema)
                if found > S.SCHEMA_VERSION:
                    raise FailedPrecondition(
                        f"store {self.uri}: table {name!r} was written by schema version {found}, this "
                        f"videomemory reads up to version {S.SCHEMA_VERSION}; upgrade videomemory "
                        "(pip install -U videomemory) to open it"
                    )
            else:
                table = self.db.create_table(name, schema=schema, exist_ok=True)
            self._tables[name] = table

    def table(self, name: str) -> Any:
        """The LanceDB table ``name`` (videos, segments or frames)."""
        return self._tables[name]

    # ------------------------------------------------------------------ videos

    def _video_rows(self, where: Expr, limit: int | None = None) -> list[dict[str, Any]]:
        return self._reader.arrow("videos", where, limit=limit).to_pylist()

    def status(self, tenant: str, key: str) -> str | None:
        """``ready``, ``ingesting`` or None (never seen) for a video of a tenant."""
        rows = self._video_rows(_eq(tenant=check_tenant(tenant), video_key=check_key(key)), 1)
        return rows[0]["status"] if rows else None

    def get_video(self, tenant: str, key: str) -> Video:
        """The ready video ``key`` of ``tenant``; NotFound otherwise (also for another tenant's)."""
        where = _visible(tenant) & (col("video_key") == lit(check_key(key)))
        rows = self._video_rows(where, 1)
        if not rows:
            raise NotFound(f"video {key} is not in this store for tenant {tenant!r} (list them with `videomemory list`)")
        return Video.from_row(rows[0])

    def get_videos(self, tenant: str, keys: list[str]) -> dict[str, Video]:
        """Ready videos of ``tenant`` among ``keys``, by key, in one query (missing ones are left out)."""
        if not keys:
            return {}
        where = _visible(tenant) & col("video_key").isin([check_key(k) for k in keys])
        return {r["video_key"]: Video.from_row(r) for r in self._video_rows(where)}

    def segments_of(self, videos: list[Video], gops: set[tuple[str, int]] | None = None) -> dict[tuple[str, int], dict[str, Any]]:
        """Segment rows of several ready videos in one query, by (key, GOP); ``gops`` narrows to those."""
        if not videos:
            return {}
        tenant = videos[0].tenant
        current = {v.key: v.ingest_id for v in videos}
        where = (col("tenant") == lit(tenant)) & col("ingest_id").isin(list(current.values()))
        rows = self.table("segments").search().where(where).limit(None).to_list()
        out = {(r["video_key"], r["gop"]): r for r in rows if current.get(r["video_key"]) == r["ingest_id"]}
        return out if gops is None else {k: v for k, v in out.items() if k in gops}

    def find_videos(self, tenant: str, key_prefix: str) -> list[Video]:
        """Ready videos of ``tenant`` whose key starts with ``key_prefix`` (for short cite tags)."""
        if not key_prefix or any(c not in "0123456789abcdef" for c in key_prefix):
            raise InvalidArgument(f"key prefix {key_prefix!r} must be lowercase hex digits")
        where = _visible(tenant) & (col("video_key") >= lit(key_prefix)) & (
            col("video_key") < lit(key_prefix + "g")
        )
        return [Video.from_row(r) for r in self._video_rows(where)]

    def list_videos(self, tenant: str, *, page_size: int = 100, after_key: str = "") -> list[Video]:
        """Ready videos of ``tenant`` ordered by key, ``page_size`` at most, keys after ``after_key``."""
        if not 1 <= page_size <= 1000:
            raise InvalidArgument(f"page size {page_size} must be within 1..1000")
        where = _visible(tenant)
        if after_key:
            where = where & (col("video_key") > lit(check_key(after_key)))
        rows = self._video_rows(where)
        rows.sort(key=lambda r: r["video_key"])
        return [Video.from_row(r) for r in rows[:page_size]]

    def all_videos(self, tenant: str) -> list[Video]:
        """Every visible video of ``tenant``, ordered by key (read page by page)."""
        videos: list[Video] = []
        after = ""
        while True:
            page = self.list_videos(tenant, page_size=1000, after_key=after)
            videos += page
            if len(page) < 1000:
                return videos
            after = page[-1].key

    def delete_video(self, tenant: str, key: str) -> Video:
        """Delete a ready video and all its rows; the video row goes first, so readers never see a part."""
        video = self.get_video(tenant, key)
        self.table("videos").delete(_eq(tenant=tenant, video_key=key))
        self._drop_rows(tenant, key, keep=None)
        return video

    # ------------------------------------------------------------------ reads of one video

    def _rows(self, name: str, video: Video, where: Expr | None, columns: list[str] | None) -> pa.Table:
        # Only published GOPs: a live stream writes a GOP's rows before its video row counts them.
        expr = _eq(tenant=video.tenant, video_key=video.key, ingest_id=video.ingest_id) & (col("gop") < lit(video.segments))
        if where is not None:
            expr = expr & where
        return self._reader.arrow(name, expr, columns)

    def frames(self, video: Video, where: Expr | None = None, columns: list[str] | None = None) -> pa.Table:
        """Frame rows of a ready video sorted by time (``where`` narrows, ``columns`` projects)."""
        rows = self._rows("frames", video, where, columns)
        if where is None and rows.num_rows != video.frames:
            # A replacement committed between reading the video row and its frames: read again.
            fresh = self.get_video(video.tenant, video.key)
            rows = self._rows("frames", fresh, where, columns)
            if rows.num_rows != fresh.frames:
                raise FailedPrecondition(f"video {video.key} is being re-written; retry in a moment")
        return rows.sort_by("ms") if "ms" in rows.column_names else rows

    def crops(self, video: Video, where: Expr | None = None, columns: list[str] | None = None) -> pa.Table:
        """Stored crop rows of a video (``memory.records.crop_row``; none for videos of schema version 1)."""
        return self._rows("crops", video, where, columns)

    def segments(self, video: Video) -> pa.Table:
        """Segment (GOP) rows of a ready video sorted by time."""
        return self._rows("segments", video, None, None).sort_by("start_ms")

    def segment_classes(self, tenant: str, classes: list[str]) -> set[tuple[str, int]]:
        """(video key, GOP) of the tenant's ready segments whose content class is one of ``classes``."""
        ready = {v["video_key"]: v["ingest_id"] for v in self._video_rows(_visible(tenant))}
        where = (col("tenant") == lit(tenant)) & col("content_class").isin(list(classes))
        rows = self.table("segments").search().where(where).select(["video_key", "ingest_id", "gop"]).limit(None).to_list()
        return {(r["video_key"], r["gop"]) for r in rows if ready.get(r["video_key"]) == r["ingest_id"]}

    def frame_times(self, video: Video) -> pa.Table:
        """Time, place in the GOP, role and token plan of every sampled frame (no code)."""
        return self.frames(
            video,
            columns=["ms", "gop", "pos", "role", "plan_role", "image_tokens", "overhead_tokens", "source_index", "sampled_index"],
        )

    # ------------------------------------------------------------------ embeddings

    def embedded(self, tenant: str, embedder: str) -> list[dict[str, Any]]:
        """Commit markers of ``tenant``'s ready videos with vectors of ``embedder`` (key, ingest_id, dim, vectors)."""
        ready = {v["video_key"]: v["ingest_id"] for v in self._video_rows(_visible(tenant))}
        rows = self.table("embedded").search().where(_eq(tenant=tenant, embedder=embedder)).limit(None).to_list()
        return sorted((r for r in rows if ready.get(r["video_key"]) == r["ingest_id"]), key=lambda r: r["video_key"])

    def has_embeddings(self, video: Video, embedder: str) -> bool:
        """Whether this ingest of ``video`` has complete vectors of ``embedder``."""
        where = _eq(tenant=video.tenant, video_key=video.key, ingest_id=video.ingest_id, embedder=embedder)
        return self.table("embedded").count_rows(where.to_sql()) > 0

    def add_embeddings(self, video: Video, embedder: str, dim: int, rows: list[dict[str, Any]]) -> None:
        """Store a video's vectors (``ms``, ``gop``, ``kind``, ``vector``), then their commit marker."""
        owner = {"tenant": video.tenant, "video_key": video.key, "ingest_id": video.ingest_id, "embedder": embedder}
        where = _eq(**owner)
        for name in ("embedded", "embeddings"):  # a half-written earlier attempt
            self.table(name).delete(where)
        if rows:
            self.table("embeddings").add(pa.Table.from_pylist([r | owner for r in rows], schema=S.EMBEDDINGS))
        marker = owner | {"dim": dim, "vectors": len(rows)}
        self.table("embedded").add(pa.Table.from_pylist([marker], schema=S.EMBEDDED))

    def append_embeddings(self, video: Video, embedder: str, dim: int, rows: list[dict[str, Any]]) -> None:
        """Add vectors to a (live) video's, then move its commit marker to the new count in one merge-insert."""
        owner = {"tenant": video.tenant, "video_key": video.key, "ingest_id": video.ingest_id, "embedder": embedder}
        have = self.table("embedded").search().where(_eq(**owner)).limit(1).to_list()
        if rows:
            self.table("embeddings").add(pa.Table.from_pylist([r | owner for r in rows], schema=S.EMBEDDINGS))
        marker = owner | {"dim": dim, "vectors": (have[0]["vectors"] if have else 0) + len(rows)}
        table = pa.Table.from_pylist([marker], schema=S.EMBEDDED)
        keys = ["tenant", "video_key", "ingest_id", "embedder"]
        self.table("embedded").merge_insert(keys).when_matched_update_all().when_not_matched_insert_all().execute(table)

    def embeddings(self, tenant: str, embedder: str, keys: list[tuple[str, str]] | None = None) -> pa.Table:
        """Vectors of ``embedder`` for (key, ingest_id) pairs (default: every committed video of the tenant)."""
        pairs = [(r["video_key"], r["ingest_id"]) for r in self.embedded(tenant, embedder)] if keys is None else keys
        if not pairs:
            return S.EMBEDDINGS.empty_table()
        where = _eq(tenant=tenant, embedder=embedder) & col("ingest_id").isin([i for _, i in pairs])
        table = self.table("embeddings").search().where(where).limit(None).to_arrow()
        return table.sort_by([("video_key", "ascending"), ("ms", "ascending")])

    # ------------------------------------------------------------------ writes

    def begin(self, tenant: str, key: str, source_uri: str, *, replace: bool = False) -> "Ingest | None":
        """Start writing video ``key``; None when it is already visible (ready or live) and ``replace`` is False."""
        check_tenant(tenant)
        check_key(key)
        videos = self.table("videos")
        ingest_id = uuid.uuid4().hex
        rows = self._video_rows(_eq(tenant=tenant, video_key=key), 1)
        if rows and rows[0]["status"] in S.VISIBLE:  # ready, or a live stream's published GOPs: never taken silently
            if not replace:
                return None
            return Ingest(self, tenant, key, ingest_id, expected=rows[0]["ingest_id"])
        if rows:  # a crashed or concurrent ingest: take the claim over (its rows die at our commit)
            videos.update(_eq(tenant=tenant, video_key=key, status=S.STATUS_INGESTING), {"ingest_id": ingest_id})
        else:
            claim = _empty_row(S.VIDEOS) | {
                "tenant": tenant,
                "video_key": key,
                "ingest_id": ingest_id,
                "status": S.STATUS_INGESTING,
                "source_uri": source_uri,
                "created_at": datetime.now(timezone.utc),
            }
            table = pa.Table.from_pylist([claim], schema=S.VIDEOS)
            videos.merge_insert(["tenant", "video_key"]).when_not_matched_insert_all().execute(table)
            rows = self._video_rows(_eq(tenant=tenant, video_key=key), 1)
            if rows and rows[0]["ingest_id"] != ingest_id and rows[0]["status"] == S.STATUS_INGESTING:
                videos.update(_eq(tenant=tenant, video_key=key, status=S.STATUS_INGESTING), {"ingest_id": ingest_id})
        return Ingest(self, tenant, key, ingest_id, expected=ingest_id)

    def _drop_rows(self, tenant: str, key: str, keep: str | None) -> None:
        """Delete segment and frame rows of a video, except those of ingest ``keep``."""
        where = _eq(tenant=tenant, video_key=key)
        if keep is not None:
            where = where & (col("ingest_id") != lit(keep))
        for name in S.PER_INGEST:
            self.table(name).delete(where)

    def optimize(self) -> None:
        """Compact small fragments left by many ingests and prune old versions (after big jobs)."""
        for table in self._tables.values():
            table.optimize()

    def count_rows(self, name: str, tenant: str | None = None, key: str | None = None) -> int:
        """Physical rows of a table (all ingests, visible or not): for audits and tests."""
        values = {k: v for k, v in (("tenant", tenant), ("video_key", key)) if v is not None}
        return self.table(name).count_rows(_eq(**values).to_sql() if values else None)


def _empty_row(schema: pa.Schema) -> dict[str, Any]:
    return {f.name: None for f in schema}


class Ingest:
    """Rows of one video being written; invisible until ``commit``."""

    def __init__(self, store: Store, tenant: str, key: str, ingest_id: str, expected: str) -> None:
        self.store, self.tenant, self.key, self.ingest_id = store, tenant, key, ingest_id
        self._expected = expected  # the video row's ingest_id our commit replaces
        self.frames = 0
        self.segments = 0

    def _own(self, rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
        owner = {"tenant": self.tenant, "video_key": self.key, "ingest_id": self.ingest_id}
        return pa.Table.from_pylist([r | owner for r in rows], schema=schema)

    def add_frames(self, rows: list[dict[str, Any]]) -> None:
        """Append frame rows (``memory.records.frame_row``)."""
        if rows:
            self.store.table("frames").add(self._own(rows, S.FRAMES))
            self.frames += len(rows)

    def add_crops(self, rows: list[dict[str, Any]]) -> None:
        """Append crop rows (``memory.records.crop_row``)."""
        if rows:
            self.store.table("crops").add(self._own(rows, S.CROPS))

    def add_segments(self, rows: list[dict[str, Any]]) -> None:
        """Append segment rows (``memory.records.segment_row``)."""
        if rows:
            self.store.table("segments").add(self._own(rows, S.SEGMENTS))
            self.segments += len(rows)

    def commit(self, video: dict[str, Any]) -> Video:
        """Make the video visible (one atomic version of ``videos``), then drop other ingests' rows."""
        out = self._flip(video, S.STATUS_READY)
        self.store._drop_rows(self.tenant, self.key, keep=self.ingest_id)
        return out

    def publish(self, video: dict[str, Any]) -> Video:
        """Make what was written so far visible as a ``live`` video (a stream's closed GOPs); repeatable."""
        out = self._flip(video, S.STATUS_LIVE)
        self._expected = self.ingest_id  # the row is ours now (also after a replacement)
        return out

    def _flip(self, video: dict[str, Any], status: str) -> Video:
        if video.get("frames") != self.frames or video.get("segments") != self.segments:
            raise InvalidArgument(
                f"video {self.key}: the row says {video.get('frames')} frames / {video.get('segments')} segments "
                f"but {self.frames} / {self.segments} were written"
            )
        row = _empty_row(S.VIDEOS) | video | {
            "tenant": self.tenant,
            "video_key": self.key,
            "ingest_id": self.ingest_id,
            "status": status,
        }
        row["created_at"] = row["created_at"] or datetime.now(timezone.utc)
        table = pa.Table.from_pylist([row], schema=S.VIDEOS)
        result = (
            self.store.table("videos")
            .merge_insert(["tenant", "video_key"])
            .when_matched_update_all(where=f"target.ingest_id = '{self._expected}'")
            .execute(table)
        )
        if result.num_updated_rows != 1:
            self.abort()
            raise FailedPrecondition(f"video {self.key} was claimed by another ingest meanwhile; nothing of this run was kept")
        return Video.from_row(row)

    def abort(self) -> None:
        """Delete this ingest's rows and its claim (none of it was ever visible)."""
        where = _eq(tenant=self.tenant, video_key=self.key, ingest_id=self.ingest_id)
        for name in S.PER_INGEST:
            self.store.table(name).delete(where)
        self.store.table("videos").delete(where & (col("status") == lit(S.STATUS_INGESTING)))
