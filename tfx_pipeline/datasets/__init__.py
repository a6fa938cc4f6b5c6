"""Datasets in recdistill's input format: MovieLens-100K and synthetic data."""
