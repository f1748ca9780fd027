"""memory: LanceDB store of record, stable frame IDs, resumable archive indexing (DESIGN §5-6)."""
