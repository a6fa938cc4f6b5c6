"""Retrieval metrics: the one evaluation every model of the project is scored with.

Protocol (docs/design.md, "report.json"): for each test user every catalog item is ranked, the items
the user interacted with in training are removed from the ranking, and recall@k, precision@k and
ndcg@k are averaged over the test users (users with at least one test item). Relevance is binary.
The definitions equal Microsoft Recommenders' `python_evaluation` (relevancy_method="top_k",
score_type="binary"), so MovieLens-100K numbers compare with its published tables:
    precision@k = hits in the top k / k            (k even when the user has fewer relevant items)
    recall@k    = hits in the top k / |relevant|
    ndcg@k      = DCG / IDCG, DCG = sum over hit ranks r (1-based) of 1/log2(r+1),
                  IDCG = sum_{r=1}^{min(|relevant|, k)} 1/log2(r+1)

Ties: equal scores are ranked by lower item index first, so results never depend on sort internals.
Caveat: a test item that is also a training item of the same user stays relevant (it counts in
|relevant|) but can never be a hit, exactly as in Recommenders with remove_seen.
"""

from __future__ import annotations

import copy
import itertools
import statistics
from typing import Callable, Mapping

import numpy as np

def from_pairs(users: np.ndarray, items: np.ndarray) -> dict[int, set[int]]:
    """(users [N], items [N]) interaction pairs -> {user index: set of item indices}."""
    users, items = np.asarray(users).ravel().tolist(), np.asarray(items).ravel().tolist()
    if len(users) != len(items):
        raise ValueError(f"users and items differ in length: {len(users)} != {len(items)}")
    out: dict[int, set[int]] = {}
    for user, item in zip(users, items):
        out.setdefault(int(user), set()).add(int(item))
    return out


