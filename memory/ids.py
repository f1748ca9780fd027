"""Stable, content-derived names: video keys, frame IDs and the short cite tags models write.

A **video key** is a hash of the video stream's compressed packets and their timestamps (not of
the path, the container or any codec setting), so the same footage copied elsewhere, re-muxed or
re-ingested at another fps gets the same key, and two different videos differ in practice (64 bits:
a one-in-a-billion chance of a clash among 190,000 videos). Hashing packets needs a demux pass,
not a decode, so it is about as fast as reading the file.

A **frame ID** is a key plus a source time in whole milliseconds since the first frame. It names a
moment of the source, not a row: it stays valid for I-frames, P-frames, frames the budget dropped
and moments that were never sampled (``memory.resolve`` maps those to the nearest sampled frame
and says so). Two spellings, both round-trip:

- resource name (AIP-122): ``videos/{key}/frames/{ms}``, optionally under ``tenants/{tenant}/``;
- cite tag for prompts: ``[v3f9a2c1d@12.500]`` -- ``v``, the first ``TAG_HEX`` hex digits of the
  key, ``@``, seconds with exactly three decimals. Short enough to cost a few tokens per citation;
  a prefix that matches several videos of a tenant is refused as ambiguous, never guessed.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass

from videomemory.errors import InvalidArgument

KEY_HEX = 16  # hex digits of a full video key (64 bits)
TAG_HEX = 8  # hex digits of the key in a cite tag
MAX_MS = 10**12  # ~31 years: anything later is a typo, not a timestamp

_KEY = re.compile(r"[0-9a-f]{%d}" % KEY_HEX)
_TENANT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NAME = re.compile(r"(?:tenants/(?P<tenant>[^/]+)/)?videos/(?P<key>[^/]+)/frames/(?P<ms>[^/]+)")
_TAG = re.compile(r"\[v(?P<key>[0-9a-f]{%d,%d})@(?P<s>\d{1,9})(?:\.(?P<frac>\d{1,3}))?s?\]" % (6, KEY_HEX))
# Anything that looks like an attempt at a cite tag, so malformed ones are reported, not ignored.
CITE_LIKE = re.compile(r"\[v[^\[\]\s@]{0,32}@[^\[\]\s]{0,24}\]")


class MalformedId(InvalidArgument):
    """A frame ID, video key, tenant or cite tag that does not parse."""


def check_key(key: str) -> str:
    """``key`` if it is a full video key (16 lowercase hex digits), else ``MalformedId``."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise MalformedId(f"video key {key!r} is malformed: expected {KEY_HEX} lowercase hex digits, e.g. '3f9a2c1d0b7e4a55'")
    return key


def check_tenant(tenant: str) -> str:
    """``tenant`` if it is a valid tenant ID (1-63 of a-z, 0-9, '-'), else ``MalformedId``."""
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise MalformedId(
            f"tenant {tenant!r} is malformed: use 1-63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit (e.g. 'default', 'acme-prod')"
        )
    return tenant


def _check_ms(ms: int) -> int:
    if not 0 <= ms <= MAX_MS:
        raise MalformedId(f"frame time {ms} ms is out of range: expected 0..{MAX_MS} ms since the first frame")
    return ms


@dataclass(frozen=True, order=True)
class FrameId:
    """A source moment: video key + milliseconds since the video's first frame."""

    key: str
    ms: int

    def __post_init__(self) -> None:
        check_key(self.key)
        _check_ms(self.ms)

    @property
    def name(self) -> str:
        """Resource name, ``videos/{key}/frames/{ms}``."""
        return f"videos/{self.key}/frames/{self.ms}"

    def tenant_name(self, tenant: str) -> str:
        """Resource name under a tenant, ``tenants/{tenant}/videos/{key}/frames/{ms}``."""
        return f"tenants/{check_tenant(tenant)}/{self.name}"

    @property
    def tag(self) -> str:
        """Cite tag for prompts, e.g. ``[v3f9a2c1d@12.500]``."""
        return format_tag(self.key, self.ms)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class CiteTag:
    """A parsed cite tag: a key prefix (resolved against a tenant's videos) and a time."""

    key_prefix: str
    ms: int
    text: str  # the tag as written


def format_tag(key: str, ms: int) -> str:
    """Cite tag of a frame: ``[v{first 8 hex}@{seconds}.{ms:03}]``."""
    return f"[v{check_key(key)[:TAG_HEX]}@{_check_ms(ms) // 1000}.{ms % 1000:03d}]"


def parse_name(name: str) -> tuple[str | None, FrameId]:
    """Parse ``[tenants/{t}/]videos/{key}/frames/{ms}`` into (tenant or None, FrameId)."""
    m = _NAME.fullmatch(name.strip()) if isinstance(name, str) else None
    if m is None:
        raise MalformedId(
            f"frame name {name!r} is malformed: expected 'videos/{{key}}/frames/{{ms}}' "
            "(optionally under 'tenants/{tenant}/'), e.g. 'videos/3f9a2c1d0b7e4a55/frames/12500'"
        )
    tenant = m["tenant"]
    if tenant is not None:
        check_tenant(tenant)
    if not m["ms"].isdigit():
        raise MalformedId(f"frame name {name!r} is malformed: the frame part must be whole milliseconds, got {m['ms']!r}")
    return tenant, FrameId(check_key(m["key"]), _check_ms(int(m["ms"])))


def parse_tag(text: str) -> CiteTag:
    """Parse one cite tag such as ``[v3f9a2c1d@12.500]`` (also ``@12.5`` and ``@12.5s``)."""
    m = _TAG.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise MalformedId(
            f"cite tag {text!r} is malformed: expected '[v' + 6-{KEY_HEX} lowercase hex digits of the "
            "video key + '@' + seconds with up to 3 decimals + ']', e.g. '[v3f9a2c1d@12.500]'"
        )
    frac = (m["frac"] or "").ljust(3, "0")
    return CiteTag(m["key"], _check_ms(int(m["s"]) * 1000 + int(frac)), m.group(0))


def parse(text: str) -> CiteTag | tuple[str | None, FrameId]:
    """Parse a frame reference in either spelling (cite tag or resource name)."""
    return parse_tag(text) if text.strip().startswith("[") else parse_name(text)


def find_tags(text: str) -> list[str]:
    """Every substring of ``text`` that looks like a cite tag, well-formed or not, in order."""
    return [m.group(0) for m in CITE_LIKE.finditer(text)]


def video_key(source: str | os.PathLike[str]) -> str:
    """Content key of a video: a 64-bit BLAKE2b hash of its video stream's packets and their times.

    Independent of the path, the container (a re-mux keeps it) and every codec setting.
    """
    from videomemory.codec.decode import stream_packets  # decode owns every PyAV call

    h = hashlib.blake2b(digest_size=KEY_HEX // 2, person=b"videomemory.v1")
    for header, payload in stream_packets(source):
        h.update(header)
        h.update(struct.pack("<Q", len(payload)))
        h.update(payload)
    return h.hexdigest()
