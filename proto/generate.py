"""Regenerate the Python stubs of every .proto under proto/ (the one way stubs are made).

Run from the repository root:  python proto/generate.py [--out DIR]
Writes ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` beside each .proto (or under DIR, which
the stubs test uses to regenerate and diff against the checked-in files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent


def generate(out: Path = ROOT) -> list[Path]:
    """Run protoc on every .proto under proto/; return the files written."""
    sources = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
    out.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {sources}")
    return sorted(p for p in out.rglob("*_pb2*.py*"))


def main() -> None:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT)
    args = ap.parse_args()
    for path in generate(args.out):
        print(path)


if __name__ == "__main__":
    sys.exit(main())
