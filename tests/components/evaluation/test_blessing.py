"""The push gate (components/evaluation/blessing.py), by hand-made results."""

import pytest

from components.evaluation import blessing


def _results(tflite, kd):
    return {"tflite": {"ndcg@10": tflite}, "student_kd": {"ndcg@10": kd}}


@pytest.mark.parametrize("tflite, blessed", [(0.40, True), (0.392, True), (0.3919, False), (0.30, False)])
def test_tflite_must_keep_all_but_the_tolerance_of_student_kd(tflite, blessed):
    decision = blessing.decide(_results(tflite, 0.40), 0.02, None, "unused")
    assert decision["blessed"] is blessed  # 0.98 x 0.40 = 0.392
    assert ("<" in decision["reason"]) is (not blessed)


def test_a_worse_model_than_the_last_blessed_is_not_blessed():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blessing, "baseline_ndcg", lambda baseline, teacher, recorded: (0.45, "on this test split"))
        assert not blessing.decide(_results(0.43, 0.43), 0.02, "baseline", "teacher")["blessed"]  # < 0.441
        decision = blessing.decide(_results(0.442, 0.43), 0.02, "baseline", "teacher")
        assert decision["blessed"] and decision["baseline_ndcg@10"] == 0.45


def test_the_tolerance_is_checked():
    with pytest.raises(ValueError, match="tolerance"):
        blessing.decide(_results(0.4, 0.4), 1.5, None, "unused")


def test_a_rerun_of_the_blessed_model_is_blessed_without_comparing_it_to_itself():
    decision = blessing.decide(_results(0.40, 0.40), 0.02, "same-model-dir", "unused", same_model=True)
    assert decision["blessed"] and "it is the last blessed model" in decision["reason"]


def test_a_baseline_on_other_vocabularies_is_compared_by_its_recorded_ndcg(tmp_path):
    from models import signatures
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
    decision = blessing.decide(_results(0.45, 0.45), 0.02, str(tmp_path / "baseline"), str(teacher), recorded=0.5)
    assert not decision["blessed"] and "other vocabularies" in decision["reason"]
    with pytest.raises(ValueError, match="records no ndcg@10"):
        blessing.baseline_ndcg(str(tmp_path / "baseline"), str(teacher), None)
