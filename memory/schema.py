"""The store's table schemas, declared once, with a version number.

Three tables (DESIGN §6), every row carrying its tenant and the ``ingest_id`` of the ingest that
wrote it:

- ``videos``: one row per (tenant, key); ``status`` is ``ingesting`` or ``ready`` and
  ``ingest_id`` names the one ingest whose segment and frame rows are the video. Flipping that row
  to ``ready`` is the commit point: rows of any other ingest (a crashed or superseded attempt) are
  invisible to readers and are deleted by the next commit.
- ``segments``: one row per GOP (time range, anchor, pcost statistics, content class, routing
  flag, token counts, stored bytes).
- ``frames``: one row per sampled frame (frame ID parts, source index, role, GOP, motion summary,
  token plan, residual energy per cell) and the code that rebuilds it: the anchor image for an
  I-frame, the serialised ``PCode`` (motion field, intra blocks, quantised residual) for a P-frame.
- ``embeddings``: search vectors (``retrieval.embed``), one per segment anchor plus one per P-frame
  whose change is large, tagged with the embedder's name; ``embedded`` marks a video's vectors
  complete for one embedder (written after them: the commit point search indexes follow).
- ``crops`` (version 2): one row per frame whose token plan sends changed cells (P-frames, and
  anchors planned as P-frames), holding the pixels of those cells as the code rebuilds them
  (``memory.records.crop_row``: lossless, zstd of row differences), so a clip's package is served
  without rebuilding every frame. Derived from the code: a video without crop rows (ingested by
  version 1) is served by rebuilding its frames, with the same bytes.

``SCHEMA_VERSION`` is written into each table's schema metadata. A reader opens tables of its own
version or older (columns it knows are read by name); a table written by a newer version is refused
with a message that says to upgrade, rather than misread.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2  # 2: the crops table (version 1 stores open as they are; their videos have no crops)
VERSION_KEY = b"videomemory.schema_version"

STATUS_INGESTING = "ingesting"
STATUS_READY = "ready"
STATUS_LIVE = "live"  # a stream still arriving: its closed GOPs are visible, the row grows
VISIBLE = (STATUS_READY, STATUS_LIVE)


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema(fields, metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()})


def _owner() -> list[pa.Field]:
    return [
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("video_key", pa.string(), nullable=False),
        pa.field("ingest_id", pa.string(), nullable=False),
    ]


VIDEOS = _schema(
    *_owner(),
    pa.field("status", pa.string(), nullable=False),
    pa.field("source_uri", pa.string()),
    pa.field("source_bytes", pa.int64()),
    pa.field("source_codec", pa.string()),
    pa.field("width", pa.int32()),  # source size, px
    pa.field("height", pa.int32()),
    pa.field("source_fps", pa.float64()),  # declared average rate; null when the file does not say
    pa.field("duration_ms", pa.int64()),
    pa.field("fps", pa.float64()),  # sampling rate of the code
    pa.field("grid_width", pa.int32()),
    pa.field("grid_height", pa.int32()),
    pa.field("frames", pa.int32()),
    pa.field("segments", pa.int32()),
    pa.field("tokens", pa.int64()),  # adaptive plan, whole video
    pa.field("tokens_per_min", pa.float64()),
    pa.field("stored_bytes", pa.int64()),  # anchors + P-codes
    pa.field("content_class", pa.string()),
    pa.field("hybrid_flat", pa.bool_()),
    pa.field("codec_json", pa.string()),  # the CodecConfig used, as JSON
    pa.field("stats_json", pa.string()),  # ContentStats of the whole video, as JSON
    pa.field("created_at", pa.timestamp("ms", tz="UTC")),
    pa.field("ingest_seconds", pa.float64()),
)

SEGMENTS = _schema(
    *_owner(),
    pa.field("gop", pa.int32(), nullable=False),
    pa.field("start_ms", pa.int64(), nullable=False),  # the anchor's time
    pa.field("end_ms", pa.int64(), nullable=False),  # the next anchor's time (or the video's end), exclusive
    pa.field("frames", pa.int32(), nullable=False),
    pa.field("anchor_reason", pa.string()),  # first | pcost | scene | k_max | budget
    pa.field("pcost_mean", pa.float64()),  # per 16x16 block, P-frames of the GOP; null for a lone anchor
    pa.field("pcost_max", pa.float64()),
    pa.field("motion_px", pa.float64()),
    pa.field("residual_rms", pa.float64()),
    pa.field("tokens", pa.int64()),
    pa.field("anchor_tokens", pa.int64()),
    pa.field("p_tokens", pa.int64()),
    pa.field("stored_bytes", pa.int64()),
    pa.field("content_class", pa.string()),
    pa.field("hybrid_flat", pa.bool_()),  # route this segment to flat encoding
)

RECT = pa.struct([("row", pa.int16()), ("col", pa.int16()), ("rows", pa.int16()), ("cols", pa.int16())])

FRAMES = _schema(
    *_owner(),
    pa.field("ms", pa.int64(), nullable=False),  # source time since the first frame: the frame ID
    pa.field("time_s", pa.float64(), nullable=False),  # exact source time
    pa.field("sampled_index", pa.int32(), nullable=False),
    pa.field("source_index", pa.int32(), nullable=False),
    pa.field("role", pa.string(), nullable=False),  # I | P
    pa.field("gop", pa.int32(), nullable=False),
    pa.field("pos", pa.int32(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("pcost_per_block", pa.float64()),
    pa.field("motion_mean_px", pa.float32()),
    pa.field("moving_blocks", pa.float32()),
    pa.field("energy", pa.list_(pa.float32())),  # residual energy per token cell, row-major; null for frame 0
    pa.field("plan_role", pa.string()),  # I | P | - (not sent: collapsed or dropped by the budget)
    pa.field("image_tokens", pa.int32()),
    pa.field("overhead_tokens", pa.int32()),
    pa.field("rects", pa.list_(RECT)),  # the changed cells sent, in token cells
    pa.field("psnr", pa.float32()),  # rebuilt frame vs sampled frame, dB
    pa.field("code_format", pa.string(), nullable=False),  # avif | jpeg | webp | png (anchors), pcode
    pa.field("code", pa.large_binary(), nullable=False),
)

EMBEDDINGS = _schema(
    *_owner(),
    pa.field("embedder", pa.string(), nullable=False),  # Embedder.name: vectors of different embedders never mix
    pa.field("ms", pa.int64(), nullable=False),  # the embedded frame's ID
    pa.field("gop", pa.int32(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # anchor | event (a P-frame whose change since the last vector is large)
    pa.field("vector", pa.list_(pa.float32()), nullable=False),  # L2-normalised
)

CROPS = _schema(
    *_owner(),
    pa.field("ms", pa.int64(), nullable=False),  # the frame's ID
    pa.field("gop", pa.int32(), nullable=False),
    pa.field("pos", pa.int32(), nullable=False),
    pa.field("format", pa.string(), nullable=False),  # how ``crops`` is packed (memory.records.CROPS_FORMAT)
    pa.field("crops", pa.large_binary(), nullable=False),  # the cells of the frame row's ``rects``, in their order
)

# One row per (video ingest, embedder) whose embedding rows are complete: the commit marker that
# search indexes follow, and their staleness fingerprint.
EMBEDDED = _schema(
    *_owner(),
    pa.field("embedder", pa.string(), nullable=False),
    pa.field("dim", pa.int32(), nullable=False),
    pa.field("vectors", pa.int32(), nullable=False),
)

TABLES: dict[str, pa.Schema] = {
    "videos": VIDEOS,
    "segments": SEGMENTS,
    "frames": FRAMES,
    "embeddings": EMBEDDINGS,
    "embedded": EMBEDDED,
    "crops": CROPS,
}
# Tables whose rows belong to one ingest of a video (dropped with it).
PER_INGEST = ("segments", "frames", "embeddings", "embedded", "crops")


def version_of(schema: pa.Schema) -> int:
    """The schema version a table was written with (0 when it carries none)."""
    meta = schema.metadata or {}
    try:
        return int(meta.get(VERSION_KEY, b"0"))
    except ValueError:
        return 0
