"""The pipeline's contracts in one place: the file names inside each artifact, the component ids,
where the pushers publish (docs/design.md, "Outputs").

Writers and readers import these names from here, never from each other: the compressor, the
evaluator, the pushers, `recdistill add-items`, the benches and the tests agree on a layout
because there is one of it. Changing a value moves files on disk: an existing run's artifacts
and pushed versions are then no longer found, so values only ever change with a migration.

It imports nothing of the project but models/foundation/signatures.py (the deployed models'
interfaces, whose MODEL_NAME is a directory of the serving destination).
"""

from models.foundation import signatures

# --- inside TeacherTrainer's Model artifact (components/teacher/training.py) -------------------
SAVED_MODEL_DIR = "Format-Serving"  # TFX's name for a serving model inside a Model artifact
DATASET_FILE = "dataset.npz"  # index spaces and splits (models/interaction_data.py)
ITEM_TEXT_FILE = "item_text.npy"  # [items, 384] the pretrained text embeddings (models/item_text_cache.py)
ITEM_TEXT_SOURCE_FILE = "item_text.json"  # the encoder that made them (TextEncoder.source)
TRAINING_FILE = "training.json"  # the teacher's settings and loss curves; the students' too (below)
LOG_DIR = "logs"  # TensorBoard
# the final teacher's weights as arrays, for a warm start of the next run's (models/teacher_warm_start.py);
# StudentTrainer's and StudentCompressor's artifacts carry a copy, with DATASET_FILE (its item ids)
TEACHER_WEIGHTS_FILE = "teacher_weights.npz"
FEATURES_FILE = "features.npz"  # the Transform feature tables in the index spaces (models/feature_tables.py)

# --- inside StudentTrainer's Model artifact (components/student/trainer_module.py) -------------
# SAVED_MODEL_DIR: the KD student; TRAINING_FILE: both students' settings and curves;
# DATASET_FILE and FEATURES_FILE: copied from the teacher's artifact (self-contained for compression).
NO_KD_DIR = "student_no_kd"  # the student trained without the teacher (the baseline of the gain)
# both students' weights as arrays, for a warm start of the next run's (models/student_warm_start.py);
# StudentCompressor's artifact (the blessed one) carries a copy, with DATASET_FILE and FEATURES_FILE
STUDENT_WEIGHTS_FILE = "student_weights.npz"
# in a student's SAVED_MODEL_DIR: [2, num_items] the weighted recency prior its scores include, one
# row for a known user and one for a cold user (models/recency_prior.py; only when a weight is above 0), counted
# over every split to the push (the test figures take it back to the test's start:
# components/evaluation/test_start_prior.py); the compressor adds the KD student's
RECENCY_PRIOR_FILE = "recency_prior.npy"

# --- inside StudentCompressor's Model artifact (components/compression/compress.py) ------------
# SAVED_MODEL_DIR: the TF Serving SavedModel of the compressed student.
MOBILE_DIR = "mobile"  # model.tflite (int8), user_vocab.txt, item_vocab.txt, metadata.json
FLOAT_TFLITE = "tflite_float.tflite"  # the uncompressed KD student, float32: the "before"
COMPRESSION_FILE = "compression.json"  # fine-tuning logs, sparsity, int8 zero share, parity

# --- inside the other components' artifacts ---------------------------------------------------
INGEST_SUMMARY_FILE = "ingest_summary.json"  # ExampleGen's examples: counts, column types, dropped rows
DRIFT_FILE = "drift.json"  # DriftCheck's drift report: every distance, its bound, the decision
SCORING_STATS_FILE = "scoring_stats.json"  # TeacherScorer's scored examples: negatives, rows per split
EVALUATION_FILE = "models.json"  # ModelEvaluator's evaluation: every model's metrics
CURVES_FILE = "curves.json"  # ModelEvaluator's evaluation: the training curves of the report

# --- component ids (tfx_pipeline/pipeline.py gives them; ML Metadata and the runners find them) -
EXAMPLE_GEN = "InteractionsExampleGen"
SPAN_STATISTICS_GEN = "SpanStatisticsGen"  # input in spans: statistics of the newest and previous span
DRIFT_CHECK = "DriftCheck"  # input in spans: drift between them, and the decision (components/drift/)
TEACHER_TRAINER = "TeacherTrainer"
TEACHER_SCORER = "TeacherScorer"
STUDENT_TRAINER = "StudentTrainer"
STUDENT_COMPRESSOR = "StudentCompressor"
BLESSED_RESOLVER = "LatestBlessedModelResolver"
MODEL_EVALUATOR = "ModelEvaluator"
PUSHERS = {"serving": "ServingPusher", "mobile": "MobilePusher"}  # ModelPusher's kinds

# --- push destinations: each kind's base directory under a push root (versions go below) -------
SERVING_BASE = ("serving", signatures.MODEL_NAME)
MOBILE_BASE = ("mobile",)
PUSH_BASES = {"serving": SERVING_BASE, "mobile": MOBILE_BASE}
SAVED_MODEL_FILE = "saved_model.pb"  # what TF Serving needs to load a version: a serving version's last file

# --- a run directory (`recdistill run --output DIR`, tfx_pipeline/local_runner.py) --------------
METADATA_FILE = "metadata.sqlite"  # ML Metadata: where add-items and the report find the artifacts
