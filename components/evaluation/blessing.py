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
  3. is at least (1 - tolerance) x the last blessed model's, or falls short by less than the test's
     noise, measured per user as in rule 2 (both models rank the same test users). With data in
     spans the test is the newest span's latest share, mostly users in mid-session: on MovieLens-100K
     in 4-week spans the plain ratio refused a warm candidate at span 3 by 4% of a figure measured
     on 41 users (paired: -0.0026, standard error 0.0223), and kept a model the next span ranked
     worse (docs/spans.md).
The first rule that fails decides, and the reason names it.
The last blessed model is evaluated again on this run's test split, as TFMA compares a baseline:
both models on the same data. Trained on other data (an earlier span: other vocabularies), it is
looked up by id, and the items and users it never saw count against it, as they would in service
(evaluate.tflite_ndcg); with data in spans the test split is the newest span's latest interactions,
so the gate asks whether the candidate is better than what is served on what users do now.
"""

import os
from typing import Dict, Mapping, NamedTuple, Optional

import numpy as np

from components.evaluation import evaluate
from components.evaluation import test_start_prior
from components.evaluation.baselines import NON_PERSONALIZED
from models import artifacts
from models.foundation import signatures
from models.interaction_data import load_dataset
from models.retrieval_metrics import NOISE_Z, paired
from models.vocabulary_file import read_vocabulary



def decide(results: Dict, tolerance: float, margin: float, baseline_dir: Optional[str], teacher_dir: str,
           same_model: bool = False, per_user: Optional[Mapping[str, np.ndarray]] = None) -> Dict:
    """{"blessed": bool, "reason": str, "tflite_ndcg@10", "student_kd_ndcg@10", "baseline_ndcg@10",
    "non_personalized_ndcg@10": {name: ndcg@10 of the run's popularity and trending (if any)}}.

    results: report.json's models (a missing or null baseline is skipped); margin: rule 1's;
    baseline_dir: the last blessed model's artifact (None: there is none); same_model: the candidate
    is that model (a rerun); per_user: {"tflite", "student_kd": each test user's ndcg@10, the same
    users in the same order} for the paired comparisons of rules 2 and 3 (without them, the means)."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"the blessing tolerance must be in [0, 1), got {tolerance}")
    if not -1.0 < margin < 10.0:
        raise ValueError(f"the blessing margin must be in (-1, 10), got {margin}")
    candidate, reference = results["tflite"]["ndcg@10"], results["student_kd"]["ndcg@10"]
    per_user = per_user or {}
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
        noise = paired_noise(per_user.get("tflite"), per_user.get("student_kd"), tolerance)
        if not within_noise(noise):
            return {**decision, "blessed": False, "reason": _refused(shortfall, noise), "compression_noise": noise}
        decision["compression_noise"] = noise
        reasons.append(_within(shortfall, noise))
    else:
        reasons.append(f"tflite ndcg@10 {candidate:.4f} >= {1 - tolerance:.2f} x student_kd {reference:.4f}")
    reason = "; ".join(reasons)
    if same_model:
        return {**decision, "blessed": True, "reason": reason + "; it is the last blessed model"}
    if baseline_dir is None:
        return {**decision, "blessed": True, "reason": reason + "; no earlier blessed model"}
    served = served_on_test(baseline_dir, teacher_dir)
    decision["baseline_ndcg@10"] = round(served.ndcg, 4)
    if candidate < (1 - tolerance) * served.ndcg:
        shortfall = (f"tflite ndcg@10 {candidate:.4f} < {1 - tolerance:.2f} x the last blessed model's "
                     f"{served.ndcg:.4f} ({served.how})")
        noise = paired_noise(per_user.get("tflite"), served.per_user, tolerance)
        decision["served_noise"] = noise
        if not within_noise(noise):
            return {**decision, "blessed": False, "reason": _refused(shortfall, noise)}
        return {**decision, "blessed": True, "reason": f"{reason}; {_within(shortfall, noise)}"}
    return {**decision, "blessed": True, "reason": reason + f"; last blessed model {served.ndcg:.4f} ({served.how})"}


def paired_noise(candidate: Optional[np.ndarray], reference: Optional[np.ndarray], tolerance: float) -> Optional[Dict]:
    """{"users", "mean", "standard_error"} of d_u = candidate_u - (1 - tolerance) reference_u over the
    test users (a rule's shortfall, user by user), or None without both models' values of the same users."""
    if candidate is None or reference is None or len(candidate) != len(reference) or len(candidate) < 2:
        return None
    return paired(np.asarray(candidate, np.float64) - (1 - tolerance) * np.asarray(reference, np.float64))


def within_noise(noise: Optional[Dict]) -> bool:
    """A shortfall is the test's noise when its paired mean is above -NOISE_Z standard errors."""
    return noise is not None and noise["mean"] >= -NOISE_Z * noise["standard_error"]


def _refused(shortfall: str, noise: Optional[Dict]) -> str:
    return shortfall if noise is None else f"{shortfall} ({_paired(noise)})"


def _within(shortfall: str, noise: Dict) -> str:
    return f"{shortfall}, within the test's noise ({_paired(noise)})"


def _paired(noise: Dict) -> str:
    sign = ">=" if within_noise(noise) else "<"
    return (f"paired over {noise['users']} users: {noise['mean']:.4f} {sign} -{NOISE_Z} standard errors "
            f"{-NOISE_Z * noise['standard_error']:.4f}")


class ServedOnTest(NamedTuple):
    ndcg: float  # the last blessed model's TFLite ndcg@10 on this run's test split
    per_user: np.ndarray  # [U] each test user's, in the order of the candidate's
    how: str  # how it was obtained (by id, and how many of the test's items it never saw)


def served_on_test(baseline_dir: str, teacher_dir: str) -> ServedOnTest:
    """The last blessed model's TFLite on this run's test split."""
    mobile = os.path.join(baseline_dir, artifacts.MOBILE_DIR)
    dataset = load_dataset(os.path.join(teacher_dir, artifacts.DATASET_FILE))
    users = read_vocabulary(os.path.join(mobile, signatures.USER_VOCAB))
    items = read_vocabulary(os.path.join(mobile, signatures.ITEM_VOCAB))
    model = os.path.join(mobile, signatures.TFLITE_FILE)
    # its recency prior as of this test's start, when its data runs past it (a rerun on the same data)
    difference = test_start_prior.served_correction(baseline_dir, dataset)
    if users == list(dataset.user_ids) and items == list(dataset.item_ids):
        return ServedOnTest(*evaluate.tflite_per_user(model, dataset, difference=difference), "on this test split")
    unknown = len(set(dataset.item_ids[1:]) - set(items[1:]))
    return ServedOnTest(*evaluate.tflite_per_user(model, dataset, (users, items), difference),
                        f"on this test split by id: {unknown:,} of its {dataset.num_items - 1:,} items new to it")

