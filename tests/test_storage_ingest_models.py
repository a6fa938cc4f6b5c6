"""Ingestion, the config, the input digest, the validation gate and the models' files on gs:// (a
storage emulator) give what they give locally: the same code runs on a local copy and a gs:// copy."""

import json
import os

import apache_beam as beam
import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.ingest import beam_ingest, component, quality, rows
from components.ingest.csv_rows import InputFileError, read_header, read_records
from components.ingest.splits import SplitSpec
from components.validation_gate import ANOMALIES_FILE, DataAnomaliesError, ValidationGate
from models import artifacts, feature_tables, interaction_data
from models.ease import EaseModel
from models.popularity import PopularityModel
from models.trending import TrendingModel
from models.foundation import storage
from tfx_pipeline.config import ConfigError, load_config
from tfx_pipeline.fingerprints import data_digest

# Every decoding case of csv_rows: a BOM, CRLF, a quoted comma and newline, bad UTF-8, a blank
# line, a wrong field count and an unclosed quote at the end.
TRICKY = (b"\xef\xbb\xbfitem_id,title\r\ni1,\"Toy Story, The\"\r\ni2,\"two\r\nlines\"\r\n\r\n"
          b"i3,Caf\xe9\r\ni4\r\ni5,\"unclosed\r\ni6,x\r\n")


def _copy_to(directory, root):
    """The files of a local directory, byte for byte, under a gs:// prefix."""
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            storage.write_bytes(storage.join(root, name), f.read())
    return root


def test_csv_readers_read_gcs_as_local(tiny_dir, tmp_path, gcs_root):
    local = tmp_path / "tricky.csv"
    local.write_bytes(TRICKY)
    remote = storage.join(gcs_root, "tricky.csv")
    storage.write_bytes(remote, TRICKY)
    assert read_header(remote, ["item_id"]) == read_header(str(local), ["item_id"]) == ["item_id", "title"]
    expected = list(read_records(str(local), 2))
    assert [r.line for r in expected] == [2, 3, 6, 7, 8]  # the local reading is the reference
    assert list(read_records(remote, 2)) == expected

    data = _copy_to(tiny_dir, storage.join(gcs_root, "data"))
    for name in (rows.USERS_FILE, rows.ITEMS_FILE):
        assert list(rows.read_entities(storage.join(data, name), name)) == \
            list(rows.read_entities(os.path.join(tiny_dir, name), name))
    assert list(rows.read_interactions(storage.join(data, rows.INTERACTIONS_FILE), 42)) == \
        list(rows.read_interactions(os.path.join(tiny_dir, rows.INTERACTIONS_FILE), 42))


def test_csv_errors_on_gcs_name_the_file(gcs_root):
    with pytest.raises(InputFileError, match=r"^users.csv, line 0: file not found$"):
        read_header(storage.join(gcs_root, "users.csv"), ["user_id"])
    storage.write_text(storage.join(gcs_root, "empty", "users.csv"), "")
    with pytest.raises(InputFileError, match=r"^users.csv, line 1: the file is empty"):
        read_header(storage.join(gcs_root, "empty", "users.csv"), ["user_id"])
    storage.makedirs(storage.join(gcs_root, "dir", "users.csv"))  # a "directory" is no file
    storage.write_text(storage.join(gcs_root, "dir", "users.csv", "x"), "x")
    with pytest.raises(InputFileError, match="file not found"):
        read_header(storage.join(gcs_root, "dir", "users.csv"), ["user_id"])

    data = storage.join(gcs_root, "data")
    storage.write_text(storage.join(data, rows.INTERACTIONS_FILE), "user_id,item_id\nu1,i1\n")
    storage.write_text(storage.join(data, rows.USERS_FILE), "user_id\nu1\n")
    storage.write_text(storage.join(data, rows.ITEMS_FILE), "item_id,title\ni1,A\n")
    with pytest.raises(quality.DataQualityError,
                       match=rf"^{data}/interactions.csv, line 1: missing column 'timestamp'"):
        component.check_headers(data)


