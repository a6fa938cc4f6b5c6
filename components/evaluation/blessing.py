"""The push gate: is the int8 TFLite model good enough to ship?

Blessed when its test ndcg@10, in this order of rules,
  1. is at least (1 + margin) x the best non-personalized baseline of the run (popularity and,
     on time-ordered splits, trending): a personalized model that does not beat "everyone gets
     the same list" is not worth shipping;
  2. is at least (1 - tolerance) x the float KD student's (compression lost at most `tolerance`),
     or falls short by less than the test's noise: both models rank the same test users, so the
     shortfall is measured per user (t_u - (1 - tolerance) k_u) and refuses only when its mean is
     below -NOISE_Z standard errors (one-sided, 95%). A test of a few dozen users (the newest span's
     latest share, data in spans) moved the two models' ndcg@10 apart by several percent by chance:
     on MovieLens-100K in 4-week spans this rule refused 4 of 8 candidates whose int8 models agreed
     with their SavedModels' top 10;
  3. is at least (1 - tolerance) x the last blessed model's.
The first rule that fails decides, and the reason names it.
The last blessed model is evaluated again on this run's test split, as TFMA compares a baseline:
both models on the same data. Trained on other data (an earlier span: other vocabularies), it is
looked up by id, and the items and users it never saw count against it, as they would in service
(evaluate.tflite_ndcg); with data in spans the test split is the newest span's latest interactions,
so the gate asks whether the candidate is better than what is served on what users do now.
"""

import os
from typing import Dict, Mapping, Optional

import numpy as np

from components.evaluation import evaluate
from components.evaluation.baselines import NON_PERSONALIZED
from models import artifacts
from models.foundation import signatures
from models.interaction_data import load_dataset
from models.vocabulary_file import read_vocabulary

NOISE_Z = 1.645  # one-sided 95%: a shortfall of the int8 model this many standard errors below the bound is real


