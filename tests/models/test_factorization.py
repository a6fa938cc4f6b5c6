"""Low-rank factorization of the deployed student (models/factorization.py, models/deployable.py):
the factors against numpy's SVD, the factorized deployed form against the reconstructed matrices,
and its int8 TFLite model against the Keras model."""

import dataclasses

import numpy as np
import pytest

from models import catalog_extension, compression, deployable, factorization, mobile_export
from models.foundation.tflite_runner import TFLiteRanker
from tests.models.test_compression import FAST, _scores, trained  # noqa: F401  (the module's fixture)
from tests.models.test_student import rows_for


def test_the_rank_setting_is_none_an_integer_or_a_share_of_dim():
    assert factorization.rank_of(None, 32) is None
    assert factorization.rank_of(8, 32) == 8 and factorization.rank_of(8.0, 32) == 8
    assert factorization.rank_of(0.25, 32) == 8 and factorization.rank_of(0.01, 32) == 1
    for bad in (0, -2, 1.5, "8", True):
        with pytest.raises(ValueError):
            factorization.rank_of(bad, 32)
    # factors are used only where they hold fewer numbers: 4 (100 + 8) < 800, 7 (10 + 8) > 80
    assert factorization.worth_it(100, 8, 4) and not factorization.worth_it(10, 8, 7)
    assert not factorization.worth_it(100, 8, None)


def test_the_factors_multiply_to_the_truncated_svd():
    matrix = np.random.default_rng(0).normal(size=(40, 12))
    left, right = factorization.svd_factors(matrix, 5)
    assert left.shape == (40, 5) and right.shape == (5, 12)
    # numpy's reconstruction, independently: U_r diag(S_r) W_r^T
    u, s, wt = np.linalg.svd(matrix, full_matrices=False)
    np.testing.assert_allclose(left @ right, (u[:, :5] * s[:5]) @ wt[:5], atol=1e-5)
    # balanced: both factors carry sqrt(S) (their column / row norms are equal)
    np.testing.assert_allclose(np.linalg.norm(left, axis=0), np.linalg.norm(right, axis=1), rtol=1e-5)
    expected = np.sqrt(np.sum(s[5:] ** 2) / np.sum(s ** 2))  # Eckart-Young: the dropped singular values
    assert factorization.relative_error(matrix, left, right) == pytest.approx(expected, rel=1e-4)
    full_left, full_right = factorization.svd_factors(matrix, 12)
    np.testing.assert_allclose(full_left @ full_right, matrix, atol=1e-5)


def test_the_factorized_deployed_form_scores_with_the_reconstructed_matrices(trained):  # noqa: F811
    toy, model, latest = trained
    rank = 3
    users = np.arange(toy.num_users)
    factorized = deployable.build(model, rank=rank)
    weights = {w.name: w.numpy() for w in factorized.weights}
    # every factor pair multiplies to numpy's rank-3 reconstruction of the student's matrix
    tower = model.query_tower
    originals = {"user_id": tower.id_embedding.get_weights()[0],
                 "history_items": tower.history_embedding.get_weights()[0],
                 "scores": np.asarray(model.all_items())[1:].T}
    products = {"user_id": weights["user_id/embeddings:0"] @ weights["user_id_up/kernel:0"],
                "history_items": weights["history_items/embeddings:0"] @ weights["history_items_up/kernel:0"],
                "scores": weights["scores_rank/kernel:0"] @ weights["scores/kernel:0"]}
    for name, original in originals.items():
        u, s, wt = np.linalg.svd(original.astype(np.float64), full_matrices=False)
        np.testing.assert_allclose(products[name], (u[:, :rank] * s[:rank]) @ wt[:rank], atol=1e-5)
        assert factorized.factorization[name]["rank"] == rank
    np.testing.assert_allclose(factorization.effective_kernel(weights), products["scores"])
    # the scores: the unfactorized form with the reconstructed matrices in place of the student's
    reconstructed = deployable.build(model, kernel=products["scores"])
    reconstructed.get_layer("user_id").set_weights([products["user_id"]])
    reconstructed.get_layer("history_items").set_weights([products["history_items"]])
    np.testing.assert_allclose(_scores(factorized, model, users, latest)[:, 1:],
                               _scores(reconstructed, model, users, latest)[:, 1:], atol=1e-4)
    # a rank the matrices cannot use leaves the deployed form as it was
    whole = deployable.build(model, rank=model.config.dim)
    assert whole.factorization == {} and [w.name for w in whole.weights] == [w.name for w in deployable.build(model).weights]


