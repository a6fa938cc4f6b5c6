"""Every entry's beyond-accuracy figures (components/evaluation/beyond.py) on a small hand-made
dataset: the catalog, the users per item and the genre sets it passes on are checked by hand, the
top 10 lists against numpy's ranking."""

import numpy as np

from components.evaluation import beyond, cold as cold_lib, protocol
from models import beyond_accuracy
from models.interaction_data import Dataset, Split
from models.retrieval_metrics import split_evaluator

NUM_ITEMS = 16  # index 0, items 1..15; 15 is cold (held out of the warm catalog)


def _split(pairs):
    users, items = (np.array(v, np.int64) for v in zip(*pairs))
    return Split(users, items, np.arange(len(users), dtype=np.int64))


def _dataset():
    splits = {"train": _split([(1, 1), (1, 1), (1, 2), (2, 1), (3, 3)]), "eval": _split([(3, 1)]),
              "test": _split([(1, 4), (2, 5), (3, 6), (3, 15)])}
    return Dataset(["", "u1", "u2", "u3"], [""] + [f"i{k}" for k in range(1, NUM_ITEMS)], [""] * 4,
                   [""] * NUM_ITEMS, splits, cold_items=np.array([15], np.int64))


def test_the_wrapper_passes_the_catalog_users_per_item_and_genres_and_measures_numpys_top_10():
    dataset = _dataset()
    genres = np.zeros([NUM_ITEMS, 2], np.int64)
    genres[1:, 0] = np.arange(1, NUM_ITEMS) % 3 + 1  # one genre each, three genres
    tables = {"item_genres_indices": genres, "item_year": np.arange(NUM_ITEMS)}  # a single value: not a list feature
    evaluator = beyond.WithBeyondAccuracy(cold_lib.evaluator_for(dataset, split_evaluator(dataset, ("train", "eval"),
                                                                                          "test")), dataset, tables)
    assert evaluator.catalog.tolist() == list(range(1, 15))  # not 0, not the cold item 15
    assert evaluator.counts[:4].tolist() == [0, 3, 1, 1] and evaluator.num_users == 3  # u1's repeat counts once
    assert evaluator.features[1] == [("item_genres_indices", 2)] and evaluator.features[0] == []
    scores = np.random.default_rng(0).normal(size=[4, NUM_ITEMS])
    entry = protocol.entry(evaluator, lambda users: scores[users], params=1, sizes=(1, 1))
    seen = {1: {1, 2}, 2: {1}, 3: {3, 1}}
    lists = []
    for user in (1, 2, 3):  # numpy's ranking of the warm catalog, the user's training items removed
        order = [int(i) for i in np.argsort(-scores[user], kind="stable") if i in range(1, 15) and i not in seen[user]]
        lists.append(order[:10])
    expected = beyond_accuracy.measure(np.array(lists), np.arange(1, 15), evaluator.counts, 3,
                                       [[("g", g)] if g else [] for g in genres[:, 0]])
    assert entry[protocol.BEYOND_KEY] == expected
    assert entry["ndcg@10"] == protocol.entry(evaluator.inner, lambda users: scores[users], 1, (1, 1))["ndcg@10"]
