"""Threads per call of torch and the AVIF decoder: one by default, VIDEOMEMORY_TORCH_THREADS to change it, a clear error otherwise."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from videomemory.codec.config import set_cpu_threads
from videomemory.errors import InvalidArgument


def test_default_is_one_thread_and_the_variable_changes_it(monkeypatch):
    from PIL import AvifImagePlugin

    before = torch.get_num_threads(), AvifImagePlugin.DEFAULT_MAX_THREADS
    try:
        monkeypatch.delenv("VIDEOMEMORY_TORCH_THREADS", raising=False)
        assert set_cpu_threads() == 1 and torch.get_num_threads() == 1 and AvifImagePlugin.DEFAULT_MAX_THREADS == 1
        monkeypatch.setenv("VIDEOMEMORY_TORCH_THREADS", "2")
        assert set_cpu_threads() == 2 and torch.get_num_threads() == 2 and AvifImagePlugin.DEFAULT_MAX_THREADS == 2
        for bad in ("two", "0"):
            monkeypatch.setenv("VIDEOMEMORY_TORCH_THREADS", bad)
            with pytest.raises(InvalidArgument, match="thread"):
                set_cpu_threads()
    finally:
        torch.set_num_threads(before[0])
        AvifImagePlugin.DEFAULT_MAX_THREADS = before[1]


def test_the_command_line_sets_it_and_reports_a_bad_value():
    env = {"VIDEOMEMORY_TORCH_THREADS": "many", "PATH": ""}
    bad = subprocess.run([sys.executable, "-m", "videomemory", "version"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "VIDEOMEMORY_TORCH_THREADS='many'" in bad.stderr and "Traceback" not in bad.stderr
