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

Mixed dimensions (`full_rank_items`, after arXiv 1909.11810): the item vocabulary lists the most
frequent items first, and those carry most of what a user does next (the first quarter of
MovieLens-100K's catalog holds 71% of its test interactions), so the first rows of the history
table and the first columns of the kernel can be kept whole while only the rest is factorized.
A table's two blocks are looked up apiece (RowBlock sends an index outside a block to its row 0)
and PickBlock takes each index's vector from its own block; the kernel's blocks score the query
apiece and their scores are concatenated. Builtin TFLite ops again (GATHER, SELECT_V2,
CONCATENATION).

`rank` (CompressionConfig.rank): None (no factorization), an integer (the rank) or a share of the
student's dim in (0, 1) (rounded, at least 1).
"""

from typing import Dict, Optional, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models.compression_config import full_rank_items_of, rank_of  # noqa: E402,F401  (re-exported: what the settings mean)

UP = "_up"  # suffix of a factorized table's second factor (its Dense), after the Embedding's name
RANK = "_rank"  # suffix of the scoring kernel's first factor, before the Dense "scores"
HEAD = "_head"  # suffix of a mixed-dimension matrix's block kept whole (the most frequent items)


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


def _block_error(matrix: np.ndarray, full: int, left: np.ndarray, right: np.ndarray, axis: int) -> float:
    """relative_error of a matrix whose first `full` rows (axis 0) or columns (axis 1) are kept whole
    and the rest is left @ right."""
    matrix = np.asarray(matrix, np.float64)
    rest = matrix[full:] if axis == 0 else matrix[:, full:]
    return float(np.linalg.norm(rest - left.astype(np.float64) @ right) / max(np.linalg.norm(matrix), 1e-12))


@tf.keras.utils.register_keras_serializable(package="recdistill")
class RowBlock(tf.keras.layers.Layer):
    """Indices -> their row in the block [start, stop) of a table split by rows (stop None: to the
    end), 0 for an index outside it (its row is gathered and then not picked: PickBlock)."""

    def __init__(self, start: int, stop: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), None if stop is None else int(stop)

    def call(self, indices):
        inside = indices >= self.start
        if self.stop is not None:
            inside = tf.logical_and(inside, indices < self.stop)
        return tf.where(inside, indices - self.start, tf.zeros_like(indices))

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@tf.keras.utils.register_keras_serializable(package="recdistill")
class PickBlock(tf.keras.layers.Layer):
    """[head vectors [.., d], tail vectors [.., d], indices [..]] -> the head's vector where the
    index is below `boundary`, the tail's elsewhere."""

    def __init__(self, boundary: int, **kwargs):
        super().__init__(**kwargs)
        self.boundary = int(boundary)

    def call(self, inputs):
        head, tail, indices = inputs
        return tf.where((indices < self.boundary)[..., None], head, tail)

    def get_config(self):
        return {**super().get_config(), "boundary": self.boundary}


CUSTOM_LAYERS = {"RowBlock": RowBlock, "PickBlock": PickBlock}


class Table:
    """An embedding table [n, d] in the deployed form: an Embedding, followed by a Dense [r, d]
    (no bias) when factorized. With `full_rows` (mixed dimensions: the first rows, the most frequent
    items, kept whole) only the rows after them are factorized: an Embedding [full_rows, d] named
    name + HEAD holds the first, and `lookup` picks each index's vector from its block."""

    def __init__(self, table: np.ndarray, name: str, rank: Optional[int], full_rows: int = 0):
        self.table, self.name = np.asarray(table, np.float32), name
        rows, dim = self.table.shape
        full_rows = min(max(int(full_rows), 0), rows)
        self.rank = rank if worth_it(rows - full_rows, dim, rank) else None
        self.full_rows = full_rows if self.rank else 0
        self.embedding = tf.keras.layers.Embedding(rows - self.full_rows, self.rank or dim, name=name)
        self.dense = tf.keras.layers.Dense(dim, use_bias=False, name=name + UP) if self.rank else None
        self.head = tf.keras.layers.Embedding(self.full_rows, dim, name=name + HEAD) if self.full_rows else None

    def lookup(self, indices):
        """[..] int64 indices -> [.., d] vectors."""
        if self.head is None:
            vectors = self.embedding(indices)
            return self.dense(vectors) if self.dense is not None else vectors
        n = self.full_rows
        head = self.head(RowBlock(0, n, name=self.name + HEAD + "_rows")(indices))
        tail = self.dense(self.embedding(RowBlock(n, name=self.name + "_rows")(indices)))
        return PickBlock(n, name=self.name + "_blocks")([head, tail, indices])

    def set_weights(self) -> Dict[str, float]:
        """Fills the layers (after the model is built); {"rank", "relative_error"} when factorized
        (and "full_rank_rows" with mixed dimensions)."""
        if self.dense is None:
            self.embedding.set_weights([self.table])
            return {}
        n = self.full_rows
        left, right = svd_factors(self.table[n:], self.rank)
        self.embedding.set_weights([left])
        self.dense.set_weights([right])
        found = {"rank": self.rank, "relative_error": round(_block_error(self.table, n, left, right, 0), 4)}
        if self.head is not None:
            self.head.set_weights([self.table[:n]])
            found["full_rank_rows"] = n
        return found


class Kernel:
    """The scoring kernel [d, V - 1] in the deployed form: a Dense named `name`, preceded by a Dense
    [d, r] (no bias, named name + RANK) when factorized. With `full_columns` (mixed dimensions) only
    the columns after the first `full_columns` (the most frequent items) are factorized: a Dense
    name + HEAD scores the first, and the two blocks' scores are concatenated. New items (add-items)
    are columns appended to the Dense `name`."""

    def __init__(self, kernel: np.ndarray, name: str, rank: Optional[int], full_columns: int = 0):
        self.kernel, self.name = np.asarray(kernel, np.float32), name
        dim, columns = self.kernel.shape
        full_columns = min(max(int(full_columns), 0), columns)
        self.rank = rank if worth_it(dim, columns - full_columns, rank) else None
        self.full_columns = full_columns if self.rank else 0
        self.down = tf.keras.layers.Dense(self.rank, use_bias=False, name=name + RANK) if self.rank else None
        self.scores = tf.keras.layers.Dense(columns - self.full_columns, use_bias=False, name=name)
        self.head = tf.keras.layers.Dense(self.full_columns, use_bias=False, name=name + HEAD) \
            if self.full_columns else None

    def __call__(self, query):
        tail = self.scores(self.down(query) if self.down is not None else query)
        if self.head is None:
            return tail
        return tf.keras.layers.Concatenate(axis=-1, name=self.name + "_blocks")([self.head(query), tail])

    def set_weights(self) -> Dict[str, float]:
        if self.down is None:
            self.scores.set_weights([self.kernel])
            return {}
        n = self.full_columns
        left, right = svd_factors(self.kernel[:, n:], self.rank)
        self.down.set_weights([left])
        self.scores.set_weights([right])
        found = {"rank": self.rank, "relative_error": round(_block_error(self.kernel, n, left, right, 1), 4)}
        if self.head is not None:
            self.head.set_weights([self.kernel[:, :n]])
            found["full_rank_columns"] = n
        return found


def effective_kernel(weights: Dict[str, np.ndarray], name: str = "scores") -> np.ndarray:
    """[d, V - 1]: the scoring kernel of a deployed scorer's {variable name: value}, its two factors
    multiplied when factorized."""
    kernel = weights[f"{name}/kernel:0"]
    down = weights.get(f"{name}{RANK}/kernel:0")
    kernel = kernel if down is None else down @ kernel
    head = weights.get(f"{name}{HEAD}/kernel:0")
    return kernel if head is None else np.concatenate([head, kernel], axis=1)


def _dimension(weights: Dict[str, np.ndarray], suffix: str, axis: int) -> Optional[int]:
    """The `axis` size of the first variable whose name ends with `suffix` (None: there is none);
    the names may carry the QAT wrapper's prefix."""
    found = next((value for name, value in weights.items() if name.endswith(suffix)), None)
    return None if found is None else int(found.shape[axis])


def full_rank_items_in(weights: Dict[str, np.ndarray]) -> int:
    """How many of the most frequent items a deployed scorer's factorized kernel keeps whole (0: none)."""
    return _dimension(weights, f"scores{HEAD}/kernel:0", 1) or 0


def rank_in(weights: Dict[str, np.ndarray]) -> Optional[int]:
    """The compression's rank in a deployed scorer's item factors ({variable name: value}): the
    history table's or the scoring kernel's, None when neither is factorized (user_rank_in reads the
    user table's, which may be factorized alone, or at a rank of its own: a student trained with
    user_rank keeps its factors at the smaller of the two ranks, models/deployable.py build)."""
    history = _dimension(weights, f"history_items{UP}/kernel:0", 0)
    return history if history is not None else _dimension(weights, f"scores{RANK}/kernel:0", 1)


def user_rank_in(weights: Dict[str, np.ndarray]) -> Optional[int]:
    """The rank of a deployed scorer's user table factors, None when the table is whole."""
    return _dimension(weights, f"user_id{UP}/kernel:0", 0)
