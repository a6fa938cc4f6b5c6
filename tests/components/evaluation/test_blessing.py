"""The push gate (components/evaluation/blessing.py), by hand-made results."""

import numpy as np
import pytest

from components.evaluation import blessing


def _results(tflite, kd, popularity=0.10, trending=None):
    results = {"tflite": {"ndcg@10": tflite}, "student_kd": {"ndcg@10": kd}, "popularity": {"ndcg@10": popularity}}
    results["trending"] = {"ndcg@10": trending} if trending is not None else None
    return results


@pytest.mark.parametrize("tflite, blessed", [(0.40, True), (0.392, True), (0.3919, False), (0.30, False)])
def test_tflite_must_keep_all_but_the_tolerance_of_student_kd(tflite, blessed):
    decision = blessing.decide(_results(tflite, 0.40), 0.02, 0.05, None, "unused")
    assert decision["blessed"] is blessed  # 0.98 x 0.40 = 0.392
    assert ("<" in decision["reason"]) is (not blessed)
    assert blessed or "x student_kd" in decision["reason"]


@pytest.mark.parametrize("tflite, blessed", [(0.21, True), (0.2099, False)])
def test_tflite_must_beat_popularity_by_the_margin_without_trending(tflite, blessed):
    decision = blessing.decide(_results(tflite, tflite, popularity=0.20), 0.02, 0.05, None, "unused")
    assert decision["blessed"] is blessed  # 1.05 x 0.20 = 0.21
    assert decision["non_personalized_ndcg@10"] == {"popularity": 0.20}
    if blessed:
        assert decision["reason"].startswith("tflite ndcg@10 0.2100 >= 1.05 x popularity 0.2000; ")
    else:
        assert decision["reason"] == "tflite ndcg@10 0.2099 < 1.05 x popularity 0.2000 = 0.2100"


@pytest.mark.parametrize("tflite, blessed", [(0.126, True), (0.11, False)])
def test_tflite_must_beat_the_stronger_of_popularity_and_trending(tflite, blessed):
    decision = blessing.decide(_results(tflite, tflite, popularity=0.10, trending=0.12), 0.02, 0.05, None, "unused")
    assert decision["blessed"] is blessed  # 1.05 x max(0.10, 0.12) = 0.126
    if not blessed:
        assert decision["reason"] == "tflite ndcg@10 0.1100 < 1.05 x trending 0.1200 = 0.1260"
    else:
        assert "x trending 0.1200" in decision["reason"]


def test_the_baseline_rule_decides_before_the_compression_rule():
    # Both rules fail: the reason names the first (the model does not beat popularity).
    decision = blessing.decide(_results(0.10, 0.40, popularity=0.10), 0.02, 0.05, None, "unused")
    assert not decision["blessed"] and "x popularity" in decision["reason"]


def test_a_zero_margin_only_asks_to_match_the_baselines():
    assert blessing.decide(_results(0.10, 0.10, popularity=0.10), 0.02, 0.0, None, "unused")["blessed"]


def test_a_worse_model_than_the_last_blessed_is_not_blessed():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blessing, "served_on_test",
                      lambda baseline, teacher: blessing.ServedOnTest(0.45, np.full(4, 0.45), "on this test split"))
        assert not blessing.decide(_results(0.43, 0.43), 0.02, 0.05, "baseline", "teacher")["blessed"]  # < 0.441
        decision = blessing.decide(_results(0.442, 0.43), 0.02, 0.05, "baseline", "teacher")
        assert decision["blessed"] and decision["baseline_ndcg@10"] == 0.45


@pytest.mark.parametrize("tolerance, margin, message", [(1.5, 0.05, "tolerance"), (0.02, -1.0, "margin"),
                                                        (0.02, 10.0, "margin")])
def test_the_tolerance_and_margin_are_checked(tolerance, margin, message):
    with pytest.raises(ValueError, match=message):
        blessing.decide(_results(0.4, 0.4), tolerance, margin, None, "unused")


