"""Runs a recdistill TFLite model (mobile/<version>/model.tflite) with LiteRT, as a phone would.

The standalone LiteRT runtime (ai-edge-litert) needs no TensorFlow; tf.lite is the fallback
where it is missing. Signature and tensor names: models/foundation/signatures.py.
"""

from typing import Tuple

import numpy as np

from models.foundation import signatures


def interpreter_class():
    """LiteRT's Interpreter, or tf.lite's when ai-edge-litert is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover (ai-edge-litert is a dependency)
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter


class TFLiteRanker:
    """model.tflite -> top-K item indices and scores for one user and history.

    full_scores=True keeps every intermediate tensor so that `all_scores` can read the score of
    every catalog item (the input of the model's TOPK_V2 op): the evaluation ranks the whole
    catalog with the deployed file itself. It costs memory and time: leave it off on devices.
    """

    def __init__(self, model_path: str, num_threads: int = 1, full_scores: bool = False):
        self.interpreter = interpreter_class()(
            model_path=model_path, num_threads=num_threads, experimental_preserve_all_tensors=full_scores)
        self.runner = self.interpreter.get_signature_runner(signatures.TFLITE_SIGNATURE)
        details = self.runner.get_input_details()
        self.history_length = int(details[signatures.HISTORY_INDICES]["shape"][1])
        self._scores_tensor = self._topk_input() if full_scores else None
        if full_scores:  # an int8 model ranks int8 scores: (q - zero_point) * scale gives them back
            detail = next(d for d in self.interpreter.get_tensor_details() if d["index"] == self._scores_tensor)
            self._scores_quantization = detail["quantization"]

    def rank(self, user_index: int, history) -> Tuple[np.ndarray, np.ndarray]:
        """(item indices [K], scores [K]), best first; history: item indices, most recent first."""
        out = self.runner(**{signatures.USER_INDEX: np.array([user_index], np.int32),
                             signatures.HISTORY_INDICES: self.pad(history)})
        return out[signatures.ITEM_INDICES][0], out[signatures.SCORES][0]

    def all_scores(self, user_index: int, history) -> np.ndarray:
        """[num_items] scores in the index space (index 0, never recommended, gets -inf)."""
        if self._scores_tensor is None:
            raise ValueError("TFLiteRanker(full_scores=True) is needed to read every item's score")
        self.rank(user_index, history)
        raw = self.interpreter.get_tensor(self._scores_tensor)[0]
        scale, zero_point = self._scores_quantization
        scores = (raw.astype(np.float32) - zero_point) * scale if scale else raw.astype(np.float32)
        return np.concatenate([[-np.inf], scores])

    @property
    def scores_step(self) -> float:
        """The quantization step of the scores `all_scores` reads (0.0 when they are float)."""
        if self._scores_tensor is None:
            raise ValueError("TFLiteRanker(full_scores=True) is needed to read the scores' quantization")
        return float(self._scores_quantization[0])

    def pad(self, history) -> np.ndarray:
        """Item indices, most recent first -> int32 [1, H], 0 pads (longer histories are cut)."""
        row = np.zeros([1, self.history_length], np.int32)
        items = np.asarray(list(history)[: self.history_length], np.int32)
        row[0, : items.size] = items
        return row

    def _topk_input(self) -> int:
        tops = [op for op in self.interpreter._get_ops_details() if op["op_name"] == "TOPK_V2"]
        if len(tops) != 1:
            raise ValueError(f"expected one TOPK_V2 op in the model, found {len(tops)}")
        return int(tops[0]["inputs"][0])
