"""The model components on gs:// (a storage emulator, conftest's `gcs_root`): teacher scoring, the
student and compression Trainers' run_fn, and the serving and mobile exports write their files
there, and the next component reads them back; each is compared with the same step run locally.

The last two run the whole chain (teacher, scoring, student, compression) with every artifact on
gs://, SavedModels included.
"""

import dataclasses
import json
import os
import types
import uuid

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import components.compression.trainer_module  # noqa: E402
import components.student.trainer_module  # noqa: E402
from components.compression import compress  # noqa: E402
from components.student import distill  # noqa: E402
from components.teacher import scoring, training  # noqa: E402
from models import (artifacts, deployable, feature_tables, mobile_export, scored_rows, serving_export,  # noqa: E402
                    student, student_training)
from models.foundation import signatures  # noqa: E402
from models.interaction_data import histories  # noqa: E402
from tests.conftest import toy_dataset  # noqa: E402
from tests.models.test_student import TINY, tables_for  # noqa: E402
from models.foundation import storage  # noqa: E402

pytestmark = pytest.mark.slow  # teachers, students and compression trained on the storage emulator (~3 min)

TEACHER = {"encoder": "tiny", "text_length": 16, "teacher": {"dim": 8, "layers": 1, "intermediate": 16, "sequence": 5,
                                                             "history": 5, "epochs": 1, "batch_size": 32}}
STUDENT = {"dim": 8, "history": 4, "max_feature_bins": 8, "batch_size": 32, "learning_rate": 2e-2, "epochs": 2,
           "patience": 2}
COMPRESSION = {"target_sparsity": 0.0, "dense_sparsity": 0.0, "prune_epochs": 1, "ramp_epochs": 1, "qat_epochs": 1}


@pytest.fixture(scope="module")
def toy():
    return toy_dataset()


@pytest.fixture(scope="module")
def local_teacher(toy, tmp_path_factory):
    """A teacher trained and scored on a local directory: (teacher dir, scored dir, training.json)."""
    root = tmp_path_factory.mktemp("local")
    teacher_dir = str(root / "teacher")
    os.makedirs(teacher_dir)
    summary = training.fit_and_export(toy, teacher_dir, TEACHER)
    feature_tables.save(tables_for(toy), os.path.join(teacher_dir, artifacts.FEATURES_FILE))
    with beam.Pipeline() as p:
        scoring.score_training_rows(p, teacher_dir, str(root / "scored"), negatives=3, seed=7)
    return teacher_dir, str(root / "scored"), summary


def _patterns(scored_dir, splits=scoring.SCORED_SPLITS):
    return [os.path.join(scored_dir, f"Split-{split}", "*") for split in splits]


def _fn_args(train_files, base_dir, out_dir, custom_config, transform_graph_path=None):
    """What TFX's Trainer gives run_fn (the fields these modules read)."""
    serving = storage.join(out_dir, "model", artifacts.SAVED_MODEL_DIR)
    storage.makedirs(serving)  # TFX makes the artifact's directory before run_fn
    return types.SimpleNamespace(
        train_files=train_files, base_model=storage.join(base_dir, artifacts.SAVED_MODEL_DIR) + "/",
        serving_model_dir=serving, model_run_dir=storage.join(out_dir, "model_run"),
        custom_config=custom_config, transform_graph_path=transform_graph_path)


def test_training_json_keeps_its_format_and_is_read_from_gcs(local_teacher, gcs_root):
    teacher_dir, _, summary = local_teacher
    local = os.path.join(teacher_dir, artifacts.TRAINING_FILE)
    with open(local, encoding="utf-8") as f:
        assert f.read() == json.dumps(summary, indent=2)  # json.dump(summary, f, indent=2), as before
    storage.copy(local, storage.join(gcs_root, artifacts.TRAINING_FILE))
    assert training.read_summary(gcs_root) == training.read_summary(teacher_dir) == json.loads(json.dumps(summary))


def test_scored_rows_on_gcs_read_back_as_the_local_ones(local_teacher, toy, gcs_root):
    teacher_dir, scored_dir, _ = local_teacher
    with beam.Pipeline() as p:  # Beam writes the TFRecords to gs:// itself
        scoring.score_training_rows(p, teacher_dir, storage.join(gcs_root, "scored"), negatives=3, seed=7)
    for split in scoring.SCORED_SPLITS:
        local = distill.read_scored(_patterns(scored_dir, [split]))
        # a gs:// pattern, and one with a wildcard in a directory component (the plugin's glob misses it)
        for pattern in (storage.join(gcs_root, "scored", f"Split-{split}", "*"),
                        storage.join(gcs_root, "*", f"Split-{split}", "*.gz")):
            remote = distill.read_scored([pattern])
            assert set(remote) == set(local)
            for key in local:
                np.testing.assert_array_equal(remote[key], local[key])
    config = student.StudentConfig(**STUDENT)
    remote = distill.training_rows(_patterns(storage.join(gcs_root, "scored")), config, toy)
    local = distill.training_rows(_patterns(scored_dir), config, toy)
    for got, want in zip(remote, local):  # rows, histories, refit rows, refit histories
        if isinstance(want, scored_rows.ScoredRows):  # the same counts and scale, other files
            assert [os.path.basename(f) for f in got.files] == [os.path.basename(f) for f in want.files]
            assert (got.rows, got.width, got.real, got.scale) == (want.rows, want.width, want.real, want.scale)
        else:
            np.testing.assert_array_equal(got, want)


