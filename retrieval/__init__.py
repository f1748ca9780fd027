"""retrieval: embeddings, FAISS index, self-contained clips and the gRPC service (DESIGN §7-8)."""