def test_a_rerun_of_the_blessed_model_is_blessed_without_comparing_it_to_itself():
    decision = blessing.decide(_results(0.40, 0.40), 0.02, 0.05, "same-model-dir", "unused", same_model=True)
    assert decision["blessed"] and "it is the last blessed model" in decision["reason"]


def test_a_baseline_on_other_vocabularies_is_evaluated_by_id_on_this_test_split(tmp_path):
    """An earlier span's model: the same model with its index spaces permuted scores the same
    ndcg@10 by id as in its own order; a test item it never saw is a miss it cannot avoid."""
    import dataclasses

    import numpy as np

    from components.evaluation import evaluate
    from models.foundation import signatures
    from models.interaction_data import Split, save_dataset
    from tests.conftest import write_tiny_mobile_run

    mobile, toy, _ = write_tiny_mobile_run(tmp_path / "run")
    model = str(mobile / signatures.TFLITE_FILE)
    own = evaluate.tflite_ndcg(model, toy)
    vocabularies = (list(toy.user_ids), list(toy.item_ids))
    # the same data in other index orders (a later run numbers ids by frequency)
    rng = np.random.default_rng(3)
    users, items = np.concatenate([[0], 1 + rng.permutation(toy.num_users - 1)]), \
        np.concatenate([[0], 1 + rng.permutation(toy.num_items - 1)])
    new_user, new_item = np.argsort(users), np.argsort(items)  # old index -> new index
    permuted = dataclasses.replace(
        toy, user_ids=[toy.user_ids[u] for u in users], item_ids=[toy.item_ids[i] for i in items],
        user_texts=[toy.user_texts[u] for u in users], item_texts=[toy.item_texts[i] for i in items],
        splits={name: Split(new_user[s.user], new_item[s.item], s.timestamp) for name, s in toy.splits.items()})
    assert evaluate.tflite_ndcg(model, permuted, vocabularies) == pytest.approx(own, abs=1e-6)
    # one more item, new to the model, which every test user interacted with: each loses its hits on it
    grown = dataclasses.replace(
        toy, item_ids=[*toy.item_ids, "i-new"], item_texts=[*toy.item_texts, "new"],
        splits={**toy.splits, "test": Split(
            np.concatenate([toy.splits["test"].user, np.unique(toy.splits["test"].user)]),
            np.concatenate([toy.splits["test"].item, np.full(len(np.unique(toy.splits["test"].user)), toy.num_items)]),
            np.concatenate([toy.splits["test"].timestamp, np.full(len(np.unique(toy.splits["test"].user)), 10**9)]))})
    assert evaluate.tflite_ndcg(model, grown, vocabularies) < own
    # through the gate: the baseline's figure and how it was obtained
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    save_dataset(grown, str(teacher / "dataset.npz"))
    (tmp_path / "baseline").mkdir()
    (tmp_path / "baseline" / "mobile").symlink_to(mobile)
    figure, per_user, how = blessing.served_on_test(str(tmp_path / "baseline"), str(teacher))
    assert figure == pytest.approx(evaluate.tflite_ndcg(model, grown, vocabularies))
    assert per_user.shape == (len(np.unique(grown.splits["test"].user)),) and per_user.mean() == pytest.approx(figure)
    assert how == "on this test split by id: 1 of its 31 items new to it"
    weakened = blessing.decide(_results(figure * 0.9, figure * 0.9), 0.02, -0.9, str(tmp_path / "baseline"),
                               str(teacher))
    assert not weakened["blessed"] and "the last blessed model's" in weakened["reason"] and "by id" in weakened["reason"]


