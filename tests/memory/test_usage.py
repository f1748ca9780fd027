"""Usage by content class and the cost forecast made from it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from videomemory.cli import app
from videomemory.errors import InvalidArgument
from videomemory.memory.ingest import ingest_archive
from videomemory.memory.usage import usage


def test_usage_splits_tokens_by_class_and_forecasts_from_them(videos, store):
    ingest_archive(store, [videos["static"], videos["cuts"]])
    u = usage(store, "default", 60.0)
    videos_ = store.list_videos("default")
    assert u.videos == 2 and u.tokens == sum(v.tokens for v in videos_)
    assert abs(u.minutes - sum(v.duration_ms for v in videos_) / 60000) < 1e-6
    rates = {c.content_class: c.tokens_per_minute for c in u.by_class}
    assert rates["static"] < min(r for c, r in rates.items() if c != "static")  # static footage is the cheapest
    assert u.forecast_tokens == pytest.approx(60.0 * u.tokens_per_minute)
    assert u.forecast_low <= u.forecast_tokens <= u.forecast_high
    cheap = usage(store, "default", mix={"static": 60.0})
    assert cheap.forecast_tokens == pytest.approx(60.0 * rates["static"]) and cheap.forecast_tokens < u.forecast_tokens
    assert usage(store, "nobody").videos == 0
    with pytest.raises(InvalidArgument, match="content class"):
        usage(store, "default", mix={"boring": 1.0})
    res = CliRunner().invoke(app, ["usage", "--store", store.uri, "--mix", "static=600"])
    assert res.exit_code == 0 and "Forecast for 600 min static" in res.stdout
