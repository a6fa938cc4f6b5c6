"""The BERT teacher's TFX components: training, Beam scoring (soft labels for the student)."""
