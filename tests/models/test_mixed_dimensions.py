"""Mixed dimensions (models/factorization.py, CompressionConfig.full_rank_items): the most frequent
items' history rows and scoring columns kept whole, the rest factorized. Checked against numpy
(the blocks and the tail's truncated SVD), the int8 TFLite model against the Keras model, and
add-items on a mixed-dimension kernel."""

import dataclasses

import numpy as np
import pytest

from models import catalog_extension, compression, deployable, factorization, mobile_export
from models.foundation.tflite_runner import TFLiteRanker
from tests.models.test_compression import FAST, _scores, trained  # noqa: F401  (the module's fixture)
from tests.models.test_student import rows_for

RANK, FULL = 2, 3  # the toy catalog's first 3 items whole, the others at rank 2


def _truncated(matrix: np.ndarray, rank: int) -> np.ndarray:
    u, s, wt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ wt[:rank]


def test_the_full_rank_items_setting_is_a_share_of_the_catalog_or_a_count():
    assert factorization.full_rank_items_of(0, 100) == 0
    assert factorization.full_rank_items_of(0.25, 100) == 25 and factorization.full_rank_items_of(0.333, 10) == 3
    assert factorization.full_rank_items_of(30, 100) == 30 and factorization.full_rank_items_of(300, 100) == 100
    # a float is a share up to 1.0 (the whole catalog, not one item); a whole float above it a count
    assert factorization.full_rank_items_of(1.0, 100) == 100 and factorization.full_rank_items_of(1, 100) == 1
    assert factorization.full_rank_items_of(40.0, 100) == 40
    for bad in (-1, 1.5, "0.2", True, float("nan")):
        with pytest.raises(ValueError):
            factorization.full_rank_items_of(bad, 100)
    with pytest.raises(ValueError):
        compression.CompressionConfig(full_rank_items=-0.5)


def test_the_coverage_floor_counts_the_most_frequent_items_that_hold_the_share():
    from models.compression_config import items_covering

    counts = np.array([50, 20, 10, 10, 5, 5])  # in index order, most frequent first: 100 in all
    # by hand: the first item holds 50%, two 70%, three 80%, four 90%, five 95%
    assert [items_covering(counts, c) for c in (0.0, 0.5, 0.51, 0.7, 0.8, 0.9, 0.91, 0.95, 1.0)] == \
        [0, 1, 2, 2, 3, 4, 5, 5, 6]
    assert items_covering(np.zeros(4), 0.9) == 0  # no interactions: no floor
    # the same count as numpy's cumulative shares give, on a long-tailed catalog
    rng = np.random.default_rng(0)
    zipf = np.sort(rng.zipf(1.5, 500))[::-1]
    assert items_covering(zipf, 0.9) == int(np.argmax(np.cumsum(zipf) >= 0.9 * zipf.sum())) + 1
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError):
            compression.CompressionConfig(full_rank_coverage=bad)


