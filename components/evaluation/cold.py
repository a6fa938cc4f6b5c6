"""The cold-item evaluation: how well each model ranks items it never saw in training.

With `cold_items` set, ExampleGen holds a seeded share of the catalog out of train and eval and
sends all their interactions to test (components/ingest/splits.py). For every test user with at
least one cold positive, and every model and baseline (report.json "cold_items"):
  ndcg@10, recall@10  the user's cold positives ranked among all cold items (nothing removed: no
                      cold item is in anyone's training share), averaged over those users;
  top100_share        the share of all cold positives (pooled over users) that reach the top 100
                      of the whole-catalog ranking (warm and cold items, training items removed).
The warm table ranks the other items (models/retrieval_metrics.py split_evaluator).

Two baselines exist for this table only: `random` (a seeded uniform score per user and item) and
`text_knn` (the mean cosine similarity of an item's pretrained text embedding to those of the
user's training items, the embeddings centred first as the teacher's are).
"""

from typing import Callable, Dict, Optional

import numpy as np

from components.evaluation.protocol import COLD_KEY, TRAINING_SPLITS
from models.retrieval_metrics import RetrievalEvaluator, from_pairs, seen_pairs

KS = (10,)
WHOLE_CATALOG_K = 100
RANDOM_SEED = 42


class ColdEvaluator:
    """The cold-item metrics of a score_fn(users [B]) -> scores [B, num_items], as the warm
    RetrievalEvaluator takes it; a model is scored once per batch of users for both rankings."""

    def __init__(self, dataset, seen_splits=TRAINING_SPLITS, target_split: str = "test"):
        self.cold = np.asarray(dataset.cold_items, np.int64)
        target = dataset.splits[target_split]
        keep = (target.user != 0) & np.isin(target.item, self.cold)
        users, items = target.user[keep], target.item[keep]
        if not users.size:
            raise ValueError("no test user has a cold item: nothing to evaluate")
        position = np.searchsorted(self.cold, items)  # the item's column among the cold items
        empty = np.zeros([0], np.int64)
        self.among = RetrievalEvaluator(self.cold.size, (empty, empty), (users, position))
        self.whole = RetrievalEvaluator(dataset.num_items, seen_pairs(dataset, seen_splits), (users, items))
        self.users = self.among.users  # the same users, in the same order, in both

    def evaluate(self, score_fn: Callable, batch_size: int = 256) -> Dict[str, float]:
        """{"ndcg@10", "recall@10", "top100_share": float, "users", "positives": int}."""
        last = {}

        def scores(users):  # both rankings ask for the same batches in turn: score each once
            key = users.tobytes()
            if last.get("key") != key:
                last.update(key=key, scores=np.asarray(score_fn(users)))
            return last["scores"]

        among = self.among.evaluate(lambda users: scores(users)[:, self.cold], batch_size, ks=KS)
        whole = self.whole.evaluate(scores, batch_size, ks=(WHOLE_CATALOG_K,), totals=True)
        result = {f"{m}@{k}": round(float(among[f"{m}@{k}"]), 4) for k in KS for m in ("ndcg", "recall")}
        result["top100_share"] = round(whole[f"hits@{WHOLE_CATALOG_K}"] / whole["relevant"], 4)
        result.update(users=int(among["users"]), positives=int(whole["relevant"]))
        return result


class WithCold:
    """A warm RetrievalEvaluator whose evaluate() also returns the cold metrics under COLD_KEY, so
    that every model entry (components/evaluation/protocol.py) measures both with one score_fn."""

    def __init__(self, warm: RetrievalEvaluator, cold: ColdEvaluator):
        self.warm, self.cold = warm, cold

    def evaluate(self, score_fn: Callable, batch_size: int = 256, ks=(10, 100), **options) -> dict:
        metrics = self.warm.evaluate(score_fn, batch_size, ks, **options)
        metrics[COLD_KEY] = self.cold.evaluate(score_fn, batch_size)
        return metrics

    def __getattr__(self, name):  # users, sample, evaluate_ranked, ...: the warm evaluator's
        return getattr(self.warm, name)


def evaluator_for(dataset, warm: RetrievalEvaluator):
    """`warm` itself without cold items, else WithCold(warm, ColdEvaluator(dataset))."""
    if not len(getattr(dataset, "cold_items", ())):
        return warm
    return WithCold(warm, ColdEvaluator(dataset))


def split_cold(results: Dict[str, Optional[Dict]]) -> Dict[str, Dict]:
    """Takes each entry's cold metrics out of `results` (in place): {model: cold metrics}."""
    return {name: entry.pop(COLD_KEY) for name, entry in results.items() if entry and COLD_KEY in entry}


def random_scores(num_items: int, seed: int = RANDOM_SEED) -> Callable:
    """score_fn of the random baseline: uniform scores, the same for a user in every call."""
    def scores(users):
        return np.stack([np.random.default_rng([seed, int(u)]).random(num_items) for u in users])
    return scores


def text_knn_scores(dataset, item_text: np.ndarray, seen_splits=TRAINING_SPLITS) -> Callable:
    """score_fn of text-kNN: each item's mean cosine similarity to the user's training items'
    texts, i.e. its unit vector's dot product with the mean of the user's unit vectors."""
    vectors = np.asarray(item_text, np.float64)
    vectors = vectors - vectors[1:].mean(axis=0)  # centred over the catalog (index 0 has no text)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    vectors[0] = 0.0
    seen = [dataset.splits[s] for s in seen_splits]
    history = from_pairs(np.concatenate([s.user for s in seen]), np.concatenate([s.item for s in seen]))
    profiles = np.zeros([dataset.num_users, vectors.shape[1]])
    for user, items in history.items():
        profiles[user] = vectors[sorted(items)].mean(axis=0)

    def scores(users):
        return (profiles[np.asarray(users)] @ vectors.T).astype(np.float32)
    return scores
