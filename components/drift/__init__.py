"""DriftCheck: how far the newest span's data moved from the span before, and what a run does about it."""
