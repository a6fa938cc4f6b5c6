"""Next-span evaluation: a model trained on spans up to k, ranked on what users did in span k + 1
(the continuous bench's measure, tfx_pipeline/bench_continuous.py; docs/spans.md).

The spans' interactions up to k are the history (each user's latest items, and the items removed
from the user's ranking: a recommender does not offer what was seen); span k + 1's interactions
are the relevant items. The index spaces are the spans' own ids (every user and item up to k + 1):
a pushed model is scored by id (components/evaluation/evaluate.py: items it never saw are misses,
users it never saw are its unknown user), a baseline is fitted in this index space.
"""

import csv
import io
import os
from typing import Dict, List, Sequence

import numpy as np

from models import ease as ease_lib
from models.foundation import signatures, storage
from models.interaction_data import Dataset, Split
from models.retrieval_metrics import split_evaluator
from models.trending import TrendingModel
from models.vocabulary_file import read_vocabulary

SEEN = ("train", "eval")


def span_rows(data_dir: str, span: int, pattern: str = "span-{SPAN}") -> List[tuple]:
    """(user_id, item_id, timestamp) of a span's interactions.csv, in file order."""
    path = os.path.join(data_dir, pattern.replace("{SPAN}", str(span)), "interactions.csv")
    reader = csv.DictReader(io.StringIO(storage.read_text(path)))
    return [(row["user_id"].strip(), row["item_id"].strip(), int(row["timestamp"])) for row in reader]


def next_span_dataset(data_dir: str, k: int, spans: Sequence[int]) -> Dataset:
    """A Dataset whose train split is every interaction of `spans` up to k and whose test split is
    span k + 1's (eval empty); ids in order of first appearance."""
    history = [row for span in spans if span <= k for row in span_rows(data_dir, span)]
    target = span_rows(data_dir, k + 1)
    users, items = {"": 0}, {"": 0}
    for user, item, _ in history + target:
        users.setdefault(user, len(users))
        items.setdefault(item, len(items))

    def split(rows) -> Split:
        return Split(np.array([users[u] for u, _, _ in rows], np.int64), np.array([items[i] for _, i, _ in rows], np.int64),
                     np.array([t for _, _, t in rows], np.int64))

    return Dataset(user_ids=list(users), item_ids=list(items), user_texts=[""] * len(users),
                   item_texts=[""] * len(items),
                   splits={"train": split(history), "eval": split([]), "test": split(target)})


def tflite_ndcg(mobile_dir: str, dataset: Dataset) -> float:
    """ndcg@10 on the test split of the pushed int8 model in mobile_dir (mobile/<version>), by id."""
    from components.evaluation import evaluate

    vocabularies = tuple(read_vocabulary(os.path.join(mobile_dir, name))
                         for name in (signatures.USER_VOCAB, signatures.ITEM_VOCAB))
    return evaluate.tflite_ndcg(os.path.join(mobile_dir, signatures.TFLITE_FILE), dataset, vocabularies)


def ease_ndcg(dataset: Dataset, window_users: np.ndarray, window_items: np.ndarray, l2: float) -> float:
    """EASE fitted on the window's interactions (index arrays), ranking from every user's history."""
    train = dataset.splits["train"]
    model = ease_lib.EaseModel(dataset.num_items, l2).fit(window_users, window_items, dataset.num_users)
    model.use_interactions(train.user, train.item, dataset.num_users)
    return _ndcg(dataset, model.score)


def trending_ndcg(dataset: Dataset, days: int) -> float:
    """The most interacted-with items of the last `days` of history, for everyone (a floor)."""
    train = dataset.splits["train"]
    model = TrendingModel(dataset.num_items, days).fit(train.item, train.timestamp)
    return _ndcg(dataset, model.score)


def _ndcg(dataset: Dataset, score) -> float:
    return float(split_evaluator(dataset, SEEN, "test").evaluate(score, ks=(10,))["ndcg@10"])


def window_indices(dataset: Dataset, data_dir: str, spans: Sequence[int]) -> Dict[str, np.ndarray]:
    """{"users", "items"}: index arrays of the interactions of `spans` (a window), in the dataset's spaces."""
    users = {u: i for i, u in enumerate(dataset.user_ids)}
    items = {u: i for i, u in enumerate(dataset.item_ids)}
    rows = [row for span in spans for row in span_rows(data_dir, span)]
    return {"users": np.array([users[u] for u, _, _ in rows], np.int64),
            "items": np.array([items[i] for _, i, _ in rows], np.int64)}