def _to_pairs(data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """dict {user: items} | (users [N], items [N]) | scipy sparse [users, items] -> int64 pairs."""
    if hasattr(data, "tocoo"):  # duck-typed so that scipy stays an optional dependency
        coo = data.tocoo()
        nonzero = coo.data != 0  # explicitly stored zeros are not interactions
        return coo.row[nonzero].astype(np.int64), coo.col[nonzero].astype(np.int64)
    if isinstance(data, tuple) and len(data) == 2:
        return np.asarray(data[0], np.int64).ravel(), np.asarray(data[1], np.int64).ravel()
    if isinstance(data, Mapping):
        lengths = np.fromiter((len(v) for v in data.values()), np.int64, len(data))
        return (np.repeat(np.fromiter(data.keys(), np.int64, len(data)), lengths),
                np.fromiter(itertools.chain.from_iterable(data.values()), np.int64, int(lengths.sum())))
    raise TypeError(f"{name} must be a dict {{user: set of items}}, a (users, items) tuple of arrays "
                    f"or a scipy.sparse matrix [num_users, num_items]; got {type(data).__name__}")


class _Csr:
    """Sorted unique keys user * num_items + item, with per-user row pointers (a CSR)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_items: int, num_users: int):
        self.num_items = num_items
        self.keys = np.unique(users * num_items + items)  # sorts and drops duplicate interactions
        self.indptr = np.searchsorted(self.keys, np.arange(num_users + 1, dtype=np.int64) * num_items)

    def counts(self, users: np.ndarray) -> np.ndarray:
        """users [B] -> number of items of each user [B]."""
        return self.indptr[users + 1] - self.indptr[users]

    def rows(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """users [B] -> (batch row [nnz], item [nnz]) of all their items, one ragged gather."""
        starts, lengths = self.indptr[users], self.counts(users)
        row = np.repeat(np.arange(users.size), lengths)
        offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return row, self.keys[np.repeat(starts, lengths) + offset] % self.num_items

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """users [B], items [B, K] (in range) -> bool [B, K]: item is one of the user's items."""
        query = users[:, None] * self.num_items + items
        found = np.minimum(np.searchsorted(self.keys, query), max(self.keys.size - 1, 0))
        return self.keys[found] == query if self.keys.size else np.zeros(query.shape, bool)


def _top(scores: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """scores [B, N] -> (items [B, m], scores [B, m]): best first, ties by lower item index."""
    n = scores.shape[1]
    if m < n:
        # argpartition picks arbitrary members of a tie at the cut; instead keep everything above
        # the m-th largest score plus the lowest-index items tied with it.
        threshold = np.partition(scores, n - m, axis=1)[:, n - m, None]
        keep = scores > threshold
        tied = scores == threshold
        need = m - keep.sum(axis=1)
        excess = tied.sum(axis=1) > need  # only these rows must choose among ties (cumsum is costly)
        tied[excess] &= np.cumsum(tied[excess], axis=1, dtype=np.int32) <= need[excess, None]
        items = np.nonzero(keep | tied)[1].reshape(-1, m)  # row-major, so ascending item index
    else:
        items = np.broadcast_to(np.arange(n), scores.shape)
    top = np.take_along_axis(scores, items, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")  # stable keeps lower indices first in ties
    return np.take_along_axis(items, order, axis=1), np.take_along_axis(top, order, axis=1)


class RetrievalEvaluator:
    """Ranks the whole catalog for each test user, batch by batch, and averages the metrics.

    Args:
      num_items: catalog size; items are indices in [0, num_items).
      train_items: items seen in training, removed from every ranking: a dict {user: set of items},
        a (users [N], items [N]) tuple of int arrays or a scipy.sparse matrix [num_users, num_items].
      test_items: the relevant items, in any of the same forms. Users without one are not evaluated.

    Memory: one batch of scores [batch_size, num_items] at a time, never [users, items].
    """

    def __init__(self, num_items: int, train_items, test_items):
        self.num_items = int(num_items)
        train, test = _to_pairs(train_items, "train_items"), _to_pairs(test_items, "test_items")
        for name, (users, items) in (("train_items", train), ("test_items", test)):
            if users.shape != items.shape:
                raise ValueError(f"{name}: {users.size} users but {items.size} items")
            if users.size and (users.min() < 0 or items.min() < 0 or items.max() >= self.num_items):
                raise ValueError(f"{name}: user indices must be >= 0 and item indices in [0, "
                                 f"{self.num_items}); got users >= {users.min()}, items in "
                                 f"[{items.min()}, {items.max()}]")
        num_users = 1 + max([-1] + [int(u.max()) for u, _ in (train, test) if u.size])
        self._train = _Csr(*train, self.num_items, num_users)
        self._test = _Csr(*test, self.num_items, num_users)
        all_users = np.arange(num_users, dtype=np.int64)
        self.users = all_users[self._test.counts(all_users) > 0]  # [U] the users evaluated

    def sample(self, max_users: int, seed: int = 0) -> "RetrievalEvaluator":
        """The same evaluation on at most max_users of its users (a seeded uniform draw, in index
        order); itself when it has no more than that. For per-epoch validation on large splits."""
        if self.users.size <= max_users:
            return self
        sampled = copy.copy(self)
        rng = np.random.default_rng(seed)
        sampled.users = np.sort(rng.choice(self.users, size=max_users, replace=False))
        return sampled

    def evaluate(self, score_fn: _Fn, batch_size: int = 256, ks=(10, 100), totals: bool = False,
                 per_user: bool = False, lists: int = 0) -> dict:
        """score_fn(user_indices [B] int64) -> scores [B, num_items] (higher is better).

        Returns {"recall@k", "precision@k", "ndcg@k" for each k in ks: float, "users": int}; with
        `totals`, also "hits@k" (relevant items ranked in the top k, summed over users) and
        "relevant" (relevant items, summed): the pooled share hits@k / relevant; with `per_user`,
        also "per_user": {"ndcg@k": [U] array, in the order of self.users} (paired comparisons);
        with `lists` = k > 0, also "lists": [U, k] each user's top k items (removed items left out,
        -1 where fewer remain), for models/beyond_accuracy.py.
        A score of -inf ranks last but still ranks above the removed training items; NaN is an error.
        """
        ks = self._check(ks, batch_size)
        m = min(max(ks + (lists,)), self.num_items)

        def ranked(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            scores = np.asarray(score_fn(users))
            if scores.shape != (users.size, self.num_items):
                raise ValueError(f"score_fn returned shape {scores.shape}; expected "
                                 f"[{users.size}, {self.num_items}] for {users.size} users")
            dtype = scores.dtype if scores.dtype in (np.float32, np.float64) else np.float64
            # Clamping the model's own -inf to the lowest finite value keeps -inf for removed items,
            # which must rank below everything; np.maximum also makes the copy we mask in place.
            scores = np.maximum(scores, np.finfo(dtype).min, dtype=dtype)
            if np.isnan(scores).any():
                raise ValueError(f"score_fn returned NaN for users {users[np.isnan(scores).any(1)][:5]}")
            scores[self._train.rows(users)] = -np.inf
            items, top = _top(scores, m)
            return items, top > -np.inf  # removed items can only fill the tail: they are not ranked

        return self._run(ranked, batch_size, ks, totals, per_user, lists)

    def evaluate_ranked(self, ranked_fn: _Fn, batch_size: int = 256, ks=(10, 100), lists: int = 0) -> dict:
        """ranked_fn(user_indices [B] int64) -> item indices [B, K >= max(ks)], best first.

        For models that return only a top-K list (e.g. TFLite). Training items of the user in the
        list are dropped before cutting at k, so a model may over-fetch; repeats of an item and
        negative indices (padding) are dropped too. If fewer than k items remain, the missing
        positions count as misses (precision still divides by k). Same keys as `evaluate`.
        """
        ks = self._check(ks, batch_size)

        def ranked(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            items = np.asarray(ranked_fn(users))
            if items.ndim != 2 or items.shape[0] != users.size or items.shape[1] < max(ks + (lists,)):
                raise ValueError(f"ranked_fn returned shape {items.shape}; expected [{users.size}, "
                                 f"K] with K >= max(ks) = {max(ks + (lists,))}")
            if not np.issubdtype(items.dtype, np.integer) or (items >= self.num_items).any():
                raise ValueError(f"ranked_fn must return integer item indices < {self.num_items}")
            items = items.astype(np.int64)
            valid = items >= 0
            # Repeats keep their best-ranked copy; padding sorts apart so it never hides item 0.
            order = np.argsort(np.where(valid, items, self.num_items), axis=1, kind="stable")
            ordered = np.take_along_axis(items, order, axis=1)
            items = np.where(valid, items, 0)
            repeat = np.pad(ordered[:, 1:] == ordered[:, :-1], ((0, 0), (1, 0)))  # [B, K]
            np.put_along_axis(valid, order, np.take_along_axis(valid, order, 1) & ~repeat, axis=1)
            return items, valid & ~self._train.contains(users, items)

        return self._run(ranked, batch_size, ks, lists=lists)

    def _check(self, ks, batch_size: int) -> tuple[int, ...]:
        ks = tuple(sorted({int(k) for k in ks}))
        if not ks or ks[0] < 1 or batch_size < 1:
            raise ValueError(f"ks must be positive cut-offs and batch_size >= 1, got {ks}, {batch_size}")
        if self.users.size == 0:
            raise ValueError("no user has a test item: nothing to evaluate")
        return ks

    def _run(self, ranked, batch_size: int, ks: tuple[int, ...], totals: bool = False, per_user: bool = False,
             lists: int = 0) -> dict:
        """ranked(users [B]) -> (items [B, M], valid [B, M]); valid entries take ranks 1, 2, ..."""
        discount = 1.0 / np.log2(np.arange(2, max(ks) + 2))  # discount[r - 1] = 1 / log2(r + 1)
        ideal = np.concatenate([[0.0], np.cumsum(discount)])  # ideal[j] = IDCG with j relevant items
        # Per-user values are summed once at the end, so any batch size gives bit-identical results.
        values: dict[str, list] = {f"{m}@{k}": [] for k in ks for m in ("recall", "precision", "ndcg")}
        hits_total, relevant_total = {k: 0 for k in ks}, 0
        top_lists = []
        for start in range(0, self.users.size, batch_size):
            users = self.users[start:start + batch_size]
            items, valid = ranked(users)
            rank = np.cumsum(valid, axis=1) - 1  # 0-based rank once invalid entries are dropped
            if lists:
                top = np.full([users.size, lists], -1, np.int64)
                rows, columns = np.nonzero(valid & (rank < lists))
                top[rows, rank[rows, columns]] = items[rows, columns]
                top_lists.append(top)
            relevant = valid & self._test.contains(users, items)
            num_relevant = self._test.counts(users)
            relevant_total += int(num_relevant.sum())
            for k in ks:
                hit = relevant & (rank < k)
                hits = hit.sum(axis=1)
                hits_total[k] += int(hits.sum())
                dcg = np.where(hit, discount[np.clip(rank, 0, k - 1)], 0.0).sum(axis=1)
                values[f"recall@{k}"].append(hits / num_relevant)
                values[f"precision@{k}"].append(hits / k)
                values[f"ndcg@{k}"].append(dcg / ideal[np.minimum(num_relevant, k)])
        means = {key: float(np.concatenate(parts).mean()) for key, parts in values.items()}
        if totals:
            means.update({f"hits@{k}": hits_total[k] for k in ks}, relevant=relevant_total)
        if per_user:
            means["per_user"] = {f"ndcg@{k}": np.concatenate(values[f"ndcg@{k}"]) for k in ks}
        if lists:
            means["lists"] = np.concatenate(top_lists)
        return {**means, "users": int(self.users.size)}


def split_evaluator(dataset, seen_splits, target_split: str) -> "RetrievalEvaluator":
    """Ranks `target_split`'s interactions of an interaction_data.Dataset over the whole catalog,
    with the items of `seen_splits` removed. Index 0 (unknown item, padding) counts as seen by
    everyone, so it is never a recommendation; target rows of an unknown user (index 0, possible
    with time_cutoff) have nothing to rank by and are left out.

    The dataset's cold items (a cold-item evaluation's held-out items) are neither ranked nor
    relevant here: this is the warm evaluation, on the other items (components/evaluation/cold.py
    ranks the cold ones)."""
    cold = np.asarray(getattr(dataset, "cold_items", ()), np.int64)
    target = dataset.splits[target_split]
    keep = (target.user != 0) & ~np.isin(target.item, cold)
    return RetrievalEvaluator(dataset.num_items, seen_pairs(dataset, seen_splits, hidden=cold),
                              (target.user[keep], target.item[keep]))


def seen_pairs(dataset, seen_splits, hidden=()) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) removed from every ranking: the `seen_splits`' interactions, and index 0
    (unknown item, padding) and the `hidden` items for every user."""
    seen = [dataset.splits[s] for s in seen_splits]
    everyone = np.concatenate([[0], np.asarray(hidden, np.int64)])
    users = np.concatenate([s.user for s in seen] + [np.repeat(np.arange(dataset.num_users), everyone.size)])
    items = np.concatenate([s.item for s in seen] + [np.tile(everyone, dataset.num_users)])
    return users, items


NOISE_Z = 1.645  # one-sided 95%: a paired mean this many standard errors from 0 is more than the test's noise


def noise_z(comparisons: int, level: float = 0.05) -> float:
    """The one-sided z for `comparisons` tests against one default at a family-wise `level`
    (Bonferroni: each at level / comparisons). Picking the best of several alternatives and testing
    only it at NOISE_Z finds one "better" far more often than 5% of the time when none is: with 6
    alternatives, the best of them is tested at 2.394 standard errors."""
    if comparisons < 1:
        raise ValueError(f"comparisons must be at least 1, got {comparisons}")
    return round(statistics.NormalDist().inv_cdf(1.0 - level / comparisons), 3)


def paired(differences) -> dict:
    """{"users", "mean", "standard_error"} of per-user differences between two rankings of the same users."""
    differences = np.asarray(differences, np.float64)
    error = float(differences.std(ddof=1) / np.sqrt(differences.size)) if differences.size > 1 else 0.0
    return {"users": int(differences.size), "mean": round(float(differences.mean()), 6),
            "standard_error": round(error, 6)}
