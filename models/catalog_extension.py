"""New catalog items in a deployed (pruned, QAT) student without retraining (`recdistill add-items`).

The deployed form scores item j + 1 with column j of its scoring Dense (models/deployable.py). A
new item is a new column at the end: old items keep their indices and columns, and every other
weight (query tower, quantization ranges) stays as it is, so old items' scores do not move.

New item i's column is the KD student's candidate tower on its features, without an id term:

    c_i = s * sum_f E_f[feature_f(i)]        (CandidateTower.call is E_item[index] + that sum)

- No id term. A new item has no trained id vector, and index 0, the tower's "unknown" id, has
  none either: index 0 is masked out of the history mean and its logit out of the softmax, so it
  never gets a gradient and E_item[0] keeps its random initial value (norm 0.18 on
  MovieLens-100K, trained items 0.37). Adding it would put one noise vector into every new item;
  zero is what an untrained id vector is in expectation. Measured on MovieLens-100K (100 catalog
  movies' features under new ids): with E_item[0] the best-placed new item of a user ranks 107th
  in the median, without it 99th (float scores).
- s: compression fine-tuned the kernel (pruning and QAT, pulled towards the uncompressed
  student's scores), which also rescaled it: s is the least-squares scale of the deployed kernel
  on the KD student's item vectors over the student's own catalog (1.12 on MovieLens-100K,
  correlation 0.97), so new columns compete on the footing old ones now have (unscaled, the
  median best rank above is 112th instead of 99th).
- Pruning: the new block is pruned by magnitude to the zero share of the deployed kernel (35% by
  default), TF-MOT's per-layer rule, so the layer's sparsity and the int8 file's zeros stay. It
  moves new items' scores little: mean change 0.006 against a spread (std) of 0.053, correlation
  0.992 with the unpruned columns, the median best rank unchanged.
- Factorization (models/factorization.py): a factorized kernel is A [dim, r] B [r, V - 1]; a new
  item's column of B is the least-squares b with A b = s c_i (its column projected on A's span,
  the rank-r part the deployed model can express), pruned and quantized as above.
- Quantization: the kernel's fake-quant range (per tensor, symmetric) and the output range are
  kept: old columns quantize to the same int8 values. A new value outside the kernel's range is
  clipped by it, as every weight is (`clipped` counts them).
"""

from typing import Dict, Mapping, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from models import compression, deployable, factorization, recency_prior  # noqa: E402
from models import student as student_lib  # noqa: E402

KERNEL = "scores/kernel:0"  # the scoring Dense's kernel among the deployed scorer's variables
DOWN = "scores" + factorization.RANK + "/kernel:0"  # its first factor, when factorized
_RANGE = ("quant_scores/kernel_min:0", "quant_scores/kernel_max:0")


def scorer_weights(saved_model) -> Dict[str, np.ndarray]:
    """{variable name: value} of a loaded TF Serving SavedModel's scorer (models/serving_export.py)."""
    return {variable.name: variable.numpy() for variable in saved_model.scorer.variables}


def scored_items(weights: Mapping[str, np.ndarray]) -> int:
    """How many items a deployed scorer's weights score: its kernel's columns, every block of a
    mixed-dimension kernel (models/factorization.py) counted."""
    return int(factorization.effective_kernel(weights).shape[1])


def item_vectors(kd: student_lib.StudentModel, item_tables: Mapping[str, np.ndarray]) -> np.ndarray:
    """[n, dim]: the candidate tower's feature part for n items.

    item_tables: {item feature: int64 [n] or [n, values]}, Transform's outputs as in
    models/feature_tables.py (hashing into the tower's bins is the tower's own)."""
    tower = kd.candidate_tower
    missing = sorted(set(tower.feature_names) - set(item_tables))
    if missing:
        raise ValueError(f"no values for the candidate tower's feature(s) {', '.join(missing)}")
    count = len(next(iter(item_tables.values()))) if item_tables else 0
    if not tower.feature_names:
        return np.zeros([count, kd.config.dim], np.float32)
    overrides = {name: tf.constant(item_tables[name], tf.int64) for name in tower.feature_names}
    return np.asarray(tower.features(tf.zeros([count], tf.int64), overrides), np.float32)


