"""Deployed form, pruning, QAT and TFLite conversion of a tiny student (models/deployable.py,
models/compression.py, models/mobile_export.py, models/foundation/tflite_runner.py)."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

from models import artifacts, compression, deployable, mobile_export, student, student_training
from models.foundation import signatures
from models.interaction_data import histories
from models.foundation.tflite_runner import TFLiteRanker
from tests.models.test_student import TINY, rows_for, tables_for

# A zip-code-like user feature with more values than bins, so that hashing is exercised.
FAST = compression.CompressionConfig(target_sparsity=0.75, dense_sparsity=0.5, prune_epochs=3, ramp_epochs=2,
                                     qat_epochs=1, pruning_frequency=2, learning_rate=1e-2)


def _trained(toy, epochs=4):
    config = dataclasses.replace(TINY, epochs=epochs, max_feature_bins=4)
    tables = tables_for(toy)
    tables["user"]["user_zip_index"] = np.where(np.arange(toy.num_users) > 0, np.arange(toy.num_users) + 1, 0)
    tables["size"]["user_zip_index"] = toy.num_users + 1
    tf.keras.utils.set_random_seed(config.seed)
    model = student.StudentModel(toy.num_users, toy.num_items, tables, config)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    student_training.fit(model, rows_for(toy), latest, validation=None)
    return model, latest


@pytest.fixture(scope="module")
def trained():
    from tests.conftest import toy_dataset

    toy = toy_dataset()
    model, latest = _trained(toy)
    return toy, model, latest


def _scores(scorer, model, users, latest):
    bins = {k: tf.constant(v) for k, v in deployable.feature_bins(model).items()}
    return deployable.full_scores(scorer(deployable.inputs_for(bins, users, latest[users]))).numpy()


def test_deployed_form_scores_equal_the_student(trained):
    toy, model, latest = trained
    users = np.arange(toy.num_users)
    expected = model.score(tf.constant(users), tf.constant(latest[users])).numpy()
    got = _scores(deployable.build(model), model, users, latest)
    assert got.shape == (toy.num_users, toy.num_items)
    np.testing.assert_allclose(got[:, 1:], expected[:, 1:], rtol=1e-5, atol=1e-5)
    assert np.all(got[:, 0] < -1e8)  # index 0 is never recommended
    bins = deployable.feature_bins(model)["user_zip_index"]
    assert bins.max() < 4 and np.all(bins[1:] > 0) and bins[0] == 0  # hashed into 1..3, 0 kept for unknown


def test_a_user_table_trained_as_two_factors_is_deployed_as_them(tmp_path):
    from tests.conftest import toy_dataset

    toy = toy_dataset()
    config = dataclasses.replace(TINY, epochs=1, user_rank=0.25)  # a quarter of TINY's dim
    tf.keras.utils.set_random_seed(config.seed)
    model = student.StudentModel(toy.num_users, toy.num_items, tables_for(toy), config)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    student_training.fit(model, rows_for(toy), latest, validation=None)
    layer = model.query_tower.id_embedding
    rank = config.user_rank_value()
    assert np.asarray(layer.codes.embeddings).shape == (toy.num_users, rank)
    users = np.arange(toy.num_users)
    # the layer's vectors are rows of codes @ up (numpy), and table() is that product
    product = np.asarray(layer.codes.embeddings) @ np.asarray(layer.up.kernel)
    np.testing.assert_allclose(np.asarray(layer(tf.constant(users))), product, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(student.id_table(layer), product, rtol=1e-6)

    scorer = deployable.build(model)  # no compression rank: the user table keeps its two factors, exactly
    assert scorer.get_layer("user_id").get_weights()[0].shape == (toy.num_users, rank)
    assert scorer.factorization["user_id"]["relative_error"] < 1e-4 and "scores" not in scorer.factorization
    expected = model.score(tf.constant(users), tf.constant(latest[users])).numpy()
    np.testing.assert_allclose(_scores(scorer, model, users, latest)[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-4)
    # the uncompressed reference (the float TFLite model's form) stores the factors' product, same scores
    uncompressed = deployable.build(model, trained_factors=False)
    np.testing.assert_allclose(uncompressed.get_layer("user_id").get_weights()[0], product, rtol=1e-5, atol=1e-6)
    assert uncompressed.factorization == {}
    np.testing.assert_allclose(_scores(uncompressed, model, users, latest)[:, 1:], expected[:, 1:], rtol=1e-4, atol=1e-4)
    # add-items rebuilds the compressed structure from its weights: the user table's factors are the
    # student's own, not a compression rank (the items' matrices stay whole here)
    from models import catalog_extension, factorization

    quantized, _ = compression.quantize_aware(scorer, deployable.feature_bins(model), rows_for(toy), latest, config,
                                              dataclasses.replace(FAST, qat_epochs=0))
    weights = {w.name: w.numpy() for w in quantized.weights}
    assert factorization.rank_in(weights) is None
    rebuilt = catalog_extension.quantized_scorer(model, weights)
    np.testing.assert_allclose(_scores(rebuilt, model, users, latest), _scores(quantized, model, users, latest),
                               atol=1e-6)
    path = tmp_path / "float.tflite"
    path.write_bytes(mobile_export.convert(scorer, deployable.feature_bins(model), config.history, int8=False,
                                           num_users=toy.num_users))
    ranker = TFLiteRanker(str(path))
    for user in (1, 7):
        items, scores = ranker.rank(user, latest[user])
        np.testing.assert_allclose(scores, expected[user][items], rtol=1e-4, atol=1e-4)
        assert items[0] == np.argmax(expected[user][1:]) + 1 or np.isclose(scores[0], expected[user][1:].max())


def test_user_rank_settings():
    assert student.StudentConfig(dim=32, user_rank=0.25).user_rank_value() == 8
    assert student.StudentConfig(dim=32, user_rank=8).user_rank_value() == 8
    assert student.StudentConfig(dim=32, user_rank="none").user_rank_value() is None
    for bad in (32, 0, 1.5, "eight"):
        with pytest.raises(ValueError, match="user_rank"):
            student.StudentConfig(dim=32, user_rank=bad)


@pytest.mark.slow  # pruning epochs (~11 s)
def test_pruning_reaches_each_target_and_strip_removes_the_wrappers(trained):
    toy, model, latest = trained
    pruned, log = compression.prune(deployable.build(model), deployable.feature_bins(model), rows_for(toy), latest,
                                    model.config, FAST, reference=deployable.build(model))
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in pruned.layers)
    for layer in pruned.layers:
        if isinstance(layer, tf.keras.layers.Embedding) and layer.input_dim * layer.output_dim >= 100:
            share = np.mean(layer.get_weights()[0] == 0)
            assert share == pytest.approx(0.75, abs=0.02), layer.name
    kernel = pruned.get_layer("scores").get_weights()[0]
    assert np.mean(kernel == 0) == pytest.approx(0.5, abs=0.02)
    assert log["sparsity"]["scores"] == pytest.approx(np.mean(kernel == 0), abs=1e-4)
    assert len(log["loss"]) == FAST.prune_epochs


@pytest.mark.slow  # pruning, QAT and int8 conversion (~16 s)
def test_qat_keeps_the_zeros_and_converts_to_builtin_int8(trained, tmp_path):
    toy, model, latest = trained
    bins, rows = deployable.feature_bins(model), rows_for(toy)
    pruned, _ = compression.prune(deployable.build(model), bins, rows, latest, model.config, FAST)
    zeros_before = {layer.name: layer.get_weights()[0] == 0 for layer in pruned.layers if layer.weights}
    quantized, log = compression.quantize_aware(pruned, bins, rows, latest, model.config, FAST)
    for layer in quantized.layers:
        inner = getattr(layer, "layer", layer)
        if inner.name in zeros_before:
            kind = "embeddings" if isinstance(inner, tf.keras.layers.Embedding) else "kernel"
            values = [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] == kind][0].numpy()
            assert np.all(values[zeros_before[inner.name]] == 0), inner.name  # pruning survived QAT

    content = mobile_export.convert(quantized, bins, model.config.history, int8=True, num_users=toy.num_users)
    path = tmp_path / signatures.TFLITE_FILE
    path.write_bytes(content)
    ranker = TFLiteRanker(str(path), full_scores=True)
    ops = {op["op_name"] for op in ranker.interpreter._get_ops_details()}
    assert not any("FLEX" in op or "CUSTOM" in op for op in ops)  # builtin ops only
    share = mobile_export.zero_share(content)
    assert share["int8_weights"] > 0 and share["zero_share"] > 0.5  # pruned zeros stored as int8 zeros

    users = np.arange(1, toy.num_users)
    keras = _scores(quantized, model, users, latest)
    lite = np.stack([ranker.all_scores(int(u), latest[u]) for u in users])
    np.testing.assert_allclose(lite[:, 1:], keras[:, 1:], atol=0.05 * np.abs(keras[:, 1:]).max())
    for row, user in enumerate(users):  # the same best items (ties aside)
        items, scores = ranker.rank(int(user), latest[user])
        assert items[0] == np.argmax(lite[row]) or np.isclose(lite[row, items[0]], lite[row].max())


def test_tflite_signature_float_model_matches_keras_and_handles_unknown_indices(trained, tmp_path):
    toy, model, latest = trained
    scorer = deployable.build(model)
    path = tmp_path / "float.tflite"
    path.write_bytes(mobile_export.convert(scorer, deployable.feature_bins(model), model.config.history, int8=False,
                                           num_users=toy.num_users))
    ranker = TFLiteRanker(str(path))
    inputs = ranker.runner.get_input_details()
    outputs = ranker.runner.get_output_details()
    k = min(signatures.TOP_K, toy.num_items - 1)
    assert inputs[signatures.USER_INDEX]["dtype"] == np.int32 and list(inputs[signatures.USER_INDEX]["shape"]) == [1]
    assert list(inputs[signatures.HISTORY_INDICES]["shape"]) == [1, model.config.history]
    assert outputs[signatures.ITEM_INDICES]["dtype"] == np.int32 and list(outputs[signatures.ITEM_INDICES]["shape"]) == [1, k]
    assert outputs[signatures.SCORES]["dtype"] == np.float32

    for user in (1, 5, 0):
        expected = _scores(scorer, model, np.array([user]), latest)[0]
        items, scores = ranker.rank(user, latest[user])
        np.testing.assert_allclose(scores, np.sort(expected)[::-1][:k], rtol=1e-4, atol=1e-4)
        assert 0 not in items and np.allclose(expected[items], scores, atol=1e-4)
    # Indices outside the vocabularies are served as unknown, not a failed gather.
    unknown = ranker.rank(10_000, [99_999, -3])
    padded = ranker.rank(0, [])
    np.testing.assert_allclose(unknown[1], padded[1], rtol=1e-5)
    # The user feature tables are stored a byte per value (their bins fit in int8), not four.
    tables = [d for d in ranker.interpreter.get_tensor_details()
              if len(d["shape"]) and d["shape"][0] == toy.num_users and np.issubdtype(d["dtype"], np.integer)]
    assert tables and all(d["dtype"] == np.int8 for d in tables), [(d["name"], d["dtype"]) for d in tables]


def test_feature_bins_are_stored_in_the_smallest_integer_type_that_holds_them():
    assert mobile_export.compact(np.array([0, 3, 127])).dtype == np.int8
    assert mobile_export.compact(np.array([[0, 128], [5, 1]])).dtype == np.int16
    assert mobile_export.compact(np.array([0, 40_000])).dtype == np.int32
    np.testing.assert_array_equal(mobile_export.compact(np.array([0, 300, 7])), [0, 300, 7])
    assert mobile_export.compact(np.zeros((0, 2), np.int64)).dtype == np.int8
    with pytest.raises(ValueError, match="negative"):
        mobile_export.compact(np.array([-1, 2]))


@pytest.mark.slow  # trains, prunes and converts (~4 s)
def test_a_student_without_user_features_compresses_and_converts(tmp_path):
    from tests.conftest import toy_dataset

    toy = toy_dataset()
    config = dataclasses.replace(TINY, epochs=1)
    tables = tables_for(toy)
    tables["user"], tables["size"] = {}, {k: v for k, v in tables["size"].items() if not k.startswith("user")}
    model = student.StudentModel(toy.num_users, toy.num_items, tables, config)
    model.score(tf.zeros([1], tf.int64), tf.zeros([1, config.history], tf.int64))  # builds the weights
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    fast = dataclasses.replace(FAST, prune_epochs=1, ramp_epochs=1, qat_epochs=0)
    bins, rows = deployable.feature_bins(model), rows_for(toy)
    assert bins == {}
    pruned, _ = compression.prune(deployable.build(model), bins, rows, latest, config, fast)
    quantized, _ = compression.quantize_aware(pruned, bins, rows, latest, config, fast)
    path = tmp_path / signatures.TFLITE_FILE
    path.write_bytes(mobile_export.convert(quantized, bins, config.history, int8=True, num_users=toy.num_users))
    items, _ = TFLiteRanker(str(path)).rank(toy.num_users + 5, [1, 2])  # an index past the vocabulary: unknown
    assert len(items) == toy.num_items - 1 and 0 not in items


def test_the_hard_loss_leaves_items_without_interactions_out_of_its_softmax(trained):
    """An item without interactions is never a positive: in the fine-tuning's hard loss it could
    only be pushed down. Its column gets no gradient from it, and the loss is the cross-entropy over
    the other items (numpy)."""
    toy, model, latest = trained
    config = dataclasses.replace(model.config, beta=0.0, alpha=1.0)  # the hard loss alone
    users = np.arange(1, toy.num_users)
    positives = np.array([1 + u % 3 for u in users])  # items 1..3
    unknown = toy.num_items - 1  # never a positive here
    known = np.ones(toy.num_items, bool)
    known[[0, unknown]] = False
    batch = {"user_index": tf.constant(users), "history": tf.constant(latest[users]),
             "item_index": tf.constant(positives)}
    scorer = deployable.build(model)
    kernel = [w for w in scorer.trainable_weights if "kernel" in w.name][0]  # [d, V - 1]: column j - 1 is item j
    scores = _scores(scorer, model, users, latest).astype(np.float64)
    gradients = {}
    for name, mask in (("masked", known), ("whole catalog", None)):
        distiller = compression.Distiller(scorer, deployable.feature_bins(model), config, known_items=mask)
        with tf.GradientTape() as tape:
            loss = distiller.objective(batch)
        gradients[name] = tape.gradient(loss, kernel).numpy()
        over = known if mask is not None else np.arange(toy.num_items) > 0
        logits = np.where(over, scores, -np.inf)
        top = logits.max(axis=1, keepdims=True)
        expected = np.mean(np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0] - scores[np.arange(len(users)), positives])
        assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert np.all(gradients["masked"][:, unknown - 1] == 0)
    assert np.abs(gradients["whole catalog"][:, unknown - 1]).sum() > 0  # the mask is what does it
    assert np.abs(gradients["masked"][:, 4 - 1]).sum() > 0  # a known item that is no positive still is a negative


@pytest.mark.slow  # QAT and conversion (~6 s)
def test_qat_activation_ranges_start_from_what_the_float_model_gives(trained, tmp_path):
    """quantize_apply starts each activation range at [-6, 6]; calibrated, the ranges of the query
    and of the scores are the float model's min and max over the users' histories (numpy), and the
    int8 TFLite model's scores are as fine-grained as that range allows."""
    toy, model, latest = trained
    scorer, bins = deployable.build(model), deployable.feature_bins(model)
    no_training = dataclasses.replace(FAST, qat_epochs=0)
    quantized, log = compression.quantize_aware(scorer, bins, rows_for(toy), latest, model.config, no_training)
    users = np.flatnonzero(latest[:, 0] > 0)
    scores = _scores(scorer, model, users, latest)[:, 1:]
    low, high = log["calibrated_ranges"]["scores"]
    assert low == pytest.approx(scores.min(), abs=1e-4) and high == pytest.approx(scores.max(), abs=1e-4)
    assert set(log["calibrated_ranges"]) == {"query", "scores"}
    variables = {w.name.split("/")[-1].split(":")[0]: w.numpy() for layer in quantized.layers
                 if getattr(layer, "layer", layer).name == "scores" for w in layer.weights}
    assert variables["post_activation_min"] == pytest.approx(min(low, 0.0), abs=1e-4)
    assert variables["post_activation_max"] == pytest.approx(max(high, 0.0), abs=1e-4)

    path = tmp_path / signatures.TFLITE_FILE
    path.write_bytes(mobile_export.convert(quantized, bins, model.config.history, int8=True,
                                           num_users=toy.num_users))
    ranker = TFLiteRanker(str(path), full_scores=True)
    lite = np.stack([ranker.all_scores(int(u), latest[u]) for u in users])[:, 1:]
    step = (max(high, 0.0) - min(low, 0.0)) / 255
    assert len(np.unique(lite)) > 0.5 * min(lite.size, 256)  # not a handful of levels 12/255 apart
    assert np.abs(lite - scores).max() < 0.1 * (high - low) and step < 12 / 255


