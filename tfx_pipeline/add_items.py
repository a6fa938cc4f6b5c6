"""`recdistill add-items --run DIR --items NEW.csv`: new catalog items into new pushed versions of
both deployed models, without retraining (docs/add-items.md).

  1. What is deployed: the run's ML Metadata gives the pushed model's lineage (the KD student,
     the Transform graph, the catalog's column types: tfx_pipeline/pushed_lineage.py); the latest
     versions under the pushers' destinations are extended, add-items' own earlier ones included.
  2. NEW.csv is read, checked and encoded as ingestion reads items.csv (tfx_pipeline/new_items.py).
  3. Its rows go through Transform's graph as the catalog's did (models/feature_tables.py), then
     through the KD student's candidate tower, as new columns of the deployed scorer
     (models/catalog_extension.py): indices V, V + 1, ... after the V of the latest version.
  4. Both models are written as the compressor writes them (models/serving_export.py validates
     its SavedModel; models/mobile_export.py converts with builtin ops only), vocabularies
     extended, metadata.json updated (its `added_items` says what was added to which version).
  5. Checks (tfx_pipeline/extension_checks.py): old items' scores unchanged, new items scored and
     ranked. Only then are both published, in one transaction (components/push/push.py): both
     bases locked, both checked to still have as their latest the versions extended in step 1
     (else push.PushConflict, "version N appeared while this push was built; rerun", and nothing
     is published: another add-items or a pipeline push came first, and its versions stay),
     then both published under one number, the next above both bases, the SavedModel first:
     `recdistill serve` picks it up at its next poll. Each names the model it extends
     (push.EXTENDS_FILE): the pipeline's pushers, rerun on that same model, leave the extension
     in place instead of pushing the trained catalog over it.

Where it writes: under the run directory given (its serving/ and mobile/, wherever ML Metadata
says the run was written: a copied run is extended in the copy, tfx_pipeline/pushed_lineage.py),
or under --push-root. A run that pushed elsewhere (its own --push-root) needs --push-root.
"""

import json
import os
import tempfile
import time
import types
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

from components.compression import compress  # noqa: E402
from components.ingest.csv_rows import display_name  # noqa: E402
from components.push import push  # noqa: E402
from components.teacher import training as teacher_training  # noqa: E402
from models import (artifacts, catalog_extension, deployable, feature_tables, interaction_data,  # noqa: E402
                    mobile_export, serving_export)
from models.foundation import signatures  # noqa: E402
from tfx_pipeline import extension_checks  # noqa: E402
from tfx_pipeline import new_items  # noqa: E402
from models import tf_serving_files  # noqa: E402
from models.vocabulary_file import read_vocabulary  # noqa: E402
from models.foundation.tflite_runner import TFLiteRanker  # noqa: E402
from tfx_pipeline import pushed_lineage  # noqa: E402
from models.foundation import storage  # noqa: E402


class DeployedVersionError(pushed_lineage.LineageError):
    """The latest pushed version cannot be read (a corrupt or half-copied version)."""


