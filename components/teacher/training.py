"""Teacher training, outside TFX's plumbing: examples in, SavedModel and dataset index out.

Layout of the output directory (the Model artifact):
    Format-Serving/   the teacher SavedModel (models/teacher.py, export_teacher)
    dataset.npz       the index spaces, texts and splits the teacher was trained on
    features.npz      users' and items' Transform features in that index space (for the student)
    training.json     timings, parameters, per-epoch losses
    logs/             TensorBoard logs of the training
"""

import dataclasses
import json
import os
import time
from typing import Any, Dict

import numpy as np

from models import feature_tables, interaction_data, teacher, text_encoder

SAVED_MODEL_DIR = "Format-Serving"  # TFX's name for a serving model inside a Model artifact
DATASET_FILE = "dataset.npz"
TRAINING_FILE = "training.json"
LOG_DIR = "logs"  # TensorBoard
SPLITS = ("train", "eval", "test")


def train_and_export(examples_uri: str, catalog_uri: str, transform_graph_uri: str, vocabularies, out_dir: str,
                     settings: Dict[str, Any]) -> Dict:
    """vocabularies: (user ids, item ids) in Transform's vocabulary order. Returns training.json.

    Also writes the users' and items' Transform features in the same index space for the student
    (features.npz, models/feature_tables.py).
    """
    started = time.monotonic()
    dataset = interaction_data.build_dataset(
        {s: os.path.join(examples_uri, f"Split-{s}") for s in SPLITS},
        os.path.join(catalog_uri, "Split-catalog"), *vocabularies,
        item_text_columns=settings.get("item_text_columns", ("title",)))
    feature_tables.save(feature_tables.build(transform_graph_uri, dataset), os.path.join(out_dir, feature_tables.FILE))
    return fit_and_export(dataset, out_dir, settings, read_seconds=time.monotonic() - started)


def fit_and_export(dataset, out_dir: str, settings: Dict[str, Any], read_seconds: float = 0.0) -> Dict:
    """Encodes the texts, trains, exports into out_dir; returns what training.json holds."""
    config = teacher.TeacherConfig(**settings.get("teacher", {}))
    encoder = _encoder(settings, dataset)
    started = time.monotonic()
    user_text = encoder.encode(dataset.user_texts)
    item_text = encoder.encode(dataset.item_texts)
    encode_seconds = time.monotonic() - started

    train, valid = dataset.splits["train"], dataset.splits["eval"]
    _, latest = interaction_data.histories(train, dataset.num_users, config.history)
    model = teacher.build_teacher(user_text, item_text, config)
    started = time.monotonic()
    history = teacher.train_teacher(model, train, valid, latest, config, log_dir=os.path.join(out_dir, LOG_DIR))
    train_seconds = time.monotonic() - started

    teacher.export_teacher(model, os.path.join(out_dir, SAVED_MODEL_DIR), config.history)
    interaction_data.save_dataset(dataset, os.path.join(out_dir, DATASET_FILE))
    summary = {
        "encoder": settings.get("encoder", "minilm"),
        "config": dataclasses.asdict(config),
        "params": encoder.params + teacher.head_params(model),
        "encoder_params": encoder.params,
        "head_params": teacher.head_params(model),
        "texts_encoded": len(dataset.user_texts) + len(dataset.item_texts),
        "seconds": {"read": round(read_seconds, 1), "encode": round(encode_seconds, 1), "train": round(train_seconds, 1)},
        "epochs": len(history["loss"]),
        "loss": [round(float(x), 4) for x in history["loss"]],
        "val_loss": [round(float(x), 4) for x in history["val_loss"]],
    }
    with open(os.path.join(out_dir, TRAINING_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def _encoder(settings: Dict[str, Any], dataset) -> text_encoder.TextEncoder:
    length = settings.get("text_length", 32)
    if settings.get("encoder", "minilm") == "tiny":
        # Tests: a random 2-layer, 32-wide BERT over the words of the data's own texts.
        words = sorted({w for t in dataset.user_texts + dataset.item_texts for w in t.lower().split()})
        return text_encoder.tiny_random(words, sequence_length=length)
    return text_encoder.load_pretrained(sequence_length=length)


def read_summary(teacher_dir: str) -> Dict[str, Any]:
    """training.json of an exported teacher (its config gives the history length it expects)."""
    with open(os.path.join(teacher_dir, TRAINING_FILE)) as f:
        return json.load(f)


def latest_histories(dataset, length: int) -> np.ndarray:
    """[num_users, length] each user's most recent train and eval items, for ranking at test.

    Eval is part of the benchmark's training share: the evaluation masks those items as seen and
    the popularity baseline counts them, so the teacher's history includes them too.
    """
    train, valid = dataset.splits["train"], dataset.splits["eval"]
    known = interaction_data.Split(*(np.concatenate([getattr(train, f), getattr(valid, f)])
                                     for f in ("user", "item", "timestamp")))
    return interaction_data.histories(known, dataset.num_users, length)[1]
