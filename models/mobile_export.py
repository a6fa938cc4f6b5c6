"""The int8 (and float32) TFLite model of a deployed-form student, for phones.

Signature `serving_default` (models/foundation/signatures.py):
    user_index int32 [1] (0: unknown user), history int32 [1, H] (item indices, 0 pads)
    -> item_indices int32 [1, K] (never 0), scores float32 [1, K], best first.
Indices outside the vocabularies are treated as unknown (0) instead of failing the gather.
The user features are constant tables inside the model, looked up by user index, each in the
smallest integer type that holds its bins (int8 for up to 127: a byte per user and value instead
of four; 120 KB of a 770 KB model at 10,000 users with three features).

Conversion uses builtin ops only (no Select TF ops, no Flex delegate). `int8=True` converts with
Optimize.DEFAULT: the QAT-annotated Dense becomes an int8 fully connected layer with the ranges
learned in QAT, and the embedding tables are quantized to int8 by the converter. Exact zeros
stay exact zeros (symmetric quantization), which is how pruning survives conversion;
`zero_share` measures it in the file.
"""

import tempfile
from typing import Dict, Mapping

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models import deployable  # noqa: E402
from models.foundation import signatures, storage  # noqa: E402


class _MobileRanker(tf.Module):
    def __init__(self, scorer: tf.keras.Model, bins: Mapping[str, np.ndarray], history: int, k: int,
                 num_users: int):
        super().__init__()
        self.scorer = scorer
        self.bins = {name: tf.constant(compact(table)) for name, table in bins.items()}
        num_items = scorer.output_shape[-1] + 1
        self.k = min(k, num_items - 1)

        def serve(user_index, history_items):
            user = tf.where((user_index >= 0) & (user_index < num_users), user_index, 0)
            items = tf.where((history_items >= 0) & (history_items < num_items), history_items, 0)
            scores, top = tf.math.top_k(self.scorer(deployable.inputs_for(self.bins, user, items)), self.k)
            return {signatures.ITEM_INDICES: top + 1, signatures.SCORES: scores}

        self.serve = tf.function(serve, input_signature=[
            tf.TensorSpec([1], tf.int32, name=signatures.USER_INDEX),
            tf.TensorSpec([1, history], tf.int32, name=signatures.HISTORY_INDICES)])


def compact(table: np.ndarray) -> np.ndarray:
    """A feature's bins [num_users, ...] in int8, int16 or int32, the smallest that holds them (bins
    are never negative: 0 pads). The deployed model casts what it gathers to int64 (Indices)."""
    table = np.asarray(table)
    top = int(table.max()) if table.size else 0
    if table.size and int(table.min()) < 0:
        raise ValueError(f"feature bins must not be negative, got {int(table.min())}")
    kind = np.int8 if top <= np.iinfo(np.int8).max else np.int16 if top <= np.iinfo(np.int16).max else np.int32
    return table.astype(kind)


def convert(scorer: tf.keras.Model, bins: Mapping[str, np.ndarray], history: int, int8: bool, num_users: int,
            k: int = signatures.TOP_K) -> bytes:
    """The TFLite flatbuffer of a deployed-form model (plain, or QAT for int8); user indices outside
    [0, num_users) are served as unknown."""
    module = _MobileRanker(scorer, bins, history, k, num_users)
    # Local scratch only: the converter reads a SavedModel from disk and returns bytes (callers
    # write them with storage.write_bytes), so nothing under an artifact URI is written here.
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures={signatures.TFLITE_SIGNATURE: module.serve.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[signatures.TFLITE_SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def zero_share(model_content: bytes) -> Dict[str, float]:
    """Share of exact zeros among the int8 constant weights of a TFLite model (and their count)."""
    from models.foundation.tflite_runner import interpreter_class

    interpreter = interpreter_class()(model_content=model_content)
    zeros = total = 0
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] != np.int8:
            continue
        try:
            values = interpreter.get_tensor(detail["index"])
        except ValueError:  # activations have no data before a run
            continue
        if values.size < 256:  # scalars and tiny constants are not weight tables
            continue
        zeros, total = zeros + int(np.sum(values == 0)), total + values.size
    return {"int8_weights": total, "zero_share": round(zeros / total, 4) if total else 0.0}


def write_vocabularies(directory: str, user_ids, item_ids) -> None:
    """user_vocab.txt and item_vocab.txt: line i is the id of index i (line 0: "", unknown).

    UTF-8, each id followed by "\\n" and only "\\n" ends a line (models/vocabulary_file.py reads
    them): an id may hold any other character, U+2028 or U+0085 included. An id with a
    "\\n" would shift every later index; ingestion and add-items reject such ids (bad rows), so one
    here is a bug, and raises ValueError rather than write a vocabulary that lies."""
    for name, ids in ((signatures.USER_VOCAB, user_ids), (signatures.ITEM_VOCAB, item_ids)):
        ids = [str(i) for i in ids]
        broken = next((k for k, i in enumerate(ids) if "\n" in i), None)
        if broken is not None:
            raise ValueError(f"{name}: id {ids[broken]!r} (index {broken}) holds a newline; one id per line cannot hold it")
        # directory may be gs:// (the compression Model artifact); the bytes are those of before.
        storage.write_bytes(storage.join(directory, name), "".join(f"{i}\n" for i in ids).encode("utf-8"))
