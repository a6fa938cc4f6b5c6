"""The push gate: is the int8 TFLite model good enough to ship?

Blessed when its test ndcg@10 is at least (1 - tolerance) x the float KD student's (compression
lost at most `tolerance` of the quality) and at least (1 - tolerance) x the last blessed model's.
The last blessed model is evaluated again on this run's test split when it was trained in the
same index spaces (same vocabularies), as TFMA compares a baseline: both models on the same data;
otherwise the ndcg@10 recorded on its blessing is used, and the reason says so.
"""

import os
from typing import Dict, Optional

from components.compression import trainer_module as compression_files
from components.evaluation import evaluate
from components.teacher import training
from models import signatures
from models.interaction_data import load_dataset
from serving.tflite_predict import read_vocabulary


def decide(results: Dict, tolerance: float, baseline_dir: Optional[str], teacher_dir: str,
           recorded: Optional[float] = None, same_model: bool = False) -> Dict:
    """{"blessed": bool, "reason": str, "tflite_ndcg@10", "student_kd_ndcg@10", "baseline_ndcg@10"}.

    baseline_dir: the last blessed model's artifact (None: there is none); recorded: the ndcg@10 its
    blessing recorded; same_model: the candidate is that model (a rerun)."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"the blessing tolerance must be in [0, 1), got {tolerance}")
    candidate, reference = results["tflite"]["ndcg@10"], results["student_kd"]["ndcg@10"]
    decision = {"tolerance": tolerance, "tflite_ndcg@10": candidate, "student_kd_ndcg@10": reference,
                "baseline_ndcg@10": None}
    floor = (1 - tolerance) * reference
    if candidate < floor:
        return {**decision, "blessed": False, "reason": f"tflite ndcg@10 {candidate:.4f} < {1 - tolerance:.2f} x "
                                                        f"student_kd {reference:.4f} = {floor:.4f}"}
    reason = f"tflite ndcg@10 {candidate:.4f} >= {1 - tolerance:.2f} x student_kd {reference:.4f}"
    if same_model:
        return {**decision, "blessed": True, "reason": reason + "; it is the last blessed model"}
    if baseline_dir is None:
        return {**decision, "blessed": True, "reason": reason + "; no earlier blessed model"}
    previous, how = baseline_ndcg(baseline_dir, teacher_dir, recorded)
    decision["baseline_ndcg@10"] = round(previous, 4)
    if candidate < (1 - tolerance) * previous:
        return {**decision, "blessed": False, "reason": f"tflite ndcg@10 {candidate:.4f} < {1 - tolerance:.2f} x "
                                                        f"the last blessed model's {previous:.4f} ({how})"}
    return {**decision, "blessed": True, "reason": reason + f"; last blessed model {previous:.4f} ({how})"}


def baseline_ndcg(baseline_dir: str, teacher_dir: str, recorded: Optional[float]) -> (float, str):
    """(ndcg@10 of the last blessed model's TFLite, how it was obtained)."""
    mobile = os.path.join(baseline_dir, compression_files.MOBILE_DIR)
    dataset = load_dataset(os.path.join(teacher_dir, training.DATASET_FILE))
    if read_vocabulary(os.path.join(mobile, signatures.USER_VOCAB)) == list(dataset.user_ids) and \
            read_vocabulary(os.path.join(mobile, signatures.ITEM_VOCAB)) == list(dataset.item_ids):
        return evaluate.tflite_ndcg(os.path.join(mobile, signatures.TFLITE_FILE), dataset), "on this test split"
    if recorded is None:
        raise ValueError(f"the last blessed model ({baseline_dir}) was trained on other vocabularies and its "
                         "blessing records no ndcg@10 to compare with")
    return float(recorded), "recorded at its blessing: other vocabularies"

