"""Checks of a catalog extension before it is pushed (`recdistill add-items`), like the checks a
TFX rewriter runs: the new versions must answer as the old ones for the old items and rank the new.

On the same users (up to 200, spread over the index space, each with its latest history):
  SavedModel  old items' scores (its `score` function, the whole catalog) equal the previous
              version's to float tolerance (SAVED_MODEL_ATOL; the same weights and ranges: the
              difference measured is 0);
  int8 TFLite old items' scores, read in LiteRT from the input of the model's top-K op, within
              one step of the int8 output quantization (its scale): the kernel's old columns and
              every range are kept, so they quantize to the same values (measured: equal);
  both        every new item has a finite score; the int8 model's top-10 overlaps the SavedModel's
              (at least compress.MIN_PARITY on average, as for the compressor's own export).
What is measured, not required (new items need not suit every user): how often a new item is in a
user's top-10 and the best rank a new item reaches.
"""

from typing import Dict

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from components.compression.compress import MIN_PARITY, PARITY_USERS  # noqa: E402
from models.foundation.tflite_runner import TFLiteRanker  # noqa: E402

SAVED_MODEL_ATOL = 1e-5


class CheckFailed(RuntimeError):
    """The extended models do not answer as they must: nothing is pushed."""


def sample_users(num_users: int, users: int = PARITY_USERS) -> np.ndarray:
    """Up to `users` user indices spread over 1..num_users - 1 (compress.top10_overlap's sample)."""
    return np.unique(np.linspace(1, num_users - 1, min(users, num_users - 1)).astype(np.int64))


def check(old_saved_model, new_saved_model, old_tflite: str, new_tflite: str, latest: np.ndarray,
          old_items: int) -> Dict:
    """Raises CheckFailed, or returns the figures. latest: [num_users, H] histories (item indices);
    old_items: the previous catalog's size in the index space (index 0 included)."""
    users = sample_users(len(latest))
    history = tf.constant(latest[users])
    old = old_saved_model.score(tf.constant(users), history).numpy()  # [N, old_items], index 0 masked
    new = new_saved_model.score(tf.constant(users), history).numpy()
    saved_diff = float(np.max(np.abs(new[:, 1:old_items] - old[:, 1:])))
    if saved_diff > SAVED_MODEL_ATOL:
        raise CheckFailed(f"the new SavedModel changes old items' scores by up to {saved_diff:.3g} "
                          f"(tolerance {SAVED_MODEL_ATOL})")
    if not np.all(np.isfinite(new[:, old_items:])):
        raise CheckFailed("the new SavedModel gives some new items no finite score")

    old_ranker, new_ranker = TFLiteRanker(old_tflite, full_scores=True), TFLiteRanker(new_tflite, full_scores=True)
    step = new_ranker.scores_step or 1e-6  # a float model's scores are not quantized
    int8_diff, overlaps, in_top10, best = 0.0, [], 0, []
    for row, user in enumerate(users):
        before, after = old_ranker.all_scores(int(user), latest[user]), new_ranker.all_scores(int(user), latest[user])
        int8_diff = max(int8_diff, float(np.max(np.abs(after[1:old_items] - before[1:]))))
        if not np.all(np.isfinite(after[old_items:])):
            raise CheckFailed("the new TFLite model gives some new items no finite score")
        top = np.argsort(-after[1:], kind="stable")[:10] + 1
        overlaps.append(len(set(top.tolist()) & set((np.argsort(-new[row, 1:], kind="stable")[:10] + 1).tolist())) / 10)
        in_top10 += int(np.any(top >= old_items))
        ranks = np.argsort(np.argsort(-after[1:], kind="stable"))  # 0 = best
        best.append(int(np.min(ranks[old_items - 1:])) + 1)
    if int8_diff > step * 1.001:
        raise CheckFailed(f"the new int8 TFLite model changes old items' scores by up to {int8_diff:.3g}, more than "
                          f"one step of its output quantization ({step:.3g})")
    parity = float(np.mean(overlaps))
    if parity < MIN_PARITY:
        raise CheckFailed(f"the new int8 TFLite model's top-10 overlaps the new SavedModel's by {parity:.2f} on "
                          f"average (below {MIN_PARITY})")
    return {"users": int(len(users)), "saved_model_old_max_diff": saved_diff, "int8_old_max_diff": int8_diff,
            "int8_step": step, "parity_top10_overlap": round(parity, 4),
            "users_with_new_in_top10": round(in_top10 / len(users), 4),
            "new_best_rank_median": float(np.median(best))}
