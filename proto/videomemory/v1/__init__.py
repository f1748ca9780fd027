"""Generated stubs of the videomemory.v1 gRPC API (made by proto/generate.py; do not edit)."""
