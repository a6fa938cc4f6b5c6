"""Side-by-side retrieval evaluation of every model on the test split."""
