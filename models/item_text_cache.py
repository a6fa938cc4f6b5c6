"""The items' text vectors between runs: a run with a served model encodes only the texts that are new.

Encoding every item's text with the pretrained BERT is a fixed cost of every teacher (MiniLM on two
cores: about 9 s for 1,300 items, more with the catalog). The teacher writes the vectors it used
beside its export (artifacts.ITEM_TEXT_FILE) with the encoder that made them
(artifacts.ITEM_TEXT_SOURCE_FILE: TextEncoder.source), and the student and compression Trainers carry
both into the blessed model, as they carry the teacher's weights. A run after it (warm, or from
scratch after drift: components/teacher/training.py item_text_vectors) takes an item's vector from
it when the item's id and text are unchanged and the encoder is the same
source; every other item (new, retitled, or all of them under another encoder) is encoded.
"""

import json
from typing import Optional, Tuple

import numpy as np

from models import artifacts, interaction_data
from models.foundation import storage


def save(out_dir: str, vectors: np.ndarray, source: str) -> None:
    storage.save_npy(storage.join(out_dir, artifacts.ITEM_TEXT_FILE), np.asarray(vectors, np.float32))
    storage.write_text(storage.join(out_dir, artifacts.ITEM_TEXT_SOURCE_FILE), json.dumps({"source": source}))


def encode(encoder, dataset, earlier_dir: Optional[str]) -> Tuple[np.ndarray, int]:
    """([num_items, dim] the items' text vectors in dataset's index, how many came from earlier_dir):
    an item's vector from earlier_dir (a blessed model's directory) when it carries vectors of the same
    encoder source for the same item id and text, encoded otherwise."""
    earlier = _earlier(earlier_dir, encoder.source)
    if earlier is None:
        return encoder.encode(dataset.item_texts), 0
    vectors, row_of = earlier
    rows = np.array([row_of.get((item, text), -1) for item, text in zip(dataset.item_ids, dataset.item_texts)])
    out = np.zeros([len(rows), vectors.shape[1]], np.float32)
    known = rows >= 0
    out[known] = vectors[rows[known]]
    missing = np.flatnonzero(~known)
    if len(missing):
        out[missing] = encoder.encode([dataset.item_texts[k] for k in missing])
    return out, int(known.sum())


def _earlier(directory: Optional[str], source: str):
    """(vectors, {(item id, text): row}) of an earlier run's directory, or None when it has none of
    this source (written before this cache, or by another encoder)."""
    if not directory or not source:
        return None
    source_path = storage.join(directory, artifacts.ITEM_TEXT_SOURCE_FILE)
    if not storage.exists(source_path) or storage.read_json(source_path).get("source") != source:
        return None
    vectors = storage.load_npy(storage.join(directory, artifacts.ITEM_TEXT_FILE))
    dataset = interaction_data.load_dataset(storage.join(directory, artifacts.DATASET_FILE))
    if len(vectors) != dataset.num_items:
        return None
    return vectors, {(item, text): row for row, (item, text) in enumerate(zip(dataset.item_ids, dataset.item_texts))}
