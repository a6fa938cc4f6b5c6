"""The deployed student's recency prior (models/recency_prior.py): the counts of the last days, the
weights picked on validation, a cold user's row (no id, no history) apart from a known user's, and
the prior added in float after the int8 part of the TFLite model, carried over by add-items'
catalog extension."""

import numpy as np
import pytest

from models import catalog_extension, compression, deployable, mobile_export, recency_prior
from models.foundation.tflite_runner import TFLiteRanker
from tests.models.test_compression import FAST, _scores, trained  # noqa: F401  (the module's fixture)
from tests.models.test_student import rows_for

DAY = 86400


def test_the_prior_counts_the_last_days_before_the_latest_timestamp():
    items = np.array([1, 1, 2, 3, 3, 3])
    stamps = np.array([0, 9, 10, 20, 25, 30]) * DAY
    # the last 10 days before day 30: days 20-30 (items 3, 3, 3); day 10 is out
    np.testing.assert_allclose(recency_prior.vector(items, stamps, 5, days=10), np.log1p([0, 0, 0, 3, 0]))
    np.testing.assert_allclose(recency_prior.vector(items, stamps, 5, days=21), np.log1p([0, 1, 1, 3, 0]))
    assert recency_prior.vector(np.array([], np.int64), np.array([], np.int64), 3, 7).tolist() == [0, 0, 0]


def test_a_cold_user_is_one_without_an_id_and_without_a_history_item():
    users = np.array([0, 0, 3, 3])
    histories = np.array([[0, 0], [5, 0], [0, 0], [2, 7]])
    assert recency_prior.cold(users, histories).numpy().tolist() == [1.0, 0.0, 0.0, 0.0]
    prior = np.array([0.0, 1.0, 2.0], np.float32)
    rows = recency_prior.rows(prior, 0.5, 3.0)
    np.testing.assert_allclose(rows, [[0.0, 0.5, 1.0], [0.0, 3.0, 6.0]])
    got = recency_prior.per_user(rows, users, histories).numpy()
    np.testing.assert_allclose(got, [rows[1], rows[0], rows[0], rows[0]])


class _Closest:
    """An evaluator whose ndcg@10 is highest when user 0's score of item 1 is `target`."""

    def __init__(self, target):
        self.target = target

    def evaluate(self, score, ks):
        return {"ndcg@10": -abs(float(score(np.array([0]))[0, 1]) - self.target)}


def test_the_weight_is_picked_on_validation_and_zero_unless_another_is_better():
    prior = np.array([0.0, 1.0, 0.0], np.float32)
    weight, curve = recency_prior.pick(lambda users: np.zeros([len(users), 3]), _Closest(0.3), prior)
    assert weight == 0.3 and curve["0.3"] == 0.0 and curve["0.0"] == pytest.approx(-0.3)
    weight, _ = recency_prior.pick(lambda users: np.zeros([len(users), 3]), _Closest(-1.0), prior)
    assert weight == 0.0
    assert recency_prior.resolve("auto", "newest_span") == "picked"
    assert recency_prior.resolve("auto", "stratified") == recency_prior.resolve("auto", None) == "none"
    assert recency_prior.resolve("none", "newest_span") == "none"


@pytest.mark.slow  # trains the tiny student and QAT, converts to int8 TFLite (about 10 s here)
def test_the_int8_model_adds_the_prior_in_float_and_add_items_extends_it(trained, tmp_path):  # noqa: F811
    toy, model, latest = trained
    bins = deployable.feature_bins(model)
    quantized, _ = compression.quantize_aware(deployable.build(model), bins, rows_for(toy), latest, model.config, FAST)
    prior = np.stack([np.linspace(0.0, 3.0, toy.num_items - 1), np.linspace(6.0, 0.0, toy.num_items - 1)])
    prior = prior.astype(np.float32)  # [known, cold] x items
    served = recency_prior.with_prior(quantized, prior)
    users = np.arange(toy.num_users)  # user 0 with an empty history: the cold user
    latest = latest.copy()
    latest[0] = 0
    expected_rows = np.where(users[:, None] == 0, prior[1][None, :], prior[0][None, :])
    np.testing.assert_allclose(_scores(served, model, users, latest)[:, 1:],
                               _scores(quantized, model, users, latest)[:, 1:] + expected_rows, rtol=1e-6, atol=1e-6)

    path = tmp_path / "model.tflite"
    path.write_bytes(mobile_export.convert(served, bins, model.config.history, int8=True, num_users=toy.num_users))
    ranker = TFLiteRanker(str(path), full_scores=True)
    keras = _scores(served, model, users, latest)
    lite = np.stack([ranker.all_scores(int(u), latest[u]) for u in users])
    # the prior's range is larger than the model's scores: were it quantized with them, the error would grow with it
    np.testing.assert_allclose(lite[:, 1:], keras[:, 1:], atol=0.05 * np.abs(keras[:, 1:] - expected_rows).max())

    weights = {w.name: w.numpy() for w in served.weights}
    assert recency_prior.VARIABLE in weights
    extended, _ = catalog_extension.extend(model, weights, np.zeros([2, model.config.dim], np.float32))
    np.testing.assert_array_equal(extended[recency_prior.VARIABLE], np.concatenate([prior, np.zeros([2, 2])], axis=1))
    rebuilt = catalog_extension.quantized_scorer(model, extended)
    assert rebuilt.output_shape[-1] == toy.num_items + 1  # two new columns