@pytest.mark.slow  # prunes, QAT, converts to int8 (about 10 s here)
def test_the_factorized_int8_tflite_model_answers_as_the_keras_model(trained, tmp_path):  # noqa: F811
    toy, model, latest = trained
    bins, rows = deployable.feature_bins(model), rows_for(toy)
    factorized = deployable.build(model, rank=3)
    pruned, log = compression.prune(factorized, bins, rows, latest, model.config, FAST)
    # the large factors are pruned; the small [r, dim] ones are not (an all-zero one fails XNNPACK)
    assert log["sparsity"]["user_id"] > 0 and log["sparsity"]["scores"] > 0
    assert log["sparsity"]["user_id_up"] == 0 and log["sparsity"]["scores_rank"] == 0
    quantized, _ = compression.quantize_aware(pruned, bins, rows, latest, model.config,
                                              dataclasses.replace(FAST, qat_epochs=1))
    path = tmp_path / "model.tflite"
    path.write_bytes(mobile_export.convert(quantized, bins, model.config.history, int8=True, num_users=toy.num_users))
    ranker = TFLiteRanker(str(path), full_scores=True)
    users = np.arange(toy.num_users)
    keras = _scores(quantized, model, users, latest)
    lite = np.stack([ranker.all_scores(int(u), latest[u]) for u in users])
    np.testing.assert_allclose(lite[:, 1:], keras[:, 1:], atol=0.05 * np.abs(keras[:, 1:]).max())
    overlap = np.mean([len(set(np.argsort(-lite[u])[:5]) & set(np.argsort(-keras[u])[:5])) / 5 for u in users])
    assert overlap >= 0.8


@pytest.mark.slow  # QAT of the factorized form (about 5 s here)
def test_add_items_extends_a_factorized_kernel_by_least_squares(trained):  # noqa: F811
    toy, model, latest = trained
    bins = deployable.feature_bins(model)
    quantized, _ = compression.quantize_aware(deployable.build(model, rank=3), bins, rows_for(toy), latest,
                                              model.config, dataclasses.replace(FAST, qat_epochs=0))
    weights = {w.name: w.numpy() for w in quantized.weights}
    assert factorization.rank_in(weights) == 3
    vectors = np.random.default_rng(1).normal(size=(2, model.config.dim)).astype(np.float32)
    extended, log = catalog_extension.extend(model, weights, vectors)
    down = weights[catalog_extension.DOWN]
    new = extended[catalog_extension.KERNEL][:, -2:]
    # A b: the new items' scaled vectors projected on A's column space (numpy's pseudo-inverse);
    # nothing is pruned here (the kernel has no zeros), so b is the least-squares solution itself
    target = log["kernel_scale"] * vectors.T
    np.testing.assert_allclose(down @ new, down @ np.linalg.pinv(down) @ target, atol=1e-4)
    rebuilt = catalog_extension.quantized_scorer(model, extended)
    users = np.arange(toy.num_users)
    before, after = _scores(quantized, model, users, latest), _scores(rebuilt, model, users, latest)
    assert after.shape[1] == before.shape[1] + 2
    np.testing.assert_allclose(after[:, :-2], before, atol=1e-5)  # old items' scores do not move


@pytest.mark.slow  # prunes, converts to int8 (about 6 s here)
def test_at_99_percent_zeros_the_small_factors_stay_whole_and_the_int8_model_runs(trained, tmp_path):  # noqa: F811
    """A [3, 8] factor pruned to 99% keeps no weight: an all-zero int8 kernel, which XNNPACK refused
    to prepare (the weakened candidate of tests/tfx_pipeline/test_warm_e2e.py). The small factors are
    left unpruned; the large ones still reach the target."""
    toy, model, latest = trained
    bins, rows = deployable.feature_bins(model), rows_for(toy)
    extreme = dataclasses.replace(FAST, target_sparsity=0.99, dense_sparsity=0.99)
    pruned, log = compression.prune(deployable.build(model, rank=3), bins, rows, latest, model.config, extreme)
    assert log["sparsity"]["user_id"] >= 0.98 and log["sparsity"]["scores"] >= 0.98
    small = {name: pruned.get_layer(name).get_weights()[0] for name in ("user_id_up", "history_items_up", "scores_rank")}
    assert all(np.all(kernel != 0) for kernel in small.values())
    quantized, _ = compression.quantize_aware(pruned, bins, rows, latest, model.config,
                                              dataclasses.replace(extreme, qat_epochs=0))
    content = mobile_export.convert(quantized, bins, model.config.history, int8=True, num_users=toy.num_users)
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    ranker = TFLiteRanker(str(path), full_scores=True)  # XNNPACK prepares every node here
    assert np.isfinite(ranker.all_scores(1, latest[1])[1:]).all()  # index 0 is never recommended: -inf
