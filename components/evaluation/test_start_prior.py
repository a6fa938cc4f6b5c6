"""A candidate's test figures with its recency prior as of the test's start.

A student exports its recency prior counted over all of the run's data, the test split included
(models/recency_prior.py: PUSH_SPLITS, what is popular at the push). Ranked on the test split with
it, the test's own interactions would be in the scores that rank them. So each test figure of a
model that carries the prior (both students' SavedModels, the compressed SavedModel, both TFLite
models) is taken with the prior the run would have had at the test's start (TEST_START_SPLITS):

    scores - exported row + test-start row        (the user's row: known or cold, as the model picks it)

The served model that the push gate ranks on this run's test split carries its own prior, counted
to its own push. When its data runs past this test's start (a rerun on the same data, a window that
overlaps), its figure takes its prior back the same way (served_correction): both models are then
ranked with what was popular before the test began.

The prior is added in float after the model's int8 part, so this is the deployed file's own ranking
with the other prior, up to float rounding. The test-start rows are recomputed here from the dataset
and the weights the student picked (its training.json), not read from a second file: artifacts
exported before the prior counted the test split give a difference of 0 and are ranked as they are.
"""

from typing import Callable, Mapping, Optional

import numpy as np

from models import artifacts, interaction_data, recency_prior
from models.foundation import storage


def correction(saved_model_dir: str, picked: Optional[Mapping], dataset) -> Optional[np.ndarray]:
    """[2, num_items] (known, cold) to add to the scores of a model exported with the prior in
    saved_model_dir (a student's SavedModel: recency_prior.npy beside it), or None when it has none
    or its prior already ends at the test's start. picked: the student's recency_prior summary."""
    path = storage.join(saved_model_dir, artifacts.RECENCY_PRIOR_FILE)
    # "counted_to": a prior was exported, over PUSH_SPLITS (an earlier artifact's stopped at the test; a
    # recency_prior.npy left in a reused directory by another student is not this one's)
    if not picked or "counted_to" not in picked or not storage.exists(path):
        return None
    exported = storage.load_npy(path)  # [known, cold] x items, item i at column i
    at_start = recency_prior.rows(recency_prior.of_splits(dataset, recency_prior.TEST_START_SPLITS, picked["days"]),
                                  picked["weight"], picked["cold_weight"])
    if exported.shape != at_start.shape:
        raise ValueError(f"{path}: the prior has shape {exported.shape}, the dataset's rows {at_start.shape}")
    difference = at_start - exported
    return difference if np.any(difference) else None


def corrected(score: Callable[[np.ndarray], np.ndarray], difference: Optional[np.ndarray],
              histories: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """score(users) with `difference`'s row for each user added: the cold row for a user the model
    asks as a cold one (index 0 and no history item, models/recency_prior.py's cold()), the known
    row otherwise. histories: [num_users, H], what the score function feeds the model."""
    if difference is None:
        return score

    def scores(users):
        users = np.asarray(users)
        cold = (users == 0) & ~np.any(np.asarray(histories)[users] > 0, axis=1)
        return np.asarray(score(users), np.float32) + difference[cold.astype(np.int64)].astype(np.float32)

    return scores


def served_correction(model_dir: str, dataset) -> Optional[np.ndarray]:
    """[2, its num_items] (known, cold) to add to the served model's scores in its own index space
    when ranked on `dataset`'s test split: its prior counted to this test's start (its own rows at or
    before this run's latest train or eval interaction, where the candidate's test figures count to)
    instead of to its push; None when its data ends there (the usual case: an earlier span's model)
    or when it records no prior. model_dir: its StudentCompressor artifact (compression.json's
    "recency_prior", its dataset.npz). Not the test's first interaction: with cold items
    (data.cold_items) the test also holds every interaction of a cold item, from any date."""
    summary = storage.join(model_dir, artifacts.COMPRESSION_FILE)
    picked = storage.read_json(summary).get("recency_prior") if storage.exists(summary) else None
    start = recency_prior.latest(dataset, recency_prior.TEST_START_SPLITS)
    if not picked or "counted_to" not in picked or start is None:
        return None  # "counted_to": exported over PUSH_SPLITS (earlier artifacts stopped at the test)
    own = interaction_data.load_dataset(storage.join(model_dir, artifacts.DATASET_FILE))
    items, stamps = recency_prior.interactions(own, recency_prior.PUSH_SPLITS)
    before = stamps <= start
    if before.all():
        return None
    days = picked["days"]
    change = (recency_prior.vector(items[before], stamps[before], own.num_items, days)
              - recency_prior.vector(items, stamps, own.num_items, days))
    return recency_prior.rows(change, picked["weight"], picked["cold_weight"])