def test_the_first_items_stay_whole_and_the_rest_is_the_truncated_svd(trained):  # noqa: F811
    toy, model, latest = trained
    mixed = deployable.build(model, rank=RANK, full_rank_items=FULL)
    weights = {w.name: w.numpy() for w in mixed.weights}
    history = model.query_tower.history_embedding.get_weights()[0]  # [V, d]: row 0 unknown, then items
    kernel = np.asarray(model.all_items())[1:].T  # [d, V - 1]: column j scores item j + 1
    # the head: row 0 and the first FULL items' rows, the first FULL columns, exactly as trained
    np.testing.assert_array_equal(weights["history_items_head/embeddings:0"], history[:FULL + 1])
    np.testing.assert_array_equal(weights["scores_head/kernel:0"], kernel[:, :FULL])
    # the tail: numpy's rank-2 reconstruction of the remaining rows / columns
    np.testing.assert_allclose(weights["history_items/embeddings:0"] @ weights["history_items_up/kernel:0"],
                               _truncated(history[FULL + 1:], RANK), atol=1e-5)
    tail = weights["scores_rank/kernel:0"] @ weights["scores/kernel:0"]
    np.testing.assert_allclose(tail, _truncated(kernel[:, FULL:], RANK), atol=1e-5)
    np.testing.assert_allclose(factorization.effective_kernel(weights), np.concatenate([kernel[:, :FULL], tail], 1))
    assert mixed.factorization["scores"]["full_rank_columns"] == FULL
    assert mixed.factorization["history_items"]["full_rank_rows"] == FULL + 1
    assert factorization.full_rank_items_in(weights) == FULL and factorization.rank_in(weights) == RANK
    # relative error over the whole matrix: only the tail's dropped part counts
    expected = np.linalg.norm(kernel[:, FULL:] - _truncated(kernel[:, FULL:], RANK)) / np.linalg.norm(kernel)
    assert mixed.factorization["scores"]["relative_error"] == pytest.approx(expected, abs=1e-4)
    # the scores: the unfactorized form holding the blocks' matrices (each index picks its block)
    users = np.arange(toy.num_users)
    plain = deployable.build(model, kernel=factorization.effective_kernel(weights))
    plain.get_layer("user_id").set_weights([weights["user_id/embeddings:0"] @ weights["user_id_up/kernel:0"]])
    plain.get_layer("history_items").set_weights([np.concatenate(
        [history[:FULL + 1], weights["history_items/embeddings:0"] @ weights["history_items_up/kernel:0"]])])
    np.testing.assert_allclose(_scores(mixed, model, users, latest)[:, 1:],
                               _scores(plain, model, users, latest)[:, 1:], atol=1e-4)


@pytest.mark.parametrize("rank, full", [(RANK, 10 ** 6), (RANK, FULL), (RANK, 0), (None, 0)])
def test_the_deployed_structure_is_read_back_from_its_weights(trained, rank, full):  # noqa: F811
    """add-items rebuilds the compressed model's structure from its saved weights alone
    (catalog_extension.deployed_like): every variable's name and shape again, also where the item
    matrices were left whole (every item whole) while the user table was factorized."""
    toy, model, latest = trained
    deployed = deployable.build(model, rank=rank, full_rank_items=full)
    weights = {w.name: w.numpy() for w in deployed.weights}
    rebuilt = catalog_extension.deployed_like(model, weights)
    assert {w.name: tuple(w.shape) for w in rebuilt.weights} == {k: v.shape for k, v in weights.items()}
    if rank and full >= toy.num_items:  # only the user table is factorized
        assert "user_id_up/kernel:0" in weights and factorization.rank_in(weights) is None


