"""Models and guides: a spec to a SentenceTransformer, the strong-guide archive, the guide-embedding cache."""
