"""The student Trainer's module (a TFX Trainer run_fn on tf_keras): KD student and its no-KD twin."""
