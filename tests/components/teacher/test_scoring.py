"""Teacher scoring on Beam: fields, counts, negatives, agreement with the SavedModel, determinism."""

import glob
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf

from components.teacher import scoring, training
from models import artifacts

NEGATIVES = 4


def _score(teacher_dir, out):
    with beam.Pipeline() as p:
        scoring.score_training_rows(p, teacher_dir, out, NEGATIVES, seed=7)
    return _read(out, "train")


def _read(out, split):
    files = glob.glob(os.path.join(out, f"Split-{split}", "*.gz"))
    rows = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    get = lambda e, k: list(getattr(e.features.feature[k], e.features.feature[k].WhichOneof("kind")).value)  # noqa: E731
    return {get(e, "row")[0]: {k: get(e, k) for k in ("user_index", "item_index", "candidates", "teacher_scores")}
            for e in rows}


@pytest.mark.slow  # a teacher, then scoring on Beam (~70 s)
def test_scoring(toy, tmp_path):
    settings = {"encoder": "tiny", "text_length": 16, "teacher": {"dim": 8, "layers": 1, "intermediate": 16, "sequence": 5, "history": 5,
                                                                   "epochs": 2, "batch_size": 32}}
    teacher_dir = str(tmp_path / "teacher")
    os.makedirs(teacher_dir)
    training.fit_and_export(toy, teacher_dir, settings)
    scored = _score(teacher_dir, str(tmp_path / "a"))
    train = toy.splits["train"]
    assert sorted(scored) == list(range(len(train.user)))  # every training interaction, once

    model = tf.saved_model.load(os.path.join(teacher_dir, artifacts.SAVED_MODEL_DIR))
    _check_rows(scored, train, model.score_train, train, toy.num_users)

    assert _score(teacher_dir, str(tmp_path / "b")) == scored  # deterministic
    # row-ordered shards, and statistics that agree with the rows
    files = sorted(os.listdir(tmp_path / "a" / "Split-train"))
    assert files == [f"part-{n:05d}-of-{len(files):05d}.gz" for n in range(len(files))]
    stats = scoring.read_stats(str(tmp_path / "a"))
    assert stats["negatives"] == NEGATIVES
    values = np.concatenate([np.array(r["teacher_scores"], np.float64) for r in scored.values()])
    assert stats["splits"]["train"]["rows"] == len(scored) and stats["splits"]["train"]["width"] == 1 + 2 * NEGATIVES
    assert stats["splits"]["train"]["real"] == values.size
    np.testing.assert_allclose([stats["splits"]["train"]["sum"], stats["splits"]["train"]["sum_squares"]],
                               [values.sum(), np.square(values).sum()], rtol=1e-9)

    # Split-final: train then eval rows, the final teacher on the train + eval history.
    known = training.latest_split(toy)
    final = _read(str(tmp_path / "a"), "final")
    assert sorted(final) == list(range(len(known.user)))
    _check_rows(final, known, model.score, known, toy.num_users)


def test_scored_negatives_shrink_to_fit_the_candidate_budget():
    assert scoring.scored_negatives(50, 67_000, budget=20_000_000) == 50  # MovieLens-100K: all 50
    assert scoring.scored_negatives(50, 800_000, budget=20_000_000) == 12  # (25 - 1) // 2
    assert 800_000 * (1 + 2 * 12) <= 20_000_000 < 800_000 * (1 + 2 * 13)
    assert scoring.scored_negatives(50, 10 ** 8, budget=20_000_000) == scoring.MIN_NEGATIVES  # the floor
    assert scoring.scored_negatives(3, 10 ** 8, budget=20_000_000) == 3  # never more than asked


def _check_rows(scored, rows, endpoint, seen_split, num_users):
    """Every row's candidates and scores against the endpoint called here, one user at a time."""
    from models.interaction_data import histories

    _, latest = histories(seen_split, num_users, 5)
    for row in sorted(scored)[:: max(1, len(scored) // 12)] + [max(scored)]:
        out = scored[row]
        user, positive = int(rows.user[row]), int(rows.item[row])
        assert out["user_index"] == [user] and out["item_index"] == [positive]
        candidates = np.array(out["candidates"])
        assert len(candidates) == 1 + 2 * NEGATIVES and candidates[0] == positive
        seen = set(seen_split.item[seen_split.user == user].tolist())
        assert not (set(candidates[1:].tolist()) & (seen | {0, positive}))
        assert len(set(candidates[1:].tolist())) == 2 * NEGATIVES  # sampled and hard never repeat
        # the teacher sees the user's whole history, as when it ranks the user
        scores = endpoint(tf.constant([user], tf.int64), tf.constant(latest[[user]])).numpy()[0]
        assert np.allclose(out["teacher_scores"], scores[candidates], atol=1e-5)
        unseen = [i for i in np.argsort(-scores, kind="stable") if i not in seen and i not in (0, positive)]
        assert sorted(candidates[1 + NEGATIVES:].tolist()) == sorted(unseen[:NEGATIVES])  # hard = top unseen


def test_a_small_scoring_runs_in_process_and_a_large_one_keeps_its_workers():
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    def pipeline(runner=None):
        options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
        return beam.Pipeline(runner=runner, options=options)

    def mode(p):
        direct = p.options.view_as(DirectOptions)
        return direct.direct_running_mode, direct.direct_num_workers

    small = pipeline()
    assert scoring.in_process_when_small(small, scoring.IN_PROCESS_ROWS) and mode(small) == ("in_memory", 1)
    large = pipeline()
    assert not scoring.in_process_when_small(large, scoring.IN_PROCESS_ROWS + 1)
    assert mode(large) == ("multi_processing", 2)
    other = pipeline(FnApiRunner())  # not the DirectRunner (as Dataflow is not): its options stay
    assert not scoring.in_process_when_small(other, 10) and mode(other) == ("multi_processing", 2)