def decide(results: Dict, tolerance: float, margin: float, baseline_dir: Optional[str], teacher_dir: str,
           same_model: bool = False, per_user: Optional[Mapping[str, np.ndarray]] = None) -> Dict:
    """{"blessed": bool, "reason": str, "tflite_ndcg@10", "student_kd_ndcg@10", "baseline_ndcg@10",
    "non_personalized_ndcg@10": {name: ndcg@10 of the run's popularity and trending (if any)}}.

    results: report.json's models (a missing or null baseline is skipped); margin: rule 1's;
    baseline_dir: the last blessed model's artifact (None: there is none); same_model: the candidate
    is that model (a rerun); per_user: {"tflite", "student_kd": each test user's ndcg@10, the same
    users in the same order} for rule 2's paired comparison (without it, rule 2 compares the means)."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"the blessing tolerance must be in [0, 1), got {tolerance}")
    if not -1.0 < margin < 10.0:
        raise ValueError(f"the blessing margin must be in (-1, 10), got {margin}")
    candidate, reference = results["tflite"]["ndcg@10"], results["student_kd"]["ndcg@10"]
    non_personalized = {name: results[name]["ndcg@10"] for name in NON_PERSONALIZED if results.get(name)}
    decision = {"tolerance": tolerance, "margin": margin, "tflite_ndcg@10": candidate,
                "student_kd_ndcg@10": reference, "baseline_ndcg@10": None,
                "non_personalized_ndcg@10": non_personalized}
    reasons = []
    if non_personalized:
        strongest = max(non_personalized, key=non_personalized.get)  # popularity first on a tie
        # Rounded: the metrics have 4 decimals, and 1.05 x 0.2 must not ask for 0.21000000000000002.
        needed = round((1 + margin) * non_personalized[strongest], 6)
        if candidate < needed:
            reason = (f"tflite ndcg@10 {candidate:.4f} < {1 + margin:.2f} x {strongest} "
                      f"{non_personalized[strongest]:.4f} = {needed:.4f}")
            return {**decision, "blessed": False, "reason": reason}
        reasons.append(f"tflite ndcg@10 {candidate:.4f} >= {1 + margin:.2f} x {strongest} "
                       f"{non_personalized[strongest]:.4f}")
    floor = round((1 - tolerance) * reference, 6)
    if candidate < floor:
        shortfall = f"tflite ndcg@10 {candidate:.4f} < {1 - tolerance:.2f} x student_kd {reference:.4f} = {floor:.4f}"
        noise = paired_noise(per_user or {}, tolerance)
        if noise is None or noise["mean"] < -NOISE_Z * noise["standard_error"]:
            measured = "" if noise is None else f" (paired over {noise['users']} users: {noise['mean']:.4f} < " \
                                                f"-{NOISE_Z} standard errors {-NOISE_Z * noise['standard_error']:.4f})"
            return {**decision, "blessed": False, "reason": shortfall + measured, "compression_noise": noise}
        decision["compression_noise"] = noise
        reasons.append(f"{shortfall}, within the test's noise (paired over {noise['users']} users: {noise['mean']:.4f}"
                       f" >= -{NOISE_Z} standard errors {-NOISE_Z * noise['standard_error']:.4f})")
    else:
        reasons.append(f"tflite ndcg@10 {candidate:.4f} >= {1 - tolerance:.2f} x student_kd {reference:.4f}")
    reason = "; ".join(reasons)
    if same_model:
        return {**decision, "blessed": True, "reason": reason + "; it is the last blessed model"}
    if baseline_dir is None:
        return {**decision, "blessed": True, "reason": reason + "; no earlier blessed model"}
    previous, how = baseline_ndcg(baseline_dir, teacher_dir)
    decision["baseline_ndcg@10"] = round(previous, 4)
    if candidate < (1 - tolerance) * previous:
        return {**decision, "blessed": False, "reason": f"tflite ndcg@10 {candidate:.4f} < {1 - tolerance:.2f} x "
                                                        f"the last blessed model's {previous:.4f} ({how})"}
    return {**decision, "blessed": True, "reason": reason + f"; last blessed model {previous:.4f} ({how})"}


def paired_noise(per_user: Mapping[str, np.ndarray], tolerance: float) -> Optional[Dict]:
    """{"users", "mean", "standard_error"} of d_u = tflite_u - (1 - tolerance) student_kd_u over the
    test users (rule 2's shortfall, user by user), or None without both models' per-user values."""
    tflite, student = per_user.get("tflite"), per_user.get("student_kd")
    if tflite is None or student is None or len(tflite) != len(student) or len(tflite) < 2:
        return None
    differences = np.asarray(tflite, np.float64) - (1 - tolerance) * np.asarray(student, np.float64)
    return {"users": int(len(differences)), "mean": round(float(differences.mean()), 6),
            "standard_error": round(float(differences.std(ddof=1) / np.sqrt(len(differences))), 6)}


def baseline_ndcg(baseline_dir: str, teacher_dir: str) -> (float, str):
    """(ndcg@10 of the last blessed model's TFLite on this run's test split, how it was obtained)."""
    mobile = os.path.join(baseline_dir, artifacts.MOBILE_DIR)
    dataset = load_dataset(os.path.join(teacher_dir, artifacts.DATASET_FILE))
    users = read_vocabulary(os.path.join(mobile, signatures.USER_VOCAB))
    items = read_vocabulary(os.path.join(mobile, signatures.ITEM_VOCAB))
    model = os.path.join(mobile, signatures.TFLITE_FILE)
    if users == list(dataset.user_ids) and items == list(dataset.item_ids):
        return evaluate.tflite_ndcg(model, dataset), "on this test split"
    unknown = len(set(dataset.item_ids[1:]) - set(items[1:]))
    return evaluate.tflite_ndcg(model, dataset, (users, items)), \
        f"on this test split by id: {unknown:,} of its {dataset.num_items - 1:,} items new to it"