def test_run_fns_write_their_summaries_and_copies_to_gcs_as_locally(local_teacher, gcs_root, tmp_path, monkeypatch):
    """The two Trainers' own files (training runs faked: the whole chain is the guarded test below)."""
    teacher_dir = local_teacher[0]
    calls = []

    def train_both(train_files, teacher, config, kd_dir, no_kd_dir, log_dir):
        calls.append((teacher, kd_dir, no_kd_dir, log_dir))
        # the students' weights for the next run's warm start, as distill.train_both writes them
        storage.write_bytes(storage.join(storage.dirname(kd_dir), artifacts.STUDENT_WEIGHTS_FILE), b"weights")
        return {"config": dataclasses.asdict(config), "rows": 3, "student_kd": {"loss": [0.5, 0.25]}, "ünïcode": "é"}

    def compress_and_export(train_files, student_dir, transform_graph_dir, config, serving_dir, model_dir):
        calls.append((student_dir, serving_dir, model_dir))
        return {"config": dataclasses.asdict(config), "parity_top10_overlap": 0.9, "int8": {"zero_share": 0.1}}

    monkeypatch.setattr(distill, "train_both", train_both)
    monkeypatch.setattr(compress, "compress_and_export", compress_and_export)
    remote_teacher = storage.join(gcs_root, "teacher")
    for name in (artifacts.DATASET_FILE, artifacts.FEATURES_FILE, artifacts.TEACHER_WEIGHTS_FILE):
        storage.copy(os.path.join(teacher_dir, name), storage.join(remote_teacher, name))
    written = {}
    for where, base, out in (("local", teacher_dir, str(tmp_path)), ("gcs", remote_teacher, gcs_root)):
        args = _fn_args([], base, storage.join(out, "student"), {"student": {"dim": 4}})
        components.student.trainer_module.run_fn(args)
        student_dir = storage.dirname(args.serving_model_dir)
        assert calls[-1] == (base, args.serving_model_dir, storage.join(student_dir, artifacts.NO_KD_DIR),
                             args.model_run_dir)
        compression_args = _fn_args([], student_dir, storage.join(out, "compressed"),
                                    {"compression": {"qat_epochs": 1}})
        components.compression.trainer_module.run_fn(compression_args)
        compressed_dir = storage.dirname(compression_args.serving_model_dir)
        assert calls[-1] == (student_dir, compression_args.serving_model_dir, compressed_dir)
        written[where] = {name: storage.read_bytes(storage.join(student_dir, name)) for name in
                          (artifacts.TRAINING_FILE, artifacts.DATASET_FILE, artifacts.FEATURES_FILE)}
        written[where]["compression"] = storage.read_bytes(
            storage.join(compressed_dir, artifacts.COMPRESSION_FILE))
        # the blessed model carries what the next run's teacher warm-starts from (models/teacher_warm_start.py)
        written[where]["compressed"] = {name: storage.read_bytes(storage.join(compressed_dir, name))
                                        for name in (artifacts.TEACHER_WEIGHTS_FILE, artifacts.STUDENT_WEIGHTS_FILE,
                                                     artifacts.DATASET_FILE, artifacts.FEATURES_FILE)}
    assert written["gcs"] == written["local"]
    for name in (artifacts.DATASET_FILE, artifacts.FEATURES_FILE):
        with open(os.path.join(teacher_dir, name), "rb") as f:
            assert written["gcs"][name] == f.read()
    with open(os.path.join(teacher_dir, artifacts.TEACHER_WEIGHTS_FILE), "rb") as f:
        assert written["gcs"]["compressed"][artifacts.TEACHER_WEIGHTS_FILE] == f.read()
    assert written["gcs"]["compressed"][artifacts.STUDENT_WEIGHTS_FILE] == b"weights"


@pytest.fixture(scope="module")
def tiny_student(toy, tmp_path_factory):
    """An untrained tiny student: (model, its SavedModel dir (local), its int8-free TFLite bytes)."""
    tf.keras.utils.set_random_seed(0)
    model = student.StudentModel(toy.num_users, toy.num_items, tables_for(toy), TINY)
    model.score(tf.zeros([1], tf.int64), tf.zeros([1, TINY.history], tf.int64))
    saved = str(tmp_path_factory.mktemp("student") / "sm")
    student_training.export(model, saved)
    content = mobile_export.convert(deployable.build(model), deployable.feature_bins(model), TINY.history, int8=False,
                                    num_users=toy.num_users)
    return model, saved, content


