"""The push gate (components/evaluation/blessing.py), by hand-made results."""

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
        patch.setattr(blessing, "baseline_ndcg", lambda baseline, teacher, recorded: (0.45, "on this test split"))
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


def test_a_baseline_on_other_vocabularies_is_compared_by_its_recorded_ndcg(tmp_path):
    from models.foundation import signatures
    from models.interaction_data import save_dataset
    from tests.conftest import toy_dataset

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    save_dataset(toy_dataset(), str(teacher / "dataset.npz"))
    mobile = tmp_path / "baseline" / "mobile"
    mobile.mkdir(parents=True)
    (mobile / signatures.USER_VOCAB).write_text("\nsomeone-else\n")
    (mobile / signatures.ITEM_VOCAB).write_text("\nanother-item\n")
    assert blessing.baseline_ndcg(str(tmp_path / "baseline"), str(teacher), 0.5) == (
        0.5, "recorded at its blessing: other vocabularies")
    decision = blessing.decide(_results(0.45, 0.45), 0.02, 0.05, str(tmp_path / "baseline"), str(teacher), recorded=0.5)
    assert not decision["blessed"] and "other vocabularies" in decision["reason"]
    with pytest.raises(ValueError, match="records no ndcg@10"):
        blessing.baseline_ndcg(str(tmp_path / "baseline"), str(teacher), None)
