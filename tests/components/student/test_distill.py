"""The student run's choice of scored rows: Split-train for phase one, Split-final for the refit."""

from components.student import distill


def test_split_files_picks_the_split_by_its_directory():
    patterns = ["/r/Scorer/scored_examples/7/Split-train/*", "/r/Scorer/scored_examples/7/Split-final/*",
                "gs://b/root/Split-train-old/Split-final/*"]
    assert distill.split_files(patterns, "train") == patterns[:1]
    assert distill.split_files(patterns, "final") == patterns[1:]
    assert distill.split_files(patterns, "eval") == []


def test_without_phase_one_a_student_goes_on_from_the_served_one_on_the_refit_rows(toy, tmp_path, monkeypatch):
    """The scorer wrote Split-final alone (a warm teacher that skipped phase one): the student starts
    from the served student's weights and trains warm_epochs on those rows, with no validation."""
    import dataclasses
    import json

    import numpy as np

    from components.teacher import training as teacher_training
    import tensorflow as tf

    from models import (artifacts, feature_tables, interaction_data, scored_rows, student, student_training,
                        student_warm_start)
    from models.retrieval_metrics import split_evaluator
    from tests.models.test_scored_rows import write_rows
    from tests.models.test_student import TINY, rows_for, tables_for

    config = dataclasses.replace(TINY, epochs=3, patience=3, refit=False, warm_epochs=2, recency_prior="none")
    tables, served_dir = tables_for(toy), tmp_path / "served"
    latest = interaction_data.latest_items(toy.splits["train"], toy.num_users, config.history)
    served_rows = write_rows(str(tmp_path / "served-rows" / "Split-train"), rows_for(toy))
    trained = {}
    distill.train_student(config, toy, tables, (scored_rows.open_rows(served_rows), latest, None, None),
                          split_evaluator(toy, ["train"], "eval"), str(served_dir / "kd"), trained=trained,
                          name="student_kd")
    served_dir.mkdir(exist_ok=True)
    student_warm_start.save(trained, str(served_dir / artifacts.STUDENT_WEIGHTS_FILE))
    interaction_data.save_dataset(toy, str(served_dir / artifacts.DATASET_FILE))
    feature_tables.save(tables, str(served_dir / artifacts.FEATURES_FILE))
    served_weights = [w.copy() for w in trained["student_kd"].get_weights()]

    # The next run's scorer wrote Split-final alone: Split-train is an empty directory, and
    # scoring_stats.json names the split scored.
    final_rows = rows_for(toy, seed=1)
    patterns = write_rows(str(tmp_path / "scored" / "Split-final"), final_rows)
    (tmp_path / "scored" / "Split-train").mkdir()
    scores = final_rows["teacher_scores"].astype(np.float64)
    (tmp_path / "scored" / artifacts.SCORING_STATS_FILE).write_text(json.dumps({"negatives": 3, "splits": {"final": {
        "rows": len(scores), "width": scores.shape[1], "real": scores.size, "sum": float(scores.sum()),
        "sum_squares": float(np.square(scores).sum())}}}))
    patterns = [str(tmp_path / "scored" / "Split-train" / "*"), *patterns]
    assert not distill.scored(patterns, "train") and distill.scored(patterns, "final")
    data = distill.training_rows(patterns, config, toy)
    assert data[0] is None and data[2] is not None and data[2].rows == len(scores)
    np.testing.assert_array_equal(data[3], teacher_training.latest_histories(toy, config.history))
    calls, fit = [], student_training.fit
    monkeypatch.setattr(student_training, "fit", lambda model, rows, latest_rows, validation, **kw: calls.append(
        (validation, kw.get("epochs"), [w.copy() for w in model.get_weights()])) or fit(model, rows, latest_rows,
                                                                                       validation, **kw))
    start = distill._starter({"from": str(served_dir)}, toy, tables)
    again = {}
    curves = distill.train_student(config, toy, tables, data, split_evaluator(toy, ["train"], "eval"),
                                   str(tmp_path / "kd"), start=start, trained=again, name="student_kd")
    assert len(calls) == 1  # no phase one: one training, without validation, for warm_epochs
    validation, epochs, first_weights = calls[0]
    assert validation is None and epochs == config.warm_epochs
    # It starts where the served student ended, as the warm start restores it (ids by id; a hashed
    # feature's bins from their most frequent known value, so not a plain copy of every table).
    tf.keras.utils.set_random_seed(config.seed)
    expected = student.StudentModel(toy.num_users, toy.num_items, tables, config.warm_phase_one(),
                                    np.bincount(toy.splits["train"].item, minlength=toy.num_items), None,
                                    student.known_items(toy))
    start(expected, "student_kd")
    for started, restored in zip(first_weights, expected.get_weights()):
        np.testing.assert_array_equal(started, restored)
    assert np.array_equal(first_weights[0], served_weights[0])  # the id table, carried by id
    assert curves["phase_one"] is False and curves["val_ndcg@10"] == []
    assert curves["refit"]["epochs"] == config.warm_epochs and len(curves["refit"]["loss"]) == config.warm_epochs
    assert curves["warm_start"]["started"] == "warm"
    assert any(not np.array_equal(a, b) for a, b in zip(again["student_kd"].get_weights(), served_weights))
