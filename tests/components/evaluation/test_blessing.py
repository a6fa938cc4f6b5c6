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
        patch.setattr(blessing, "baseline_ndcg", lambda baseline, teacher: (0.45, "on this test split"))
        assert not blessing.decide(_results(0.43, 0.43), 0.02, "baseline", "teacher")["blessed"]  # < 0.441
        decision = blessing.decide(_results(0.442, 0.43), 0.02, "baseline", "teacher")
        assert decision["blessed"] and decision["baseline_ndcg@10"] == 0.45


def test_the_tolerance_is_checked():
    with pytest.raises(ValueError, match="tolerance"):
        blessing.decide(_results(0.4, 0.4), 1.5, None, "unused")