def test_the_share_a_compression_keeps_is_its_eval_ndcg_over_the_students_by_hand(trained):
    from components.compression.compress import kept_share_check

    toy, model, latest = trained
    reference = deployable.build(model)
    bins = deployable.feature_bins(model)
    check = kept_share_check(toy, bins, latest, reference)

    def ndcg_by_hand(scorer):  # each eval user's eval items among the catalog, train items and index 0 removed
        users = np.unique(toy.splits["eval"].user)
        scores = _scores(scorer, model, users, latest)
        total = 0.0
        for row, user in enumerate(users):
            seen = set(toy.splits["train"].item[toy.splits["train"].user == user].tolist()) | {0}
            relevant = set(toy.splits["eval"].item[toy.splits["eval"].user == user].tolist())
            ranked = [i for i in np.argsort(-scores[row], kind="stable") if i not in seen][:10]
            dcg = sum(1 / np.log2(k + 2) for k, item in enumerate(ranked) if item in relevant)
            total += dcg / sum(1 / np.log2(k + 2) for k in range(min(len(relevant), 10)))
        return total / len(users)

    assert check.reference == pytest.approx(ndcg_by_hand(reference), abs=1e-4) and check.reference > 0
    assert check(reference) == 1.0
    pruned, _ = compression.prune(deployable.build(model), bins, rows_for(toy), latest, TINY,
                                  dataclasses.replace(FAST, target_sparsity=0.95, dense_sparsity=0.95))
    assert check(pruned) == pytest.approx(ndcg_by_hand(pruned) / ndcg_by_hand(reference), abs=1e-3)
    empty = dataclasses.replace(toy, splits={**toy.splits, "eval": toy.splits["eval"].__class__(
        *(np.zeros(0, np.int64) for _ in range(3)))})
    assert kept_share_check(empty, bins, latest, reference) is None  # nothing to rank: no check