def test_rule_two_refuses_only_a_shortfall_beyond_the_tests_noise():
    """Rule 2 with each test user's ndcg@10 of both models: the shortfall d_u = t_u - 0.98 k_u, its
    mean against 1.645 standard errors (computed here with numpy, independently)."""
    kd = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    noisy = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # one user's hit lost: 0.375 < 0.98 x 0.5
    d = noisy - 0.98 * kd
    expected_mean, expected_se = d.mean(), d.std(ddof=1) / np.sqrt(len(d))
    assert expected_mean < 0 and expected_mean > -1.645 * expected_se  # a shortfall, within the noise
    noise = blessing.paired_noise(noisy, kd, 0.02)
    assert noise["users"] == 8 and noise["mean"] == pytest.approx(expected_mean, abs=1e-6)
    assert noise["standard_error"] == pytest.approx(expected_se, abs=1e-6)
    decision = blessing.decide(_results(noisy.mean(), kd.mean()), 0.02, -0.5, None, "unused",
                               per_user={"tflite": noisy, "student_kd": kd})
    assert decision["blessed"] and "within the test's noise (paired over 8 users" in decision["reason"]
    assert decision["compression_noise"] == noise
    # the same shortfall on every one of 400 users is real: refused, and the reason gives the figures
    kd_many = np.full(400, 0.5) + np.linspace(-0.1, 0.1, 400)
    worse = kd_many * 0.9
    refused = blessing.decide(_results(worse.mean(), kd_many.mean()), 0.02, -0.5, None, "unused",
                              per_user={"tflite": worse, "student_kd": kd_many})
    assert not refused["blessed"] and "paired over 400 users" in refused["reason"]
    assert "-1.645 standard errors" in refused["reason"]
    # without per-user values (or of other users) the means decide, as before
    assert not blessing.decide(_results(noisy.mean(), kd.mean()), 0.02, -0.5, None, "unused")["blessed"]
    assert blessing.paired_noise(noisy, kd[:5], 0.02) is None


def test_rule_three_refuses_only_a_shortfall_against_the_served_model_beyond_the_tests_noise():
    """Rule 3 with each test user's ndcg@10 of the candidate and of the served model (the same users):
    d_u = t_u - 0.98 s_u against 1.645 standard errors, computed here with numpy."""
    served = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.5, 0.5])
    candidate = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.5])  # 0.45 < 0.98 x 0.5
    d = candidate - 0.98 * served
    assert d.mean() < 0 and d.mean() > -1.645 * d.std(ddof=1) / np.sqrt(d.size)  # within the noise
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blessing, "served_on_test", lambda baseline, teacher: blessing.ServedOnTest(
            served.mean(), served, "on this test split by id: 3 of its 40 items new to it"))
        decision = blessing.decide(_results(candidate.mean(), candidate.mean()), 0.02, -0.5, "baseline", "teacher",
                                   per_user={"tflite": candidate, "student_kd": candidate})
        assert decision["blessed"] and decision["baseline_ndcg@10"] == 0.5
        assert "< 0.98 x the last blessed model's 0.5000 (on this test split by id" in decision["reason"]
        assert "within the test's noise (paired over 10 users" in decision["reason"]
        assert decision["served_noise"]["mean"] == pytest.approx(d.mean(), abs=1e-6)
        # without the candidate's per-user values the means decide, as before
        assert not blessing.decide(_results(candidate.mean(), candidate.mean()), 0.02, -0.5, "baseline",
                                   "teacher")["blessed"]
    # the same 10% shortfall on every one of 400 users is real: refused, with the figures
    many = np.full(400, 0.5) + np.linspace(-0.1, 0.1, 400)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blessing, "served_on_test",
                      lambda baseline, teacher: blessing.ServedOnTest(many.mean(), many, "on this test split"))
        worse = many * 0.9
        refused = blessing.decide(_results(worse.mean(), worse.mean()), 0.02, -0.5, "baseline", "teacher",
                                  per_user={"tflite": worse, "student_kd": worse})
    assert not refused["blessed"] and "the last blessed model's" in refused["reason"]
    assert "paired over 400 users" in refused["reason"] and "< -1.645 standard errors" in refused["reason"]
