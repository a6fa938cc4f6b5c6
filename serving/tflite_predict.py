"""`recdistill tflite-predict`: recommendations from a pushed TFLite model, as a phone computes them.

mobile/<version>/ holds model.tflite, user_vocab.txt and item_vocab.txt (line i: the id of index
i; line 0 is empty: unknown) and metadata.json (K, H). Ids map to indices through the vocabularies;
an unknown user or item is index 0 (the model serves it; unknown history items are padding).
"""

import os
from typing import List, Sequence, Tuple

from models.foundation import signatures
from models.foundation.tflite_runner import TFLiteRanker
from models.vocabulary_file import read_vocabulary
from models.foundation import storage


def recommend(model_dir: str, user_id: str, history: Sequence[str], k: int = 10) -> List[Tuple[str, float]]:
    """[(item id, score)] best first, at most k. The model returns its top K over the whole
    catalog (metadata.json says K); the items of the history are left out, as an app would."""
    for name in (signatures.TFLITE_FILE, signatures.USER_VOCAB, signatures.ITEM_VOCAB, signatures.METADATA):
        if not storage.isfile(os.path.join(model_dir, name)):
            raise FileNotFoundError(f"{model_dir}: no {name} (expected a mobile/<version> directory)")
    users = {u: i for i, u in enumerate(read_vocabulary(os.path.join(model_dir, signatures.USER_VOCAB))) if i}
    item_ids = read_vocabulary(os.path.join(model_dir, signatures.ITEM_VOCAB))
    items = {item: i for i, item in enumerate(item_ids) if i}
    # The interpreter reads local files only: a gs:// model is downloaded for the call.
    tflite = os.path.join(model_dir, signatures.TFLITE_FILE)
    with storage.local_copy(tflite) as local:
        ranker = load_ranker(local, tflite)
        indices, scores = ranker.rank(users.get(user_id, 0), [items.get(i, 0) for i in history])
    seen = set(history)
    return [(item_ids[i], float(s)) for i, s in zip(indices, scores) if item_ids[i] not in seen][:k]


def load_ranker(local_path: str, shown_path: str) -> TFLiteRanker:
    """TFLiteRanker(local_path); raises ValueError naming shown_path (the model's own path or URI)
    when LiteRT cannot load it: its own messages ("not a valid Flatbuffer") name no file."""
    try:
        return TFLiteRanker(local_path)
    except (ValueError, RuntimeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{shown_path}: not a recdistill TFLite model LiteRT can load ({reason})") from None


def metadata(model_dir: str) -> dict:
    return storage.read_json(os.path.join(model_dir, signatures.METADATA))
