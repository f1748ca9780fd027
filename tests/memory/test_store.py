"""The store's schemas: versioned, refused when newer, and every table carries its tenant."""

from __future__ import annotations

import lancedb
import pyarrow as pa
import pytest

from videomemory.errors import FailedPrecondition, InvalidArgument
from videomemory.memory import schema as S
from videomemory.memory.ids import MalformedId
from videomemory.memory.store import Store


def test_tables_carry_tenant_and_schema_version(store):
    for name in S.TABLES:
        schema = store.table(name).schema
        assert S.version_of(schema) == S.SCHEMA_VERSION, name
        assert {"tenant", "video_key", "ingest_id"} <= set(schema.names)


def test_a_store_written_by_a_newer_schema_is_refused_with_advice(tmp_path):
    db = lancedb.connect(tmp_path / "future")
    schema = S.VIDEOS.with_metadata({S.VERSION_KEY: b"99"})
    db.create_table("videos", schema=schema)
    with pytest.raises(FailedPrecondition, match="version 99.*upgrade"):
        Store(tmp_path / "future")


def test_reopening_a_store_keeps_its_tables(store):
    again = Store(store.uri)
    assert S.version_of(again.table("frames").schema) == S.SCHEMA_VERSION


@pytest.mark.parametrize("tenant", ["", "UPPER", "a/b", "x' OR '1'='1", "-lead"])
def test_malformed_tenants_are_refused_before_any_query(store, tenant):
    with pytest.raises(MalformedId):
        store.list_videos(tenant)


def test_filter_values_are_data_not_sql(store):
    with pytest.raises(InvalidArgument):
        store.find_videos("default", "' OR 1=1 --")
    with pytest.raises(MalformedId):
        store.get_video("default", "x' OR '1'='1")
    assert pa.types.is_large_binary(S.FRAMES.field("code").type)


def test_a_version_1_store_opens_gets_the_crops_table_and_takes_new_videos(tmp_path, videos):
    from videomemory.memory.ingest import ingest_video

    db = lancedb.connect(tmp_path / "v1")
    for name, schema in S.TABLES.items():
        if name != "crops":  # version 1 had no crops table
            db.create_table(name, schema=schema.with_metadata({S.VERSION_KEY: b"1"}))
    store = Store(tmp_path / "v1")
    assert S.version_of(store.table("frames").schema) == 1  # read as it is, not rewritten
    assert S.version_of(store.table("crops").schema) == S.SCHEMA_VERSION == 2
    assert store.list_videos("default") == []
    r = ingest_video(store, videos["objects"])
    assert store.count_rows("crops", key=r.key) > 0 and store.get_video("default", r.key).frames == r.frames