def test_a_warm_compression_starts_at_the_setting_the_served_model_shipped():
    from components.compression.compress import shipped_step

    steps = compression.CompressionConfig().warm().gentler()

    def served(used, attempts):
        return {"used": used, "attempts": [{"rank": r, "target_sparsity": t, "dense_sparsity": d, "kept": 1.0}
                                           for r, t, d in attempts]}

    # the served run tried the configured setting, then without factorization, and shipped that
    assert shipped_step(steps, served(1, [(0.25, 0.75, 0.35), (None, 0.75, 0.35)])) == 1
    # a warm served run that started at half the sparsity and shipped it (its first attempt)
    assert shipped_step(steps, served(0, [(None, 0.375, 0.175)])) == 2
    assert shipped_step(steps, served(0, [(0.25, 0.75, 0.35)])) == 0
    # nothing to go by, or a setting this configuration does not try: from the configured one
    for unknown in (None, {}, {"used": 3, "attempts": []}, served(0, [(None, 0.5, 0.2)])):
        assert shipped_step(steps, unknown) == 0


def test_a_run_with_a_served_model_starts_at_its_setting_warm_or_from_scratch(tmp_path):
    from components.compression.compress import first_step
    from components.teacher.training import SERVED

    steps = compression.CompressionConfig().gentler()
    blessed = tmp_path / "blessed"
    blessed.mkdir()
    (blessed / artifacts.COMPRESSION_FILE).write_text(json.dumps(
        {"gentler": {"used": 0, "attempts": [{"rank": None, "target_sparsity": 0.375, "dense_sparsity": 0.175}]}}))
    drift = "from scratch: drift: item_genres L-infinity 0.14 > 0.05"
    assert first_step(steps, {"from": str(blessed), "reason": "warm", SERVED: str(blessed)}) == 2
    assert first_step(steps, {"from": None, "reason": drift, SERVED: str(blessed)}) == 2  # retrained after drift
    assert first_step(steps, {"from": str(blessed), "reason": "warm"}) == 2  # an artifact from before SERVED
    assert first_step(steps, {"from": None, "reason": "from scratch: no blessed model to start from yet"}) == 0
    assert first_step(steps, {}) == 0  # data not in spans: no drift check, no served model


def test_gentler_settings_drop_the_factorization_then_halve_the_sparsity():
    configured = compression.CompressionConfig()
    assert [(c.rank, c.target_sparsity, c.dense_sparsity) for c in configured.gentler()] == [
        (0.25, 0.75, 0.35), (None, 0.75, 0.35), (None, 0.375, 0.175)]
    unfactorized = compression.CompressionConfig(rank=None, target_sparsity=0.6, dense_sparsity=0.3)
    assert [(c.rank, c.target_sparsity, c.dense_sparsity) for c in unfactorized.gentler()] == [
        (None, 0.6, 0.3), (None, 0.3, 0.15)]
    assert all(c.prune_epochs == configured.prune_epochs for c in configured.gentler())
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="min_kept"):
            compression.CompressionConfig(min_kept=bad)