def _ingest(data_dir, out):
    settings = beam_ingest.IngestSettings(split=SplitSpec("temporal", 0.25, 0.0))
    summary_path = storage.join(out, "ex", artifacts.INGEST_SUMMARY_FILE)
    with beam.Pipeline() as p:
        beam_ingest.ingest(p, data_dir, settings, storage.join(out, "ex"), storage.join(out, "cat"), summary_path)
    return storage.read_bytes(summary_path)


def _rows(split_dir):
    """The split's examples as {feature: values}, in a fixed order (Beam's file order is not)."""
    return sorted((interaction_data.parse(r) for r in interaction_data.read_records(split_dir)), key=repr)


@pytest.mark.slow  # two Beam pipelines (~10 s)
def test_beam_ingest_from_and_to_gcs_matches_local(tiny_dir, tmp_path, gcs_root):
    local_summary = _ingest(tiny_dir, str(tmp_path / "out"))
    remote_out = storage.join(gcs_root, "out")
    remote_summary = _ingest(_copy_to(tiny_dir, storage.join(gcs_root, "data")), remote_out)
    # The summary keeps json.dump's bytes: sorted keys, indent 2, no trailing newline.
    assert remote_summary == local_summary
    summary = json.loads(local_summary)
    assert local_summary == json.dumps(summary, indent=2, sort_keys=True).encode()
    assert summary["split_counts"] == {"train": 8, "eval": 0, "test": 3}

    for split in ("Split-train", "Split-test", f"Split-{beam_ingest.CATALOG_SPLIT}"):
        part = "cat" if split.endswith(beam_ingest.CATALOG_SPLIT) else "ex"
        expected = _rows(str(tmp_path / "out" / part / split))
        assert expected and _rows(storage.join(remote_out, part, split)) == expected

    vocabularies = (["u1", "u2", "u3"], ["i1", "i2", "i3"])  # i4: a catalog-only item
    build = lambda out: interaction_data.build_dataset(  # noqa: E731
        {s: storage.join(out, "ex", f"Split-{s}") for s in ("train", "test")}, storage.join(out, "cat", "Split-catalog"),
        *vocabularies)
    local, remote = build(str(tmp_path / "out")), build(remote_out)
    assert (remote.user_ids, remote.item_ids, remote.item_texts) == (local.user_ids, local.item_ids, local.item_texts)
    rows_of = lambda s: sorted(zip(s.user.tolist(), s.item.tolist(), s.timestamp.tolist()))  # noqa: E731
    for name, split in local.splits.items():
        assert rows_of(remote.splits[name]) == rows_of(split)


def test_data_digest_of_a_gcs_directory(tiny_dir, gcs_root):
    data = _copy_to(tiny_dir, storage.join(gcs_root, "data"))
    assert data_digest(data) == data_digest(tiny_dir)
    storage.write_text(storage.join(data, rows.ITEMS_FILE), "item_id,title\n")
    assert data_digest(data) != data_digest(tiny_dir)


def test_config_from_gcs(tmp_path, gcs_root):
    text = "split: {method: time_cutoff, test_share: 0.3}\nlist_columns: [tags]\nbeam_workers: 2\n"
    (tmp_path / "c.yaml").write_text(text)
    storage.write_text(storage.join(gcs_root, "c.yaml"), text)
    assert load_config(storage.join(gcs_root, "c.yaml")) == load_config(str(tmp_path / "c.yaml"))

    storage.write_text(storage.join(gcs_root, "bad.yaml"), "a: [unclosed\n")
    with pytest.raises(ConfigError, match=rf'in "{gcs_root}/bad.yaml", line 2'):
        load_config(storage.join(gcs_root, "bad.yaml"))
    missing = storage.join(gcs_root, "missing.yaml")
    with pytest.raises(ConfigError) as error:
        load_config(missing)
    assert str(error.value) == f"{missing}: [Errno 2] No such file or directory: '{missing}'"
    with pytest.raises(ConfigError) as error:
        load_config(str(tmp_path / "missing.yaml"))  # the same message as open() gave
    with pytest.raises(FileNotFoundError) as builtin:
        open(tmp_path / "missing.yaml")
    assert str(error.value) == f"{tmp_path / 'missing.yaml'}: {builtin.value}"


