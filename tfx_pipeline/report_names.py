"""What the report calls each model: a plain name for readers, with report.json's key beside it
("int8 TFLite (phone) - tflite"), so that a reader of the page can find it in report.json."""

BASELINES = ("popularity", "ease", "trending")
_NAMES = {
    "popularity": "Popularity (baseline)",
    "ease": "EASE (baseline)",
    "trending": "Trending (baseline)",
    "random": "Random (baseline)",
    "text_knn": "Text kNN (baseline)",
    "student_no_kd": "Student, no distillation",
    "teacher": "BERT teacher",
    "student_kd": "Distilled student (float)",
    "student_compressed": "Compressed student (TF Serving SavedModel)",
    "tflite_float": "Float TFLite (uncompressed)",
    "tflite": "int8 TFLite (phone)",
}


def name(key: str) -> str:
    """The plain name; an unknown key is its own name."""
    return _NAMES.get(key, key)


def label(key: str) -> str:
    """"int8 TFLite (phone) - tflite": the plain name and the key."""
    return f"{name(key)} - {key}" if key in _NAMES else key
