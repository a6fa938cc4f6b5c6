"""The candidate's test figures count its recency prior to the test's start; a served model whose data
runs past that start is ranked the same way (components/evaluation/test_start_prior.py)."""

import json

import numpy as np
import pytest

from components.evaluation import test_start_prior
from models import artifacts, recency_prior
from models.interaction_data import Dataset, Split, save_dataset

DAY = 86400
DAYS = 14
WEIGHT, COLD_WEIGHT = 2.0, 5.0


def _split(users, items, days):
    return Split(np.array(users, np.int64), np.array(items, np.int64), np.array(days, np.int64) * DAY)


def _dataset():
    """Items 1-4. Train on days 0-10, eval on day 20, test on days 30-31 (item 4 twice, item 2 once)."""
    splits = {"train": _split([1, 1, 2, 2], [1, 2, 1, 3], [0, 10, 5, 10]), "eval": _split([1], [3], [20]),
              "test": _split([2, 2, 3], [4, 4, 2], [30, 31, 31])}
    return Dataset(user_ids=["", "a", "b", "c"], item_ids=["", "i1", "i2", "i3", "i4"], user_texts=[""] * 4,
                   item_texts=[""] * 5, splits=splits)


# By hand, 14-day windows. To the test's start (day 20): days 6-20 hold item 2 once (day 10) and item 3
# twice (days 10, 20). To the push (day 31): days 17-31 hold item 3 once, item 4 twice, item 2 once.
AT_START = np.log1p([0, 0, 1, 2, 0])
AT_PUSH = np.log1p([0, 0, 1, 1, 2])


def _rows(prior):
    return np.stack([WEIGHT * prior, COLD_WEIGHT * prior]).astype(np.float32)


def _picked():
    return {"weight": WEIGHT, "cold_weight": COLD_WEIGHT, "days": DAYS,
            "counted_to": {"exported": "1970-02-01T00:00:00Z", "test_figures": "1970-01-21T00:00:00Z"}}


def test_the_exported_prior_counts_every_split_and_ends_at_the_latest_interaction():
    dataset = _dataset()
    np.testing.assert_allclose(recency_prior.of_splits(dataset, recency_prior.PUSH_SPLITS, DAYS), AT_PUSH, rtol=1e-6)
    np.testing.assert_allclose(recency_prior.of_splits(dataset, recency_prior.TEST_START_SPLITS, DAYS), AT_START,
                               rtol=1e-6)
    assert recency_prior.counted_to(dataset, recency_prior.PUSH_SPLITS) == "1970-02-01T00:00:00Z"  # day 31
    assert recency_prior.counted_to(dataset, recency_prior.TEST_START_SPLITS) == "1970-01-21T00:00:00Z"  # day 20


def test_the_correction_takes_the_exported_prior_back_to_the_tests_start(tmp_path):
    dataset = _dataset()
    np.save(tmp_path / artifacts.RECENCY_PRIOR_FILE, _rows(AT_PUSH))
    difference = test_start_prior.correction(str(tmp_path), _picked(), dataset)
    np.testing.assert_allclose(difference, _rows(AT_START) - _rows(AT_PUSH), atol=1e-6)

    # a model's scores with the exported prior, the user's row as the model picks it: user 0 without a
    # history item is cold; user 0 with one and every other user are known
    base = np.arange(15, dtype=np.float32).reshape(3, 5) / 7
    for histories, cold in ((np.array([[0, 0], [1, 2], [0, 0]]), [True, False, False]),
                            (np.array([[3, 0], [1, 2], [0, 0]]), [False, False, False])):
        rows = np.where(np.array(cold)[:, None], _rows(AT_PUSH)[1], _rows(AT_PUSH)[0])
        corrected = test_start_prior.corrected(lambda users: base[users] + rows[users], difference, histories)
        expected = base + np.where(np.array(cold)[:, None], _rows(AT_START)[1], _rows(AT_START)[0])
        np.testing.assert_allclose(corrected(np.array([0, 1, 2])), expected, atol=1e-5)


def test_no_correction_without_a_prior_or_for_one_that_ends_at_the_tests_start(tmp_path):
    dataset = _dataset()
    assert test_start_prior.correction(str(tmp_path), _picked(), dataset) is None  # no recency_prior.npy
    np.save(tmp_path / artifacts.RECENCY_PRIOR_FILE, _rows(AT_START))  # exported before the test counted
    assert test_start_prior.correction(str(tmp_path), _picked(), dataset) is None
    # a student without a prior ("counted_to" comes with an exported one), a file left in its directory
    np.save(tmp_path / artifacts.RECENCY_PRIOR_FILE, _rows(AT_PUSH))
    for picked in ({"mode": "none", "weight": 0.0, "cold_weight": 0.0},
                   {k: v for k, v in _picked().items() if k != "counted_to"}):
        assert test_start_prior.correction(str(tmp_path), picked, dataset) is None
    score = lambda users: np.zeros([len(users), 5])  # noqa: E731
    assert test_start_prior.corrected(score, None, np.zeros([3, 2])) is score


def test_a_served_model_whose_data_runs_past_the_test_is_ranked_with_its_prior_at_the_tests_start(tmp_path):
    save_dataset(_dataset(), str(tmp_path / artifacts.DATASET_FILE))
    summary = tmp_path / artifacts.COMPRESSION_FILE
    summary.write_text(json.dumps({"recency_prior": _picked()}))
    # the same data (a rerun): its prior counted this test; at the test's start it is AT_START
    np.testing.assert_allclose(test_start_prior.served_correction(str(tmp_path), _dataset()),
                               _rows(AT_START) - _rows(AT_PUSH), atol=1e-6)
    # the next span's run: its train and eval reach day 35, its test days 40-41, and with cold items the
    # test also holds a cold item's interaction of day 1; every row the served model counted is before
    # day 35, where this run's test figures count to: nothing to correct
    later = _dataset()
    later.splits["train"] = _split([1, 1, 2, 2, 2, 2, 3], [1, 2, 1, 3, 4, 4, 2], [0, 10, 5, 10, 30, 31, 31])
    later.splits["eval"] = _split([1, 3], [3, 1], [20, 35])
    later.splits["test"] = _split([1, 2, 3], [1, 3, 4], [40, 41, 1])
    assert test_start_prior.served_correction(str(tmp_path), later) is None
    # a run whose train and eval end on day 30: the served model's rows of day 31 are after it. Counted to
    # day 30 over days 16-30 it holds item 3 (day 20) and item 4 (day 30) once each
    later.splits["train"] = _split([1, 1, 2, 2], [1, 2, 1, 3], [0, 10, 5, 10])
    later.splits["eval"] = _split([1, 2], [3, 4], [20, 30])
    np.testing.assert_allclose(test_start_prior.served_correction(str(tmp_path), later),
                               _rows(np.log1p([0, 0, 0, 1, 1])) - _rows(AT_PUSH), atol=1e-6)
    # a model exported before the prior counted the test split records no "counted_to": it stopped there
    summary.write_text(json.dumps({"recency_prior": {k: v for k, v in _picked().items() if k != "counted_to"}}))
    assert test_start_prior.served_correction(str(tmp_path), _dataset()) is None
    summary.write_text(json.dumps({}))  # no prior at all
    assert test_start_prior.served_correction(str(tmp_path), _dataset()) is None


@pytest.mark.parametrize("shape", [(2, 4), (1, 5)])
def test_a_prior_of_another_catalog_is_an_error(tmp_path, shape):
    np.save(tmp_path / artifacts.RECENCY_PRIOR_FILE, np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="shape"):
        test_start_prior.correction(str(tmp_path), _picked(), _dataset())