@pytest.mark.parametrize("make, load", [
    (lambda: PopularityModel(4).fit(np.array([1, 1, 3])), PopularityModel.load),
    (lambda: TrendingModel(4, days=1).fit(np.array([1, 2, 3]), np.array([0, 90000, 100000])),
     lambda path: TrendingModel.load(path, days=1)),
    (lambda: EaseModel(4, 10.0).fit(np.array([1, 1, 2, 2, 3]), np.array([1, 2, 1, 3, 2]), 4), EaseModel.load),
])
def test_model_files_on_gcs(make, load, tmp_path, gcs_root):
    model = make()
    local = model.save(str(tmp_path / "model"))
    remote = model.save(storage.join(gcs_root, "models", "model"))
    assert (local, remote) == (str(tmp_path / "model.npy"), f"{gcs_root}/models/model.npy")
    with open(local, "rb") as f:
        assert storage.read_bytes(remote) == f.read()  # np.save's bytes, in a file of the same name
    users = np.arange(4)
    back = load(remote)
    if isinstance(back, EaseModel):
        back.use_interactions(np.array([1, 1, 2, 2, 3]), np.array([1, 2, 1, 3, 2]), 4)
    np.testing.assert_array_equal(back.score(users), model.score(users))


def test_dataset_and_feature_tables_on_gcs(toy, tmp_path, gcs_root):
    interaction_data.save_dataset(toy, storage.join(gcs_root, "teacher", "dataset.npz"))
    interaction_data.save_dataset(toy, str(tmp_path / "dataset.npz"))
    remote = interaction_data.load_dataset(storage.join(gcs_root, "teacher", "dataset.npz"))
    local = interaction_data.load_dataset(str(tmp_path / "dataset.npz"))
    for back in (remote, local):
        assert (back.user_ids, back.item_ids, back.user_texts, back.item_texts) == \
            (toy.user_ids, toy.item_ids, toy.user_texts, toy.item_texts)
        for name, split in toy.splits.items():
            for field in ("user", "item", "timestamp"):
                np.testing.assert_array_equal(getattr(back.splits[name], field), getattr(split, field))

    tables = {"user": {"user_age_bucket": np.array([0, 3, 1])}, "item": {"item_genres_indices": np.array([[0, 0], [1, 2]])},
              "size": {"user_age_bucket": 4, "item_genres_indices": 3}}
    feature_tables.save(tables, storage.join(gcs_root, "student", artifacts.FEATURES_FILE))
    feature_tables.save(tables, str(tmp_path / artifacts.FEATURES_FILE))
    remote, local = feature_tables.load_from(storage.join(gcs_root, "student")), feature_tables.load_from(str(tmp_path))
    for back in (remote, local):
        assert back["size"] == tables["size"]
        assert back["user"]["user_age_bucket"].tolist() == [0, 3, 1]
        assert back["item"]["item_genres_indices"].tolist() == [[0, 0], [1, 2]]


def test_validation_gate_reads_anomalies_on_gcs(gcs_root):
    gate = ValidationGate.EXECUTOR_SPEC.executor_class._FUNCTION  # the function under TFX's decorator
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = storage.join(gcs_root, "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    storage.write_bytes(storage.join(artifact.uri, "Split-train", ANOMALIES_FILE),
                        anomalies_pb2.Anomalies().SerializeToString())
    bad = anomalies_pb2.Anomalies()
    bad.anomaly_info["rating"].short_description = "New column"
    bad.anomaly_info["rating"].description = "New column (column in data but not in schema)"
    storage.write_bytes(storage.join(artifact.uri, "Split-eval", ANOMALIES_FILE), bad.SerializeToString())
    with pytest.raises(DataAnomaliesError, match=r"^ExampleValidator found 1 anomaly: split eval, feature 'rating'"):
        gate(anomalies=artifact, code_digest="")