def kernel_scale(kernel: np.ndarray, kd: student_lib.StudentModel) -> float:
    """Least-squares s in kernel ~ s * (the KD student's item vectors), over the trained catalog."""
    trained = np.asarray(kd.all_items(), np.float64)[1:].T  # [dim, V - 1]
    deployed = np.asarray(kernel[:, :trained.shape[1]], np.float64)
    return float(np.sum(deployed * trained) / max(np.sum(trained * trained), 1e-12))


def prune_to(columns: np.ndarray, zero_share: float) -> np.ndarray:
    """The columns with their smallest-magnitude `zero_share` of entries set to zero."""
    count = int(round(zero_share * columns.size))
    flat = columns.astype(np.float32).ravel()
    flat[np.argsort(np.abs(flat), kind="stable")[:count]] = 0.0
    return flat.reshape(columns.shape)


def extend(kd: student_lib.StudentModel, weights: Mapping[str, np.ndarray],
           vectors: np.ndarray) -> Tuple[Dict[str, np.ndarray], Dict]:
    """The deployed scorer's weights with one column per new item appended; and what was done.

    weights: scorer_weights(...) of the latest version; vectors: [n, dim] item_vectors(...). A
    factorized scoring kernel (models/factorization.py: K = A B, A [dim, r] the query's side) gets
    new columns of B: the least-squares b with A b = the item's column."""
    kernel = weights[KERNEL]
    scale = kernel_scale(factorization.effective_kernel(weights), kd)
    zero_share = float(np.mean(kernel == 0))
    columns = scale * vectors.T
    down = weights.get(DOWN)
    if down is not None:
        columns = np.linalg.lstsq(down.astype(np.float64), columns.astype(np.float64), rcond=None)[0]
    columns = prune_to(columns, zero_share)
    limit = max(abs(float(weights[name])) for name in _RANGE)
    extended = dict(weights)
    extended[KERNEL] = np.concatenate([kernel, columns], axis=1)
    if recency_prior.VARIABLE in weights:  # a new item has no interactions yet: log(1 + 0)
        prior = weights[recency_prior.VARIABLE]  # [known, cold] x items
        extended[recency_prior.VARIABLE] = np.concatenate([prior, np.zeros([len(prior), len(vectors)])], axis=1)
    return extended, {"kernel_scale": round(scale, 4), "zero_share": round(zero_share, 4),
                      "clipped": int(np.sum(np.abs(columns) > limit))}


def deployed_like(kd: student_lib.StudentModel, weights: Mapping[str, np.ndarray]) -> tf.keras.Model:
    """The deployed form (before QAT) with the structure of a compressed model's `weights`: each
    matrix factorized, and split into blocks, as they are."""
    return deployable.build(kd, kernel=factorization.effective_kernel(weights), rank=factorization.rank_in(weights),
                            full_rank_items=factorization.full_rank_items_in(weights),
                            user_table_rank=factorization.user_rank_in(weights))


def quantized_scorer(kd: student_lib.StudentModel, weights: Mapping[str, np.ndarray]) -> tf.keras.Model:
    """The deployed QAT model (models/compression.py's structure) holding `weights`, by name.

    The structure comes from the same code that compressed the student (quantize_aware, with no
    training epochs), so its variables are named as the saved ones; any difference is an error."""
    quantized, _ = compression.quantize_aware(deployed_like(kd, weights), {}, None, None, kd.config,
                                              compression.CompressionConfig(qat_epochs=0))
    # the recency prior, when the compressed model has one (models/recency_prior.py)
    prior = weights.get(recency_prior.VARIABLE)
    quantized = recency_prior.with_prior(quantized, prior)
    names = {w.name for w in quantized.weights}
    if names != set(weights):
        raise ValueError(f"the deployed model's variables do not match the compressed structure: "
                         f"saved only {sorted(set(weights) - names)}, rebuilt only {sorted(names - set(weights))}")
    tf.keras.backend.batch_set_value([(w, weights[w.name]) for w in quantized.weights])
    return quantized