def add_items(run_dir: str, items_csv: str, push_root: Optional[str] = None,
              max_bad_share: Optional[float] = None) -> Dict:
    """Adds NEW.csv's good rows to the latest pushed versions; returns what was done.

    push_root: where serving/ and mobile/ are (default: where the run's pushers pushed, which must
    be inside run_dir). max_bad_share: default, the run's ingestion setting. Raises
    pushed_lineage.LineageError (DeployedVersionError among them), InputFileError,
    new_items.IdsInCatalog or DataQualityError for bad input, extension_checks.CheckFailed when the
    extended models do not pass, push.PushConflict when another push published meanwhile, and
    push.LockBusy: nothing is pushed in every one of these cases."""
    started = time.monotonic()
    lineage = pushed_lineage.read(run_dir)
    serving_base, mobile_base = _bases(lineage, run_dir, push_root)
    serving_from = _latest(serving_base, artifacts.SAVED_MODEL_FILE)
    mobile_from = _latest(mobile_base, signatures.METADATA)
    old_model = _load_serving(serving_from)
    old_ids, old_metadata = _read_mobile(mobile_from)
    ingest_summary = storage.read_json(storage.join(lineage.examples_dir, artifacts.INGEST_SUMMARY_FILE))
    column_types = ingest_summary["column_types"]["items"]
    share = lineage.ingest_settings["max_bad_share"] if max_bad_share is None else max_bad_share
    new = new_items.read(items_csv, column_types, old_ids, share)

    dataset = interaction_data.load_dataset(storage.join(lineage.student_dir, artifacts.DATASET_FILE))
    kd = compress.load_student(lineage.student_dir, dataset, feature_tables.load_from(lineage.student_dir))
    weights = catalog_extension.scorer_weights(old_model)
    _check_catalogs(old_ids, dataset.item_ids, catalog_extension.scored_items(weights), serving_from, mobile_from)
    vectors = catalog_extension.item_vectors(kd, transformed_items(lineage.transform_graph_dir, new.records))
    extended, extension = catalog_extension.extend(kd, weights, vectors)
    scorer = catalog_extension.quantized_scorer(kd, extended)
    item_ids, history, bins = old_ids + new.ids, kd.config.history, deployable.feature_bins(kd)

    with tempfile.TemporaryDirectory(prefix="recdistill-add-items-") as scratch:
        serving_dir, mobile_dir = os.path.join(scratch, "serving"), os.path.join(scratch, "mobile")
        serving_export.export(scorer, bins, serving_export.hash_bins_of(kd), dataset.user_ids, item_ids, history,
                              serving_dir, transform_graph_dir=lineage.transform_graph_dir)
        int8 = mobile_export.convert(scorer, bins, history, int8=True, num_users=dataset.num_users)
        os.makedirs(mobile_dir)
        tflite = os.path.join(mobile_dir, signatures.TFLITE_FILE)
        with open(tflite, "wb") as f:
            f.write(int8)
        mobile_export.write_vocabularies(mobile_dir, dataset.user_ids, item_ids)
        latest = teacher_training.latest_histories(dataset, history)
        with storage.local_copy(storage.join(mobile_from, signatures.TFLITE_FILE)) as old_tflite:
            checks = extension_checks.check(old_model, tf.saved_model.load(serving_dir), old_tflite, tflite, latest,
                                            len(old_ids))
        added = {"count": len(new.ids), "file": display_name(items_csv), "first_index": len(old_ids),
                 "extends": {"serving": _version(serving_from), "mobile": _version(mobile_from)}, **extension}
        metadata = _mobile_metadata(old_metadata, dataset.num_users, len(item_ids), history,
                                    mobile_export.zero_share(int8), checks, added)
        with open(os.path.join(mobile_dir, signatures.METADATA), "w") as f:
            f.write(json.dumps(metadata, indent=2))
        # So that a pipeline rerun blessing the model these versions extend does not push it over them.
        for directory, base_version, exclude in ((serving_dir, serving_from, ()),
                                                 (mobile_dir, mobile_from, (signatures.METADATA,))):
            with open(os.path.join(directory, push.EXTENDS_FILE), "w") as f:
                f.write(push.extends_marker(base_version, exclude))
        # Everything is checked: publish both, only if what they extend is still the latest of each.
        (serving_version, serving_path, _), (mobile_version, mobile_path, _) = push.publish([
            push.Target(serving_dir, serving_base, artifacts.SAVED_MODEL_FILE, built_on=_version(serving_from)),
            push.Target(mobile_dir, mobile_base, signatures.METADATA, prepare=push.stamp_version,
                        compare_exclude=(signatures.METADATA,), built_on=_version(mobile_from))])
    tf_serving_files.write_models_config(storage.dirname(serving_base))
    tf_serving_files.write_batching_parameters(storage.dirname(serving_base))
    return {"added": new.ids, "bad": new_items.describe_bad(new.bad), "rows": new.rows,
            "indices": [len(old_ids), len(item_ids) - 1], "serving": serving_path, "mobile": mobile_path,
            "versions": {"serving": serving_version, "mobile": mobile_version}, "extension": extension,
            "checks": checks, "seconds": round(time.monotonic() - started, 1)}