@pytest.mark.slow  # prunes, QAT, converts to int8, extends (about 15 s here)
def test_the_mixed_int8_tflite_model_answers_as_the_keras_model_and_takes_new_items(trained, tmp_path):  # noqa: F811
    toy, model, latest = trained
    bins, rows = deployable.feature_bins(model), rows_for(toy)
    pruned, log = compression.prune(deployable.build(model, rank=RANK, full_rank_items=FULL), bins, rows, latest,
                                    model.config, FAST)
    assert log["sparsity"]["history_items_head"] > 0 and log["sparsity"]["scores_head"] > 0
    quantized, _ = compression.quantize_aware(pruned, bins, rows, latest, model.config,
                                              dataclasses.replace(FAST, qat_epochs=1))
    path = tmp_path / "model.tflite"
    path.write_bytes(mobile_export.convert(quantized, bins, model.config.history, int8=True, num_users=toy.num_users))
    ranker = TFLiteRanker(str(path), full_scores=True)
    users = np.arange(toy.num_users)
    keras = _scores(quantized, model, users, latest)
    lite = np.stack([ranker.all_scores(int(u), latest[u]) for u in users])
    np.testing.assert_allclose(lite[:, 1:], keras[:, 1:], atol=0.05 * np.abs(keras[:, 1:]).max())
    # add-items: new columns go to the factorized block (the catalog's end); old scores do not move
    weights = {w.name: w.numpy() for w in quantized.weights}
    vectors = np.random.default_rng(1).normal(size=(2, model.config.dim)).astype(np.float32)
    extended, _ = catalog_extension.extend(model, weights, vectors)
    assert extended["scores_head/kernel:0"].shape == weights["scores_head/kernel:0"].shape
    rebuilt = catalog_extension.quantized_scorer(model, extended)
    after = _scores(rebuilt, model, users, latest)
    assert after.shape[1] == keras.shape[1] + 2
    np.testing.assert_allclose(after[:, :-2], keras, atol=1e-5)
    # a history may hold an added item (the app shows it once it is pushed), which the history table
    # has no row for: it counts as padding, as an unknown id does in the SavedModel's lookup (it was
    # an out-of-range gather: InvalidArgument in TensorFlow, an error in LiteRT)
    new_item, known = keras.shape[1], latest.copy()
    holding, padded = known.copy(), known.copy()
    holding[:, -1], padded[:, -1] = new_item, 0
    np.testing.assert_allclose(_scores(rebuilt, model, users, holding), _scores(rebuilt, model, users, padded),
                               atol=1e-6)
    path.write_bytes(mobile_export.convert(rebuilt, bins, model.config.history, int8=True, num_users=toy.num_users))
    ranker = TFLiteRanker(str(path), full_scores=True)
    for user in users[:5]:
        np.testing.assert_array_equal(ranker.all_scores(int(user), holding[user]),
                                      ranker.all_scores(int(user), padded[user]))


@pytest.mark.slow  # prunes, QAT, converts to int8 (about 8 s here)
def test_each_blocks_join_keeps_one_range_that_holds_both_blocks(trained, tmp_path):  # noqa: F811
    """The int8 model joins a matrix's blocks in ops with one scale (SELECT_V2 for a table's rows,
    CONCATENATION for the kernel's scores): the range given to them must hold both blocks. At 99%
    zeros the factorized history block gave only zeros on the calibration histories, and the range
    the select got (1e-6 wide) flattened the whole block's vectors and failed XNNPACK's preparation."""
    toy, model, latest = trained
    bins, rows = deployable.feature_bins(model), rows_for(toy)
    extreme = dataclasses.replace(FAST, target_sparsity=0.99, dense_sparsity=0.99, qat_epochs=1)
    for config in (FAST, extreme):
        pruned, _ = compression.prune(deployable.build(model, rank=RANK, full_rank_items=FULL), bins, rows, latest,
                                      model.config, config)
        quantized, _ = compression.quantize_aware(pruned, bins, rows, latest, model.config, config)
        weights = {w.name: w.numpy() for w in quantized.weights}
        head = weights["quant_history_items_head/embeddings:0"]
        low, high = (float(weights[f"quant_history_items_up/post_activation_{end}:0"]) for end in ("min", "max"))
        assert low <= head.min() and high >= head.max()
        assert [float(weights[f"quant_scores_head/post_activation_{end}:0"]) for end in ("min", "max")] == \
            [float(weights[f"quant_scores/post_activation_{end}:0"]) for end in ("min", "max")]
        path = tmp_path / "model.tflite"
        path.write_bytes(mobile_export.convert(quantized, bins, model.config.history, int8=True,
                                               num_users=toy.num_users))
        ranker = TFLiteRanker(str(path), full_scores=True)  # XNNPACK prepares every node here
        users = np.arange(toy.num_users)
        keras = _scores(quantized, model, users, latest)
        lite = np.stack([ranker.all_scores(int(u), latest[u]) for u in users])
        np.testing.assert_allclose(lite[:, 1:], keras[:, 1:], atol=0.05 * np.abs(keras[:, 1:]).max())
