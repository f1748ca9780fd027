"""Shared fixtures: short generated videos with known content, and a fresh store per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from videomemory.bench import synth
from videomemory.codec.config import set_cpu_threads
from videomemory.memory.store import Store

SIZE = (320, 240)

# The product's default (one torch thread; ``set_cpu_threads`` says why), as the CLI sets it, so
# in-process tests run the way ``videomemory`` subprocesses do.
set_cpu_threads()


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """name -> path of 6 s videos: cuts, objects (moving sprites), pan (global motion), static."""
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, seed in (("cuts", 0), ("objects", 1), ("pan", 2), ("static", 3)):
        path = root / f"{name}.mp4"
        synth.write_preset(name, path, size=SIZE, duration_s=6.0, seed=seed)
        out[name] = path
    return out


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store")
