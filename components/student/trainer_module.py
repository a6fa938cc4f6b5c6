"""TFX Trainer module: distills the teacher into the student and trains its no-KD twin.

Trainer inputs: `examples` = TeacherScorer's scored examples (per training interaction: user and
item index, candidates, teacher scores), `base_model` = the teacher, whose artifact also carries
the dataset index (splits for validation, latest histories) and the Transform feature tables.
custom_config: {"student": every StudentConfig setting (models/settings_codec.py)}.

The Model artifact:
    Format-Serving/   the distilled student ("student_kd"; models/student_training.py, export)
    student_no_kd/    the same student trained on the hard loss alone, same seed, same data
    training.json     both students' curves, parameters, seconds and settings
    dataset.npz, features.npz  the index spaces and feature tables the students were trained in
                      (copied from the teacher: the artifact is self-contained for compression)
    student_weights.npz  both students' weights as arrays (the next run's warm start,
                      models/student_warm_start.py); a student's recency_prior.npy beside its
                      SavedModel when its scores include one (models/recency_prior.py)
and TensorBoard logs of both in the ModelRun artifact.
"""

import json
import os

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models import artifacts, settings_codec
from models.foundation import storage


def run_fn(fn_args) -> None:
    """TFX entry point (tfx.components.Trainer(run_fn=...))."""
    from components.student import distill
    from models.student import StudentConfig

    teacher_dir = os.path.dirname(fn_args.base_model.rstrip("/"))
    model_dir = os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    summary = distill.train_both(
        fn_args.train_files, teacher_dir, settings_codec.from_dict(StudentConfig, fn_args.custom_config["student"]),
        kd_dir=fn_args.serving_model_dir, no_kd_dir=os.path.join(model_dir, artifacts.NO_KD_DIR),
        log_dir=fn_args.model_run_dir)
    # The artifact dirs may be gs:// (Kubeflow, Vertex); json.dumps(indent=2) keeps the local bytes.
    storage.write_text(storage.join(model_dir, artifacts.TRAINING_FILE), json.dumps(summary, indent=2))

    for name in (artifacts.DATASET_FILE, artifacts.FEATURES_FILE, artifacts.TEACHER_WEIGHTS_FILE,
                 artifacts.ITEM_TEXT_FILE, artifacts.ITEM_TEXT_SOURCE_FILE):
        if name in (artifacts.ITEM_TEXT_FILE, artifacts.ITEM_TEXT_SOURCE_FILE) and not storage.exists(
                storage.join(teacher_dir, name)):  # a teacher exported before the text vectors were kept
            continue
        storage.copy(storage.join(teacher_dir, name), storage.join(model_dir, name))
