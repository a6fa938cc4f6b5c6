"""What a model's top-k lists do beside hitting the test items: how much of the catalog they use,
how concentrated they are, how popular and how alike their items are.

Computed from the lists alone (`lists` [U, k] item indices, best first, -1 where a list is short),
the training interactions' item counts and, for diversity, the items' feature sets (genres):

    coverage      distinct items recommended / catalog items (Microsoft Recommenders'
                  catalog_coverage)
    gini          Gini index of how often each catalog item is recommended, every catalog item
                  counted, never-recommended ones as 0 (Elliot's Gini index): 0 when every item is
                  recommended equally often, near 1 when a few items take every slot
    novelty       mean self-information -log2(p_i) of the recommended items, p_i the share of
                  training users who interacted with item i (Microsoft Recommenders' novelty); an
                  item nobody interacted with counts as one user's, so that it stays finite
    diversity     intra-list diversity: the mean over lists of the mean over pairs of items of
                  1 - cosine similarity of their feature sets (multi-hot); pairs with an item that
                  has no features are left out, a list without such a pair too; None without features
    popular_share share of the recommended items among the catalog's 10% most popular (training
                  interactions, ties broken by index)

`catalog`: the items that can be recommended (index 0, the unknown item, is never one; a
cold-item evaluation's held-out items are not in the warm catalog).
"""

from typing import Dict, Optional, Sequence

import numpy as np

POPULAR_SHARE = 0.1  # the head: this share of the catalog, the most interacted with


def item_user_counts(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """[num_items]: how many distinct users interacted with each item (repeats count once)."""
    pairs = np.unique(np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)]), axis=1)
    return np.bincount(pairs[1], minlength=num_items).astype(np.int64)


def measure(lists: np.ndarray, catalog: np.ndarray, user_counts: np.ndarray, num_users: int,
            features: Optional[Sequence[Sequence[int]]] = None) -> Dict[str, Optional[float]]:
    """The five figures above for top-k `lists` [U, k] (-1 pads a short list).

    catalog: item indices that can be recommended; user_counts: [num_items] training users per item
    (item_user_counts); num_users: training users; features: per item index, its feature ids."""
    lists = np.asarray(lists, np.int64)
    catalog = np.unique(np.asarray(catalog, np.int64))
    if lists.ndim != 2 or catalog.size == 0 or num_users < 1:
        raise ValueError(f"lists must be [users, k] and the catalog and users not empty; got lists "
                         f"{lists.shape}, {catalog.size} catalog items, {num_users} users")
    shown = lists[lists >= 0]
    if shown.size and not np.isin(shown, catalog).all():
        raise ValueError(f"recommended items outside the catalog: {np.setdiff1d(shown, catalog)[:5].tolist()}")
    counts = np.asarray(user_counts, np.float64)
    times = np.bincount(shown, minlength=counts.size)[catalog].astype(np.float64)  # per catalog item
    head = catalog[np.lexsort((catalog, -counts[catalog]))][:max(1, int(np.ceil(POPULAR_SHARE * catalog.size)))]
    empty = shown.size == 0
    return {
        "coverage": round(float(np.count_nonzero(times) / catalog.size), 4),
        "gini": None if empty else round(gini(times), 4),
        "novelty": None if empty else round(float(np.mean(-np.log2(np.maximum(counts[shown], 1.0) / num_users))), 4),
        "diversity": None if features is None else _diversity(lists, features),
        "popular_share": None if empty else round(float(np.mean(np.isin(shown, head))), 4),
    }


def gini(values: np.ndarray) -> float:
    """Gini index of non-negative values: sum_i (2i - n - 1) x_(i) / (n sum x), x sorted ascending."""
    x = np.sort(np.asarray(values, np.float64))
    n, total = x.size, x.sum()
    if total <= 0:
        return 0.0
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * total))


def _diversity(lists: np.ndarray, features: Sequence[Sequence[int]]) -> Optional[float]:
    vocabulary = sorted({f for item in features for f in item})
    column = {f: j for j, f in enumerate(vocabulary)}
    hot = np.zeros([len(features), max(1, len(vocabulary))], np.float64)
    for item, ids in enumerate(features):
        hot[item, [column[f] for f in ids]] = 1.0
    norms = np.linalg.norm(hot, axis=1)
    per_list = []
    for row in lists:
        items = row[(row >= 0) & (row < len(features))]
        items = items[norms[items] > 0]
        if items.size < 2:
            continue
        unit = hot[items] / norms[items][:, None]
        similarity = unit @ unit.T
        upper = np.triu_indices(items.size, k=1)
        per_list.append(float(np.mean(1.0 - similarity[upper])))
    return round(float(np.mean(per_list)), 4) if per_list else None
