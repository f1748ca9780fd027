"""Token usage of a tenant by content class, and a cost forecast from it (DESIGN §9).

Cost per minute depends on content far more than on length: a static camera costs a few percent of
a montage. So usage is kept per content class of each *segment* (a video mixes classes), and a
forecast for new footage is ``sum_c minutes_c x rate_c`` with the tenant's own per-class rates:
for a given mix of minutes per class (say 50 h of security camera, 2 h of sports), or, without one,
for ``forecast_minutes`` in the tenant's historical mix (its overall rate). The band is one standard
deviation of the per-video rate (how much the tenant's videos differ), never below zero; a class
the tenant has no history of is priced at its overall rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from videomemory.errors import InvalidArgument
from videomemory.memory.store import Store

CLASSES = ("static", "low-motion", "high-motion", "high-cut")


@dataclass(frozen=True)
class ClassUsage:
    """Usage of one content class."""

    content_class: str
    segments: int
    minutes: float
    tokens: int

    @property
    def tokens_per_minute(self) -> float:
        """Adaptive-plan tokens per minute of this class."""
        return self.tokens / self.minutes if self.minutes > 0 else 0.0


@dataclass(frozen=True)
class Usage:
    """A tenant's usage and forecast."""

    tenant: str
    videos: int
    minutes: float
    tokens: int
    stored_bytes: int
    by_class: list[ClassUsage] = field(default_factory=list)
    video_tpm_std: float = 0.0  # spread of tokens per minute across the tenant's videos
    forecast_minutes: float = 0.0
    forecast_tokens: float = 0.0
    forecast_low: float = 0.0
    forecast_high: float = 0.0

    @property
    def tokens_per_minute(self) -> float:
        """Overall tokens per minute."""
        return self.tokens / self.minutes if self.minutes > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly record."""
        out = asdict(self)
        out["tokens_per_minute"] = round(self.tokens_per_minute, 1)
        for c, rec in zip(self.by_class, out["by_class"]):  # type: ignore[arg-type]
            rec["tokens_per_minute"] = round(c.tokens_per_minute, 1)
        return out


def usage(store: Store, tenant: str, forecast_minutes: float = 60.0, mix: dict[str, float] | None = None) -> Usage:
    """Tokens per minute of ``tenant``'s videos by content class, and the cost of more footage (``mix``: minutes per class)."""
    for value in [forecast_minutes, *(mix or {}).values()]:
        if not (0 <= value <= 1e7 and math.isfinite(value)):
            raise InvalidArgument(f"forecast minutes must be within 0..10,000,000, got {value}")
    bad = [c for c in (mix or {}) if c not in CLASSES]
    if bad:
        raise InvalidArgument(f"unknown content class(es) {bad}: use {', '.join(CLASSES)}")
    videos = store.all_videos(tenant)
    per_class: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])  # segments, minutes, tokens
    rates = []
    for v in videos:
        for s in store.segments(v).select(["start_ms", "end_ms", "tokens", "content_class"]).to_pylist():
            acc = per_class[s["content_class"]]
            acc[0] += 1
            acc[1] += (s["end_ms"] - s["start_ms"]) / 60000
            acc[2] += s["tokens"]
        if v.duration_ms > 0:
            rates.append(v.tokens / (v.duration_ms / 60000))
    by_class = [ClassUsage(c, int(a[0]), float(a[1]), int(a[2])) for c, a in sorted(per_class.items(), key=lambda kv: CLASSES.index(kv[0]) if kv[0] in CLASSES else 9)]
    minutes = sum(c.minutes for c in by_class)
    tokens = sum(c.tokens for c in by_class)
    rate = tokens / minutes if minutes > 0 else 0.0
    std = float(_std(rates))
    rates_by_class = {c.content_class: c.tokens_per_minute for c in by_class}
    if mix:
        forecast_minutes = sum(mix.values())
        expected = sum(m * rates_by_class.get(c, rate) for c, m in mix.items())
    else:
        expected = forecast_minutes * rate
    return Usage(
        tenant=tenant,
        videos=len(videos),
        minutes=minutes,
        tokens=tokens,
        stored_bytes=sum(v.stored_bytes for v in videos),
        by_class=by_class,
        video_tpm_std=std,
        forecast_minutes=forecast_minutes,
        forecast_tokens=expected,
        forecast_low=max(0.0, expected - forecast_minutes * std),
        forecast_high=expected + forecast_minutes * std,
    )


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))
