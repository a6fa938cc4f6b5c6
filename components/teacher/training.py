"""Teacher training, outside TFX's plumbing: examples in, SavedModel and dataset index out.

Layout of the output directory (the Model artifact):
    Format-Serving/   the teacher SavedModel (models/teacher.py, models/teacher_training.py export)
    dataset.npz       the index spaces, texts and splits the teacher was trained on
    item_text.npy     the items' pretrained text embeddings, and item_text.json the encoder that made
                      them (models/item_text_cache.py: a warm start reuses them)
    features.npz      users' and items' Transform features in that index space (for the student)
    training.json     timings, parameters, per-epoch losses
    logs/             TensorBoard logs of the training

Distributed (the teacher's `distribute` setting, models/distribute.py): the strategy is created
before anything else (a multi-worker one must precede TensorFlow's first op), every worker reads the
data and trains, and only the chief writes the directory; the other workers write theirs into a
temporary directory, removed afterwards (TensorFlow's advice: every worker runs the same saving code).
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from models import (artifacts, distribute, feature_tables, interaction_data, item_text_cache, settings_codec, teacher,
                    teacher_training, teacher_warm_start, text_columns, text_encoder)
from models.teacher import TeacherConfig
from models.foundation import storage

SPLITS = ("train", "eval", "test")
# training.json's warm_start key: a warm start on the newest span's data trained the rows from this
# timestamp on; the TeacherScorer scores those alone (components/teacher/scoring.py).
ROWS_FROM = "rows_from"
# warm_source's answer: the last blessed model's directory, whatever the decision. A start from scratch
# (the drift check's, or a teacher whose architecture changed) still takes from it what does not
# depend on the interactions: the items' text vectors (item_text_cache) and the compression setting
# it shipped (components/compression/compress.py first_step).
SERVED = "served"
# training.json's key: false when a warm start skipped phase one (WarmStart.phase_one): the export's
# score_train is the final teacher, and the scorer writes Split-final alone.
PHASE_ONE = "phase_one"


@dataclasses.dataclass(frozen=True)
class TeacherTrainerSettings:
    """What TeacherTrainer receives (its settings_json, models/settings_codec.py)."""
    teacher: TeacherConfig = dataclasses.field(default_factory=TeacherConfig)
    # "minilm": the pretrained MiniLM-L6 BERT; "tiny": a random 2-layer BERT (tests only).
    encoder: str = "minilm"
    text_length: int = 32  # tokens per text, [CLS] and [SEP] included
    item_text_columns: Tuple[str, ...] = ("title",)


SettingsLike = Union[TeacherTrainerSettings, Mapping[str, Any]]


def trainer_settings(settings: SettingsLike) -> TeacherTrainerSettings:
    """settings as TeacherTrainerSettings: given so, or a mapping of its fields (tests and benches
    name only what they change; the rest takes the class's defaults). An unknown key is a ValueError."""
    if isinstance(settings, TeacherTrainerSettings):
        return settings
    try:
        return settings_codec.from_dict(TeacherTrainerSettings, settings)
    except TypeError as error:
        raise ValueError(f"teacher: {error}") from None


def train_and_export(examples_uri: str, catalog_uri: str, transform_graph_uri: str, vocabularies, out_dir: str,
                     settings: SettingsLike, warm: Optional[Dict[str, Any]] = None) -> Dict:
    """vocabularies: (user ids, item ids) in Transform's vocabulary order. Returns training.json.
    warm: warm_source's answer (None: from scratch, no drift check ran).

    Also writes the users' and items' Transform features in the same index space for the student
    (features.npz, models/feature_tables.py).
    """
    settings = trainer_settings(settings)
    distribute.strategy_for(settings.teacher.distribute)  # first: before TensorFlow's first op
    started = time.monotonic()
    from components.ingest import beam_ingest

    summary_path = os.path.join(examples_uri, artifacts.INGEST_SUMMARY_FILE)
    ingest_summary = storage.read_json(summary_path) if storage.exists(summary_path) else {}
    cold = ingest_summary.get(beam_ingest.COLD_ITEMS, [])
    dataset = interaction_data.build_dataset(
        {s: os.path.join(examples_uri, f"Split-{s}") for s in SPLITS},
        os.path.join(catalog_uri, "Split-catalog"), *vocabularies,
        item_text_columns=settings.item_text_columns, cold_item_ids=cold)
    if distribute.is_chief():  # the other workers' models need no features
        feature_tables.save(feature_tables.build(transform_graph_uri, dataset),
                            os.path.join(out_dir, artifacts.FEATURES_FILE))
    return fit_and_export(dataset, out_dir, settings, read_seconds=time.monotonic() - started, warm=warm,
                          newest_span_from=ingest_summary.get(beam_ingest.NEWEST_SPAN_FROM))


def warm_source(blessed_dir: Optional[str], decision: Optional[str], reason: str) -> Dict[str, Any]:
    """{"from": the directory to start from or None, "reason": one line, SERVED: blessed_dir when there
    is one}: a warm start when the drift check said warm (decision, reason: its drift.json's) and the
    last blessed model carries the teacher weights it needs (artifacts.TEACHER_WEIGHTS_FILE and
    DATASET_FILE, copied along by the student and compression Trainers)."""
    started = _warm_or_scratch(blessed_dir, decision, reason)
    return {**started, SERVED: blessed_dir} if blessed_dir else started


def _warm_or_scratch(blessed_dir: Optional[str], decision: Optional[str], reason: str) -> Dict[str, Any]:
    if decision is None:
        return {"from": None, "reason": "from scratch: no drift check (the data is not in spans)"}
    if decision != "warm":
        return {"from": None, "reason": f"from scratch: {reason}"}
    if blessed_dir is None:
        return {"from": None, "reason": "from scratch: no blessed model to start from yet"}
    if not storage.exists(storage.join(blessed_dir, artifacts.TEACHER_WEIGHTS_FILE)):
        return {"from": None, "reason": "from scratch: the last blessed model carries no teacher weights "
                                        "(trained before warm starts existed)"}
    return {"from": blessed_dir, "reason": f"warm start from the last blessed run: {reason}"}


def fit_and_export(dataset, out_dir: str, settings: SettingsLike, read_seconds: float = 0.0,
                   item_text: Optional[np.ndarray] = None, warm: Optional[Dict[str, Any]] = None,
                   newest_span_from: Optional[int] = None) -> Dict:
    """Encodes the item texts (unless given: the quality bench encodes them once for every teacher
    it trains), picks the wide part, trains, exports into out_dir (a temporary directory on a worker
    that is not the chief); returns training.json. newest_span_from: the newest span's first
    timestamp (data in spans): a warm start trains on what came from it on (WarmStart.data)."""
    settings = trainer_settings(settings)
    config = settings.teacher
    distribute.strategy_for(config.distribute)  # multi_worker_mirrored: a ValueError if created too late
    warm = warm or {"from": None, "reason": "from scratch"}
    if distribute.is_chief():
        return _fit_and_export(dataset, out_dir, settings, config, read_seconds, item_text, warm, newest_span_from)
    scratch = tempfile.mkdtemp(prefix="teacher-worker-")
    try:
        return _fit_and_export(dataset, scratch, settings, config, read_seconds, item_text, warm, newest_span_from)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fit_and_export(dataset, out_dir: str, settings: TeacherTrainerSettings, config: teacher.TeacherConfig,
                    read_seconds: float, item_text: Optional[np.ndarray], warm: Dict[str, Any],
                    newest_span_from: Optional[int]) -> Dict:
    from models import ease
    from models.retrieval_metrics import split_evaluator

    if dataset.num_items > ease.MAX_ITEMS:
        raise ValueError(f"the catalog has {dataset.num_items - 1:,} items: the teacher's wide part (EASE) is a dense "
                         f"items x items matrix, at most {ease.MAX_ITEMS:,} items on one machine (models/ease.py)")
    encoder = encoder_for(settings, dataset)
    started = time.monotonic()
    texts_reused = 0
    if item_text is None:  # the served model's vectors of unchanged texts, warm start or not
        item_text, texts_reused = item_text_vectors(encoder, dataset, warm)
    encode_seconds = time.monotonic() - started

    started = time.monotonic()
    train, valid = dataset.splits["train"], dataset.splits["eval"]
    latest = interaction_data.latest_items(train, dataset.num_users, config.history)
    evaluator = split_evaluator(dataset, ["train"], "eval").sample(config.validation_users, config.seed) \
        if len(valid.user) else None
    if evaluator is None:  # nothing to pick on: EASE's usual l2, no recency decay
        l2, half_life, picked = config.l2 or 500.0, config.unpicked_half_life(), {}
    else:
        l2, half_life, picked = teacher.pick_wide(train.user, train.item, latest, dataset.num_users,
                                                  dataset.num_items, evaluator, config)
    wide_train = ease.EaseModel(dataset.num_items, l2).fit(train.user, train.item, dataset.num_users).weights
    # items without interactions (cold, or seen later only): wide columns borrowed from their text neighbours
    wide_train, text_info = text_columns.with_text_columns(wide_train, item_text, train.item)
    wide_seconds = time.monotonic() - started

    final, text_final = None, None
    if skips_phase_one(config, warm):
        final, text_final = _final_teacher(dataset, item_text, l2, half_life, config)
        warm = _started(final, warm, dataset)  # a teacher of another architecture: phase one after all
    if final is not None and warm["from"]:
        model, history = final, _restored_deep_weight(final, warm, config)
        trained_users, warm = _trained_users(dataset, warm, config, newest_span_from)
        refit = teacher_training.go_on(final, latest_histories(dataset, config.history), config, half_life,
                                       epochs=config.warm_start.applied_to(config).refit_epochs,
                                       users=trained_users["final"])
        warm = {**warm, PHASE_ONE: False, "epochs": refit["epochs"]}  # report.json's warm_start.teacher
    else:
        model = teacher.build_teacher(item_text, wide_train, half_life, config,
                                      known_items=interaction_data.items_with_interactions(train.item,
                                                                                           dataset.num_items))
        warm = _started(model, warm, dataset)
        phase_one = config.warm_start.applied_to(config) if warm["from"] else config
        trained_users, warm = _trained_users(dataset, warm, config, newest_span_from)
        history = teacher_training.fit(model, latest, evaluator, phase_one, half_life,
                                       log_dir=os.path.join(out_dir, artifacts.LOG_DIR), users=trained_users["train"])
        final, text_final = _final_teacher(dataset, item_text, l2, half_life, config)
        if warm["from"]:  # refit "scratch" starts here too (refit "warm" copies phase one's weights anyway)
            _started(final, warm, dataset)
        refit = teacher_training.refit(final, model, latest_histories(dataset, config.history), phase_one,
                                       half_life, epochs=history["best_epoch"], users=trained_users["final"])
    precision = model.dtype_policy.name  # "mixed_float16" or "float32" (the export makes it float32)

    teacher_training.export(model, final, os.path.join(out_dir, artifacts.SAVED_MODEL_DIR), config.history)
    teacher_warm_start.save(final, storage.join(out_dir, artifacts.TEACHER_WEIGHTS_FILE))
    interaction_data.save_dataset(dataset, os.path.join(out_dir, artifacts.DATASET_FILE))
    # the next warm start's encoder reuses them, and the cold-item evaluation's text-kNN baseline reads them
    item_text_cache.save(out_dir, item_text, encoder.source)
    head = teacher_training.head_params(model)
    summary = {
        "encoder": settings.encoder,
        "config": settings_codec.to_dict(config),  # JSON values (half_life: "picked", a number or "none")
        "wide": {"l2": l2, "half_life": half_life, **picked,
                 "text_columns": {"train": text_info, "final": text_final}},
        "params": encoder.params + head,
        "encoder_params": encoder.params,
        "head_params": head,
        "gate": round(float(np.asarray(model.gate)), 4),
        "deep_weight": history["deep_weight"],
        "warm_start": warm,
        "best_epoch": history["best_epoch"],
        PHASE_ONE: model is not final,
        "refit": refit,
        "texts_encoded": len(dataset.item_texts) - texts_reused,
        "texts_reused": texts_reused,
        "distribute": {"strategy": config.distribute, "replicas": model.distribute_strategy.num_replicas_in_sync,
                       "workers": distribute.worker_count()},
        "precision": precision,
        "seconds": {"read": round(read_seconds, 1), "encode": round(encode_seconds, 1),
                    "wide": round(wide_seconds, 1), "train": history["seconds"],
                    "refit": refit["seconds"]},
        "epochs": history["epochs"],
        "loss": history["loss"],
        "val_loss": [],
        "val_ndcg@10": history["val_ndcg@10"],
    }
    # out_dir may be a gs:// artifact; json.dumps(indent=2) keeps the file's bytes as they were.
    storage.write_text(storage.join(out_dir, artifacts.TRAINING_FILE), json.dumps(summary, indent=2))
    return summary


def skips_phase_one(config: teacher.TeacherConfig, warm: Dict[str, Any]) -> bool:
    """A warm start without phase one (WarmStart.phase_one false): only when the students go on from
    the served ones too, since they then train on the final teacher's rows alone (no Split-train)."""
    return bool(warm["from"]) and not config.warm_start.phase_one and _has_students(warm["from"])


def _has_students(blessed_dir: str) -> bool:
    return all(storage.exists(storage.join(blessed_dir, name))
               for name in (artifacts.STUDENT_WEIGHTS_FILE, artifacts.FEATURES_FILE))


def _final_teacher(dataset, item_text, l2: float, half_life, config: teacher.TeacherConfig):
    """(the teacher whose wide part is fit on train + eval, its text-column summary): what ranks test users."""
    from models import ease

    known = latest_split(dataset)
    wide_final = ease.EaseModel(dataset.num_items, l2).fit(known.user, known.item, dataset.num_users).weights
    wide_final, text_final = text_columns.with_text_columns(wide_final, item_text, known.item)
    final = teacher.build_teacher(item_text, wide_final, half_life, config,
                                  known_items=interaction_data.items_with_interactions(known.item, dataset.num_items))
    return final, text_final


def _restored_deep_weight(final, warm: Dict[str, Any], config: teacher.TeacherConfig) -> Dict[str, Any]:
    """fit's answer for a warm start without phase one: no epochs, no curve; the deep weight the served
    teacher ranked with (a teacher saved before it was kept: the objective's unvalidated one)."""
    weight = float(np.asarray(final.deep_weight)) if not config.chosen_objective.ranks_with_deep_weight else (
        teacher_warm_start.saved_deep_weight(storage.join(warm["from"], artifacts.TEACHER_WEIGHTS_FILE)))
    if weight is None:
        weight = config.chosen_objective.unvalidated_deep_weight() if config.use_bert else 0.0
    final.deep_weight.assign(float(weight))
    return {"loss": [], "val_ndcg@10": [], "epochs": 0, "best_epoch": 0, "deep_weight": float(weight),
            "seconds": 0.0}


def phase_one_ran(teacher_dir: str) -> bool:
    """Whether an exported teacher had a phase one (training.json; teachers from before the warm
    start without it always had): without one its scorer writes Split-final alone."""
    return read_summary(teacher_dir).get(PHASE_ONE, True)


def item_text_vectors(encoder, dataset, warm: Dict[str, Any]):
    """item_text_cache.encode's (vectors, how many reused): from the model the weights start from, or
    else the served one (SERVED): a text's vector depends on the text and the encoder alone."""
    return item_text_cache.encode(encoder, dataset, warm["from"] or warm.get(SERVED))


def served_of(warm: Dict[str, Any]) -> Dict[str, Any]:
    """{SERVED: the served model's directory} of a warm_source answer that names one, else {}."""
    return {SERVED: warm[SERVED]} if warm.get(SERVED) else {}


def _started(model, warm: Dict[str, Any], dataset) -> Dict[str, Any]:
    """Restores `model` from warm["from"] (a blessed model's directory) when set; returns warm with
    what was kept, or turned into a start from scratch when the earlier teacher does not fit."""
    if not warm["from"]:
        return warm
    earlier = interaction_data.load_dataset(storage.join(warm["from"], artifacts.DATASET_FILE))
    try:
        kept = teacher_warm_start.restore(model, storage.join(warm["from"], artifacts.TEACHER_WEIGHTS_FILE),
                                          earlier.item_ids, dataset.item_ids)
    except teacher_warm_start.ArchitectureChanged as error:
        return {"from": None, "reason": f"from scratch: {error}", **served_of(warm)}
    return {**warm, **kept}


def _trained_users(dataset, warm: Dict[str, Any], config: teacher.TeacherConfig, newest_span_from: Optional[int]):
    """({"train": phase one's users, "final": the refit's}, warm): boolean [num_users] masks, or None for
    every user with a history. A warm start on WarmStart.data "newest_span" trains the users with an
    interaction at or after newest_span_from (train; train + eval for the refit), and warm records it
    (ROWS_FROM: the TeacherScorer scores those rows alone; users_trained: the refit's users;
    rows_trained: the rows of each scored split). It is a timestamp, not a span label: rows of an older
    span at or after it count too (deliveries that overlap in time), and a newest span with one early
    row trains on nearly the whole window."""
    every = {"train": None, "final": None}
    if not warm["from"] or config.warm_start.data != "newest_span" or newest_span_from is None:
        return every, warm
    # The scorer's rows are the students' and the compression's: only students that go on from the
    # served ones can learn from the newest span's alone (components/student/distill.py warm_source).
    if not _has_students(warm["from"]):
        return every, warm
    train, known = dataset.splits["train"], latest_split(dataset)
    masks = {}
    for name, rows in (("train", train), ("final", known)):
        mask = np.zeros(dataset.num_users, bool)
        mask[rows.user[rows.timestamp >= newest_span_from]] = True
        masks[name] = mask
    if not masks["train"].any():  # the newest span has nothing in train (all eval and test): the window
        return every, warm
    return masks, {**warm, ROWS_FROM: int(newest_span_from), "users_trained": int(masks["final"].sum()),
                   "rows_trained": {"train": int(np.sum(train.timestamp >= newest_span_from)),
                                    "final": int(np.sum(known.timestamp >= newest_span_from))}}


def rows_from(teacher_dir: str) -> Optional[int]:
    """The first timestamp an exported teacher's warm start trained from (training.json's
    warm_start, ROWS_FROM): the TeacherScorer scores the rows from it on alone. None: every row."""
    return (read_summary(teacher_dir).get("warm_start") or {}).get(ROWS_FROM)


def encoder_for(settings: SettingsLike, dataset) -> text_encoder.TextEncoder:
    settings = trainer_settings(settings)
    length = settings.text_length
    if settings.encoder == "tiny":
        # Tests: a random 2-layer, 32-wide BERT over the words of the data's own texts.
        words = sorted({w for t in dataset.user_texts + dataset.item_texts for w in t.lower().split()})
        return text_encoder.tiny_random(words, sequence_length=length)
    return text_encoder.load_pretrained(sequence_length=length)


def read_summary(teacher_dir: str) -> Dict[str, Any]:
    """training.json of an exported teacher (its config gives the history length it expects)."""
    return storage.read_json(storage.join(teacher_dir, artifacts.TRAINING_FILE))


def latest_split(dataset) -> interaction_data.Split:
    """train + eval as one Split: the benchmark's training share (what test users are ranked from)."""
    train, valid = dataset.splits["train"], dataset.splits["eval"]
    return interaction_data.Split(*(np.concatenate([getattr(train, f), getattr(valid, f)])
                                    for f in ("user", "item", "timestamp")))


def latest_histories(dataset, length: int) -> np.ndarray:
    """[num_users, length] each user's most recent train and eval items, for ranking at test.

    Eval is part of the benchmark's training share: the evaluation masks those items as seen and
    the popularity baseline counts them, so the teacher's history includes them too.
    """
    return interaction_data.latest_items(latest_split(dataset), dataset.num_users, length)
