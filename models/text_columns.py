"""The teacher's wide part for items without interactions: their EASE columns from their text.

EASE's item-item weights B have an all-zero column for an item nobody interacted with in the
split it was fit on (a cold item, a new one), so the wide part cannot rank it. Its pretrained text
can: the column of such an item i becomes

    B[h, i] = alpha * cos(text(h), text(i))   for every item h with interactions (0 for the others),

with text() centred and unit-norm (models/teacher.py normalize_text), so that the wide score of i
for user u is alpha times the summed similarity of i's text to the texts of u's items: text-kNN on
the wide part's scale. alpha is fit by least squares on the warm items as if they were cold: over
the unseen (user, item) pairs of a sample of users, the EASE scores regressed on the same text
scores. It calibrates text to what the interactions say (measured on MovieLens-100K with 10% of
items held out: alpha 0.006, correlation 0.27): a cold item gets the score its text predicts, not
a bonus for being new.
"""

from typing import Dict, Tuple

import numpy as np

from models.interaction_data import items_with_interactions
from models.teacher import normalize_text

FIT_USERS = 2000  # the users whose rows fit alpha: [FIT_USERS, num_items] at a time


def with_text_columns(wide: np.ndarray, item_text_emb: np.ndarray, users: np.ndarray, items: np.ndarray,
                      seed: int = 0) -> Tuple[np.ndarray, Dict]:
    """(B with the columns of the items absent from `items` filled from text, {"alpha", "items"}).

    wide: B [num_items, num_items] fit on (users, items); item_text_emb [num_items, d] (row 0 OOV).
    Returns `wide` itself when every catalog item has interactions."""
    num_items = wide.shape[0]
    known = items_with_interactions(items, num_items)
    unknown = ~known
    unknown[0] = False
    if not unknown.any() or not known.any():
        return wide, {"alpha": None, "items": 0}
    text = normalize_text(item_text_emb).astype(np.float64)
    alpha = fit_alpha(wide, text, known, users, items, seed)
    filled = np.array(wide, np.float32)
    filled[:, unknown] = (alpha * (text @ text[unknown].T) * known[:, None]).astype(np.float32)
    return filled, {"alpha": round(alpha, 6), "items": int(unknown.sum())}


def fit_alpha(wide: np.ndarray, text: np.ndarray, known: np.ndarray, users: np.ndarray, items: np.ndarray,
              seed: int = 0) -> float:
    """Least squares of the EASE scores on the text scores, over unseen (user, warm item) pairs."""
    rng = np.random.default_rng(seed)
    present = np.unique(users)
    sample = np.sort(rng.choice(present, FIT_USERS, replace=False)) if present.size > FIT_USERS else present
    position = np.full(int(users.max()) + 1, -1)
    position[sample] = np.arange(sample.size)
    keep = position[users] >= 0
    rows = np.zeros([sample.size, wide.shape[0]])
    rows[position[users[keep]], items[keep]] = 1.0
    ease_scores = (rows @ wide)[:, known]
    text_scores = (rows @ text) @ text[known].T  # [users, warm items]: the summed similarities
    unseen = rows[:, known] == 0
    b, t = ease_scores[unseen], text_scores[unseen]
    return float(b @ t / (t @ t)) if t @ t > 0 else 0.0
