"""EASE: the closed-form item-item baseline (Steck, "Embarrassingly Shallow Autoencoders", 2019).

With X the binary user-item matrix [num_users, num_items], EASE's item-item weights B minimise
||X - X B||^2 + l2 ||B||^2 subject to diag(B) = 0, and have the closed form
    G = X^T X + l2 I,   P = G^-1,   B = -P / diag(P) (column j divided by P_jj),   diag(B) = 0
and a user's scores are their row of X B. One dense [num_items, num_items] inverse: seconds for a
few thousand items, minutes and ~24 x num_items^2 bytes of memory near 20K (hence `MAX_ITEMS`).

Index 0 is the unknown item / padding (models/interaction_data.py): it is left out of X, so it
never explains another item, and scored -inf, so it is never recommended.

Caveat: needs scipy (sparse X, LAPACK's Cholesky inverse); TFX depends on it.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from models.retrieval_metrics import RetrievalEvaluator, split_evaluator
from models.foundation import storage

# Covers MovieLens-100K's optimum (500) with room either side; one inverse per value.
L2_GRID = (10.0, 30.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1000.0, 2000.0, 5000.0)
MAX_ITEMS = 20000
PICK_METRIC = "ndcg@10"
EVAL_BATCH = 2048  # users per scoring batch while picking l2: a [2048, num_items] float32 block


class EaseModel:
    """score(user) = the user's binary training row x B, B [num_items, num_items] float32.

    Args:
      num_items: catalog size; items are indices in [0, num_items).
      l2: the L2 weight (> 0; it also makes G invertible).
    """

    def __init__(self, num_items: int, l2: float):
        if not l2 > 0:
            raise ValueError(f"the EASE l2 weight must be > 0, got {l2}")
        self.num_items, self.l2 = int(num_items), float(l2)
        self.weights = np.zeros([self.num_items, self.num_items], np.float32)  # B, the parameters
        self.interactions = None  # X, scipy CSR [num_users, num_items]: what score() multiplies

    def fit(self, users: np.ndarray, items: np.ndarray, num_users: int) -> "EaseModel":
        """users [N], items [N]: training pairs (repeats count once); num_users: rows of X."""
        self.use_interactions(users, items, num_users)
        self.weights = _weights(_gram(self.interactions), self.l2)
        return self

    def use_interactions(self, users: np.ndarray, items: np.ndarray, num_users: int) -> "EaseModel":
        """Sets X (the histories score() reads) without refitting B, e.g. after `load`."""
        self.interactions = interaction_matrix(users, items, num_users, self.num_items)
        return self

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """user_indices [B] -> float32 scores [B, num_items]; item 0 is -inf. A user without
        interactions scores 0 everywhere (ties, ranked by item index)."""
        if self.interactions is None:
            raise ValueError("EaseModel.score needs the users' interactions: call fit or use_interactions")
        rows = self.interactions[np.asarray(user_indices, np.int64)]
        scores = np.asarray(rows @ self.weights, np.float32)  # sparse [B, I] @ dense [I, I]
        scores[:, 0] = -np.inf
        return scores

    @property
    def params(self) -> int:
        """Number of parameters: the off-diagonal entries of B (dense; the diagonal is fixed at 0)."""
        return self.num_items * (self.num_items - 1)

    def save(self, path: str) -> str:
        """Writes B [num_items, num_items] float32 as .npy; returns the path written (".npy" added)."""
        path = path if path.endswith(".npy") else path + ".npy"  # the name np.save gave (it adds ".npy")
        storage.save_npy(path, self.weights)  # np.save's bytes; makes parent dirs
        return path

    @classmethod
    def load(cls, path: str, l2: float = 1.0) -> "EaseModel":
        """Reads B written by `save` (l2 is not stored: it only matters to fit); then
        `use_interactions` before scoring."""
        weights = storage.load_npy(path)
        model = cls(weights.shape[0], l2)
        model.weights = weights.astype(np.float32)
        return model


def interaction_matrix(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int):
    """Binary scipy CSR X [num_users, num_items] float32; index 0 (unknown user or item) left out."""
    import scipy.sparse

    users, items = np.asarray(users, np.int64).ravel(), np.asarray(items, np.int64).ravel()
    if users.shape != items.shape:
        raise ValueError(f"users and items differ in length: {users.size} != {items.size}")
    if users.size and (users.min() < 0 or users.max() >= num_users or items.min() < 0 or items.max() >= num_items):
        raise ValueError(f"user indices must be in [0, {num_users}) and item indices in [0, {num_items})")
    known = (users > 0) & (items > 0)
    matrix = scipy.sparse.csr_matrix((np.ones(int(known.sum()), np.float32), (users[known], items[known])),
                                     shape=(num_users, num_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # repeats of a pair count once: X is binary
    return matrix


def _gram(interactions) -> np.ndarray:
    """X^T X as float64 [num_items, num_items] (co-occurrence counts: exact)."""
    return (interactions.T @ interactions).toarray().astype(np.float64)


def _weights(gram: np.ndarray, l2: float, block: int = 1024) -> np.ndarray:
    """B [num_items, num_items] float32, C order, from X^T X (not modified): the closed form above.

    G + l2 I is symmetric positive definite, so P comes from a Cholesky factorisation (LAPACK
    potrf + potri, half the work of a general inverse) in float64: G is ill-conditioned for small
    l2. potri fills P's upper triangle only; B is assembled from it one block of rows at a time,
    so that no second float64 matrix is allocated.
    """
    from scipy.linalg import lapack

    regularized = gram.copy()
    regularized[np.diag_indices_from(regularized)] += l2
    factor, info = lapack.dpotrf(regularized, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        upper, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"X^T X + {l2} I is not positive definite (LAPACK info {info}): is l2 > 0 and finite?")
    diagonal = np.diag(upper).copy()
    weights = np.empty(upper.shape, np.float32)  # C order: scipy multiplies sparse rows by it without a copy
    for start in range(0, upper.shape[0], block):
        stop = min(start + block, upper.shape[0])
        # Row i of P: P[i, j] for j >= i from the upper triangle, P[j, i] for j < i (symmetry).
        rows = np.triu(upper[start:stop], start) + np.tril(upper[:, start:stop].T, start - 1)
        weights[start:stop] = rows / -diagonal[None, :]  # B_ij = -P_ij / P_jj
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


def pick_l2(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int, evaluator: RetrievalEvaluator,
            grid: Sequence[float] = L2_GRID) -> Tuple[float, Dict[str, float]]:
    """Fits on (users [N], items [N]) for every l2 of `grid` (X^T X computed once) and ranks with
    `evaluator`. Returns (the l2 of the best ndcg@10, the lowest on a tie; {str(l2): ndcg@10})."""
    if not grid:
        raise ValueError("the EASE l2 grid is empty")
    model = EaseModel(num_items, min(grid)).use_interactions(users, items, num_users)
    gram = _gram(model.interactions)
    found = {}
    for l2 in sorted(grid):
        model.l2, model.weights = float(l2), _weights(gram, float(l2))
        metrics = evaluator.evaluate(model.score, batch_size=EVAL_BATCH, ks=(10,))
        found[f"{float(l2):g}"] = round(float(metrics[PICK_METRIC]), 4)
    best = max(sorted(grid), key=lambda l2: found[f"{float(l2):g}"])  # max keeps the first (lowest) of ties
    return float(best), found


def fit_for_test(dataset, max_items: int = MAX_ITEMS, grid: Sequence[float] = L2_GRID
                 ) -> Tuple[Optional[EaseModel], Dict]:
    """EASE for ranking an interaction_data.Dataset's test split.

    l2 is picked on eval (fit on train; eval ranked with train's items removed), then the model is
    refit on train + eval (the benchmark's training share) with it.
    Returns (model or None when skipped, {"l2": float|None, "grid": {str(l2): eval ndcg@10},
    "skipped": None | reason}).
    """
    if dataset.num_items > max_items:
        return None, {"l2": None, "grid": {}, "skipped": f"{dataset.num_items:,} items > ease_max_items "
                                                          f"{max_items:,}: the dense item-item matrix is too large"}
    train, valid = dataset.splits["train"], dataset.splits["eval"]
    if not (valid.user != 0).any():  # e.g. eval_share 0: nothing to pick l2 on
        return None, {"l2": None, "grid": {}, "skipped": "the eval split is empty: no data to pick l2 on"}
    evaluator = split_evaluator(dataset, ("train",), "eval")
    l2, found = pick_l2(train.user, train.item, dataset.num_users, dataset.num_items, evaluator, grid)
    model = EaseModel(dataset.num_items, l2).fit(np.concatenate([train.user, valid.user]),
                                                 np.concatenate([train.item, valid.item]), dataset.num_users)
    return model, {"l2": l2, "grid": found, "skipped": None}
