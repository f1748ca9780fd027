"""What every benchmark does the same way: time a call, and write its JSON."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``fn``; return (result, wall seconds, CPU seconds of the whole process, every thread)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def write_json(result: dict, path: Path) -> None:
    """Write a benchmark's result as indented JSON, creating the folder, and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


def print_table(title: str, cols: list[tuple[str, str, str]], rows: list[dict], width: int = 200) -> None:
    """Print ``rows`` as a table: ``cols`` are (heading, key, format); a value of None prints as -."""
    t = Table(title=title)
    for head, _, _ in cols:
        t.add_column(head, justify="right")
    for r in rows:
        t.add_row(*("-" if r[k] is None else fmt.format(r[k]) for _, k, fmt in cols))
    Console(width=width).print(t)  # wide enough for every column, also when piped


def quick_main(doc: str, run: Callable[[bool], dict], show: Callable[[dict], None], out: Path, quick_help: str) -> None:
    """The command line of a benchmark whose only choices are ``--quick`` and ``--out``: run, print, write."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--out", type=Path, default=out)
    args = ap.parse_args()
    result = run(args.quick)
    show(result)
    write_json(result, args.out)
