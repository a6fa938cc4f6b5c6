"""Low-rank factorization of the deployed student's large matrices (the third compression
technique, beside pruning and int8: models/compression.py).

A table T [n, d] (the user and history-item embeddings) or the scoring kernel K [d, V - 1] (the
catalog's item vectors) becomes the product of two factors of rank r, from the truncated SVD
T = U S W^T:

    left = U_r sqrt(S_r) [n, r],  right = sqrt(S_r) W_r^T [r, d],  left @ right = T_r

T_r is the best rank-r approximation of T (Eckart-Young); splitting sqrt(S_r) over both factors
keeps their ranges alike, which suits their int8 quantization. In the deployed form (Keras layers,
models/deployable.py) a table is an Embedding [n, r] followed by a Dense [r, d] without bias (for
the history, before its masked mean: TF-MOT's QAT quantizes the output of the layer that feeds an
annotated Dense, and has no rule for the mean), and the kernel a Dense [d, r] followed by a Dense [r, V - 1]: standard layers that TF-MOT
prunes and quantizes and that convert to builtin TFLite ops (FULLY_CONNECTED, GATHER). The
factors are then fine-tuned with the distillation loss by the pruning stage, from the SVD's start.

A matrix is factorized only where the factors hold fewer numbers than it does (r (n + d) < n d);
the user features' small tables (at most max_feature_bins rows) are left as they are.

`rank` (CompressionConfig.rank): None (no factorization), an integer (the rank) or a share of the
student's dim in (0, 1) (rounded, at least 1).
"""

from typing import Dict, Optional, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models.compression_config import rank_of  # noqa: E402,F401  (re-exported: what a rank setting means)

UP = "_up"  # suffix of a factorized table's second factor (its Dense), after the Embedding's name
RANK = "_rank"  # suffix of the scoring kernel's first factor, before the Dense "scores"


def worth_it(rows: int, columns: int, rank: Optional[int]) -> bool:
    """Whether rank-`rank` factors of a [rows, columns] matrix hold fewer numbers than it does."""
    return rank is not None and rank * (rows + columns) < rows * columns


def svd_factors(matrix: np.ndarray, rank: int) -> Tuple[np.ndarray, np.ndarray]:
    """(left [n, r], right [r, d]) float32 with left @ right the best rank-r approximation of matrix."""
    u, s, wt = np.linalg.svd(np.asarray(matrix, np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root[None, :]).astype(np.float32), (root[:, None] * wt[:rank]).astype(np.float32)


def relative_error(matrix: np.ndarray, left: np.ndarray, right: np.ndarray) -> float:
    """||matrix - left @ right||_F / ||matrix||_F."""
    matrix = np.asarray(matrix, np.float64)
    return float(np.linalg.norm(matrix - left.astype(np.float64) @ right) / max(np.linalg.norm(matrix), 1e-12))


class Table:
    """An embedding table [n, d] in the deployed form: an Embedding, followed by a Dense [r, d]
    (no bias) when factorized. `embed(indices)` gives the Embedding's vectors ([.., r] or [.., d]),
    `up(vectors)` maps them to [.., d] (the identity when not factorized)."""

    def __init__(self, table: np.ndarray, name: str, rank: Optional[int]):
        self.table = np.asarray(table, np.float32)
        rows, dim = self.table.shape
        self.rank = rank if worth_it(rows, dim, rank) else None
        self.embedding = tf.keras.layers.Embedding(rows, self.rank or dim, name=name)
        self.dense = tf.keras.layers.Dense(dim, use_bias=False, name=name + UP) if self.rank else None

    def embed(self, indices):
        return self.embedding(indices)

    def up(self, vectors):
        return self.dense(vectors) if self.dense is not None else vectors

    def set_weights(self) -> Dict[str, float]:
        """Fills the layers (after the model is built); {"rank", "relative_error"} when factorized."""
        if self.dense is None:
            self.embedding.set_weights([self.table])
            return {}
        left, right = svd_factors(self.table, self.rank)
        self.embedding.set_weights([left])
        self.dense.set_weights([right])
        return {"rank": self.rank, "relative_error": round(relative_error(self.table, left, right), 4)}


class Kernel:
    """The scoring kernel [d, V - 1] in the deployed form: a Dense named `name`, preceded by a Dense
    [d, r] (no bias, named name + RANK) when factorized."""

    def __init__(self, kernel: np.ndarray, name: str, rank: Optional[int]):
        self.kernel = np.asarray(kernel, np.float32)
        dim, columns = self.kernel.shape
        self.rank = rank if worth_it(dim, columns, rank) else None
        self.down = tf.keras.layers.Dense(self.rank, use_bias=False, name=name + RANK) if self.rank else None
        self.scores = tf.keras.layers.Dense(columns, use_bias=False, name=name)

    def __call__(self, query):
        return self.scores(self.down(query) if self.down is not None else query)

    def set_weights(self) -> Dict[str, float]:
        if self.down is None:
            self.scores.set_weights([self.kernel])
            return {}
        left, right = svd_factors(self.kernel, self.rank)
        self.down.set_weights([left])
        self.scores.set_weights([right])
        return {"rank": self.rank, "relative_error": round(relative_error(self.kernel, left, right), 4)}


def effective_kernel(weights: Dict[str, np.ndarray], name: str = "scores") -> np.ndarray:
    """[d, V - 1]: the scoring kernel of a deployed scorer's {variable name: value}, its two factors
    multiplied when factorized."""
    kernel = weights[f"{name}/kernel:0"]
    down = weights.get(f"{name}{RANK}/kernel:0")
    return kernel if down is None else down @ kernel


def rank_in(weights: Dict[str, np.ndarray]) -> Optional[int]:
    """The compression's rank in a deployed scorer's factors ({variable name: value}): the history
    table's or the scoring kernel's, None when neither is factorized. The user table's factors are
    not read: a student trained with user_rank keeps them at its own rank whatever the compression's
    (models/deployable.py build)."""
    for name, value in weights.items():
        if name.endswith(f"history_items{UP}/kernel:0"):
            return int(value.shape[0])
        if name.endswith(f"scores{RANK}/kernel:0"):
            return int(value.shape[1])
    return None
