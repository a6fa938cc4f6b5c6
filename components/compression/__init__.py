"""StudentCompressor: TF-MOT compression and export of the distilled student (a TFX Trainer)."""