def transformed_items(transform_graph_dir: str, records: List[bytes]) -> Dict[str, np.ndarray]:
    """{item feature: [n, ...] int64}: Transform's outputs for serialized catalog tf.Examples, computed
    by models/feature_tables.py exactly as it computed the catalog's (row 0 there is padding)."""
    catalog = types.SimpleNamespace(num_users=0, user_records={}, num_items=len(records) + 1,
                                    item_records={i + 1: record for i, record in enumerate(records)})
    return {name: table[1:] for name, table in feature_tables.build(transform_graph_dir, catalog)["item"].items()}


def _bases(lineage: pushed_lineage.PushedLineage, run_dir: str, push_root: Optional[str]) -> Tuple[str, str]:
    """(serving base, mobile base): under push_root, else where the run pushed, which must be inside run_dir."""
    if push_root:
        return storage.join(push_root, *artifacts.SERVING_BASE), storage.join(push_root, *artifacts.MOBILE_BASE)
    inside = os.path.realpath(run_dir) + os.sep
    for destination in (lineage.serving_destination, lineage.mobile_destination):
        if storage.is_uri(destination) or not os.path.realpath(destination).startswith(inside):
            raise pushed_lineage.LineageError(
                f"{destination}: the run pushed outside --run {run_dir}; add-items writes there only when "
                "--push-root names it")
    return storage.dirname(lineage.serving_destination), storage.dirname(lineage.mobile_destination)


def _load_serving(version_dir: str):
    try:
        return tf.saved_model.load(version_dir)
    except Exception as error:  # a corrupt SavedModel raises anything from DecodeError to OSError
        raise DeployedVersionError(f"{version_dir}: the latest serving version cannot be loaded "
                                   f"({_first_line(error)}); fix or remove it, then rerun") from None


def _read_mobile(version_dir: str) -> Tuple[List[str], Dict]:
    """(item ids, metadata.json) of the latest mobile version, whose TFLite model must load too."""
    try:
        old_ids = read_vocabulary(storage.join(version_dir, signatures.ITEM_VOCAB))
        metadata = storage.read_json(storage.join(version_dir, signatures.METADATA))
        with storage.local_copy(storage.join(version_dir, signatures.TFLITE_FILE)) as tflite:
            TFLiteRanker(tflite)
    except Exception as error:
        raise DeployedVersionError(f"{version_dir}: the latest mobile version cannot be read "
                                   f"({_first_line(error)}); fix or remove it, then rerun") from None
    return old_ids, metadata


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def _latest(base: str, commit_file: str) -> str:
    version = push.latest_version(base, commit_file)
    if version is None:
        raise pushed_lineage.LineageError(f"{base}: no pushed version to extend (--push-root names the directory "
                                          "that holds serving/ and mobile/)")
    return storage.join(base, str(version))


def _version(path: str) -> int:
    return int(path.rstrip("/").rsplit("/", 1)[-1])


def _check_catalogs(old_ids: List[str], trained_ids: List[str], columns: int, serving_from: str,
                    mobile_from: str) -> None:
    """The latest versions extend the run's student: same catalog in both, the student's items first."""
    if old_ids[:len(trained_ids)] != list(trained_ids):
        raise pushed_lineage.LineageError(f"{mobile_from}'s items are not those of the run's student: the latest "
                                          "version was pushed by another run")
    if columns != len(old_ids) - 1:
        raise pushed_lineage.LineageError(f"{serving_from} scores {columns} items and {mobile_from} lists "
                                          f"{len(old_ids) - 1}: the latest versions hold different catalogs")


def _mobile_metadata(old: Mapping, num_users: int, num_items: int, history: int, zeros: Dict, checks: Dict,
                     added: Dict) -> Dict:
    """metadata.json as the compressor writes it for the new catalog, the test metrics of the model
    kept (old items score as they did when they were measured) and the extension appended."""
    catalog = types.SimpleNamespace(num_users=num_users, num_items=num_items)
    metadata = compress.mobile_metadata(catalog, history, zeros, checks["parity_top10_overlap"])
    metadata["metrics"] = old.get("metrics")
    metadata["added_items"] = [*old.get("added_items", []), added]
    return metadata