def test_mobile_files_on_gcs_have_the_local_bytes_and_parity_reads_them(toy, tiny_student, gcs_root, tmp_path):
    _, saved, content = tiny_student
    mobile_export.write_vocabularies(str(tmp_path), toy.user_ids, toy.item_ids)
    mobile_export.write_vocabularies(gcs_root, toy.user_ids, toy.item_ids)
    for name in (signatures.USER_VOCAB, signatures.ITEM_VOCAB):
        assert storage.read_bytes(storage.join(gcs_root, name)) == (tmp_path / name).read_bytes()
    assert (tmp_path / signatures.USER_VOCAB).read_text(encoding="utf-8").split("\n")[:2] == ["", toy.user_ids[1]]
    metadata = compress.mobile_metadata(toy, TINY.history, {"zero_share": 0.25}, 0.875)
    compress._write_json(str(tmp_path / signatures.METADATA), metadata)
    compress._write_json(storage.join(gcs_root, signatures.METADATA), metadata)
    assert (tmp_path / signatures.METADATA).read_text() == json.dumps(metadata, indent=2)  # the format as before
    remote = storage.read_bytes(storage.join(gcs_root, signatures.METADATA))
    assert remote == (tmp_path / signatures.METADATA).read_bytes()
    assert compress._read_json(storage.join(gcs_root, signatures.METADATA)) == metadata
    # top10_overlap runs the TFLite model of a gs:// path (through a local copy)
    (tmp_path / signatures.TFLITE_FILE).write_bytes(content)
    storage.write_bytes(storage.join(gcs_root, signatures.TFLITE_FILE), content)
    latest = training.latest_histories(toy, TINY.history)
    local = compress.top10_overlap(saved, str(tmp_path / signatures.TFLITE_FILE), latest, users=12)
    assert compress.top10_overlap(saved, storage.join(gcs_root, signatures.TFLITE_FILE), latest, users=12) == local
    assert local > 0.9  # the float model ranks as the SavedModel does


def test_serving_export_checks_and_warmup_on_gcs(toy, tiny_student, gcs_root, tmp_path):
    model = tiny_student[0]
    scorer, bins = deployable.build(model), deployable.feature_bins(model)
    version = storage.join(gcs_root, signatures.MODEL_NAME, "1")
    storage.makedirs(version)  # an empty version directory (a TFX artifact URI) is accepted
    serving_export._check_inputs(scorer, bins, toy.user_ids, toy.item_ids, TINY.history, version)
    local = serving_export._write_warmup(str(tmp_path), toy.user_ids, toy.item_ids, TINY.history, 3)
    remote = serving_export._write_warmup(version, toy.user_ids, toy.item_ids, TINY.history, 3)
    assert remote == storage.join(version, signatures.WARMUP_FILE)
    assert storage.read_bytes(remote) == storage.read_bytes(local)
    with pytest.raises(ValueError, match="new version number"):  # now it holds a file
        serving_export._check_inputs(scorer, bins, toy.user_ids, toy.item_ids, TINY.history, version)


# The whole chain on gs://.


@pytest.fixture(scope="module")
def gcs_teacher(toy, gcs_emulator):
    """A teacher trained straight into gs:// and scored from there into gs://: (teacher, scored, training.json)."""
    root = f"{gcs_emulator}/{uuid.uuid4().hex[:12]}"
    teacher_dir = storage.join(root, "teacher")
    summary = training.fit_and_export(toy, teacher_dir, TEACHER)
    feature_tables.save(tables_for(toy), storage.join(teacher_dir, artifacts.FEATURES_FILE))
    with beam.Pipeline() as p:
        scoring.score_training_rows(p, teacher_dir, storage.join(root, "scored"), negatives=3, seed=7)
    return teacher_dir, storage.join(root, "scored"), summary


def test_teacher_trains_into_gcs_and_scoring_reads_it(gcs_teacher, toy):
    teacher_dir, scored_dir, summary = gcs_teacher
    assert storage.read_text(storage.join(teacher_dir, artifacts.TRAINING_FILE)) == json.dumps(summary, indent=2)
    assert storage.walk_files(storage.join(teacher_dir, artifacts.LOG_DIR))  # TensorBoard events
    model = tf.saved_model.load(storage.join(teacher_dir, artifacts.SAVED_MODEL_DIR))
    rows = distill.read_scored(_patterns(scored_dir, ["train"]))
    assert len(rows["row"]) == len(toy.splits["train"].user)
    # Split-train: the training teacher's scores of each row's candidates, on the training history
    users = rows["user_index"][:4]
    _, latest = histories(toy.splits["train"], toy.num_users, TEACHER["teacher"]["history"])
    scores = model.score_train(tf.constant(users), tf.constant(latest[users])).numpy()
    expected = np.take_along_axis(scores, rows["candidates"][:4], axis=1)
    np.testing.assert_allclose(rows["teacher_scores"][:4], expected, atol=1e-5)
