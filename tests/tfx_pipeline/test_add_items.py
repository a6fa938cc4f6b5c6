"""`recdistill add-items` on the session's tiny finished run (tests/conftest.py `finished_run`).

The run's pushed serving/ and mobile/ are copied under a push root of this module's own, a dev
server polls the copy, and add-items extends it: the run itself is left as it was. The new items
copy catalog items' features (title, year, genres) under new ids, so their expected columns are
the candidate tower's feature vectors of those catalog items, from the features Transform gave
the catalog at training time.
"""

import contextlib
import csv
import glob
import io
import json
import os
import re
import shutil
import time
import types

import numpy as np
import pytest

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf  # noqa: E402

pytestmark = pytest.mark.e2e
POLL_SECONDS = 1.0
# A version is loaded and warmed up after the poll that finds it: on this busy 2-core machine that
# took 1-3 s for the tiny model; the bound leaves room for a slow moment.
LOAD_ALLOWANCE_S = 20.0
NEW_IDS = ["new-a", "new-b", "new-c"]


def _cli(*args):
    """(exit code, stdout, stderr) of `recdistill ARGS` run in this process."""
    from tfx_pipeline import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def _new_csv(path, lines):
    path.write_text("item_id,title,year,genres\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def _row(item_id, source, genres_prefix=""):
    """A NEW.csv line: a catalog item's title, year and genres under another id."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow([item_id, source["title"], source["year"],
                                                  genres_prefix + source["genres"]])
    return line.getvalue()


def _versions(root):
    return sorted(os.listdir(root / "serving" / "recdistill")), sorted(os.listdir(root / "mobile"))


@pytest.fixture(scope="module")
def added(finished_run, tmp_path_factory):
    from serving import client as client_lib
    from serving import dev_server

    base, _, _ = finished_run
    root = tmp_path_factory.mktemp("add-items")
    for name in ("serving", "mobile"):
        shutil.copytree(base / "run" / name, root / name)
    with open(base / "data" / "items.csv", newline="", encoding="utf-8") as f:
        catalog = list(csv.DictReader(f))
    sources = catalog[:3]  # new-a, new-b, new-c copy these items' features
    lines = [_row("new-a", sources[0]),
             "new-x,Only two fields",              # line 3: wrong_field_count
             _row("new-b", sources[1], "Noir|"),   # a genre the vocabulary has never seen
             ",Nameless,2001,War",                 # line 5: missing_id
             "new-y,Title,19x5,War",               # line 6: bad_value (year is an integer column)
             _row("new-a", sources[2]),            # line 7: duplicate_id
             _row("new-c", sources[2])]
    items_csv = _new_csv(root / "NEW.csv", lines)
    server = dev_server.serve(str(root / "serving" / "recdistill"), 0, poll_seconds=POLL_SECONDS, host="127.0.0.1")
    client = client_lib.RecommendationClient(f"127.0.0.1:{server.port}", timeout_s=30)
    try:
        code, out, err = _cli("add-items", "--run", str(base / "run"), "--items", items_csv,
                              "--push-root", str(root), "--max-bad-share", "0.6")
        pushed = time.monotonic()
        assert code == 0, err[-3000:]
        while server.versions.current.version != 2 and time.monotonic() < pushed + POLL_SECONDS + LOAD_ALLOWANCE_S:
            time.sleep(0.05)
        yield types.SimpleNamespace(base=base, root=root, catalog=catalog, sources=sources, out=out, server=server,
                                    client=client, picked_up_s=time.monotonic() - pushed)
    finally:
        client.close()
        server.stop(None).wait(10)


def test_bad_rows_are_counted_and_named_and_the_rest_added(added):
    assert "4 of 7 rows skipped:" in added.out
    named = [line.strip() for line in added.out.splitlines() if line.startswith("  NEW.csv, line")]
    assert [re.match(r"NEW\.csv, line (\d+): (\w+):", line).groups() for line in named] == [
        ("3", "wrong_field_count"), ("5", "missing_id"), ("6", "bad_value"), ("7", "duplicate_id")]
    assert "year '19x5' is not an integer" in named[2]
    assert "added 3 items" in added.out
    vocab = (added.root / "mobile" / "2" / "item_vocab.txt").read_text().split("\n")[:-1]
    old = (added.root / "mobile" / "1" / "item_vocab.txt").read_text().split("\n")[:-1]
    assert vocab == old + NEW_IDS  # old indices unchanged, new ones V, V + 1, V + 2 in file order
    assert (added.root / "mobile" / "2" / "user_vocab.txt").read_text() == \
        (added.root / "mobile" / "1" / "user_vocab.txt").read_text()


def test_a_running_server_answers_with_the_new_items_within_its_polling_interval(added):
    from models.foundation import signatures

    assert added.server.versions.current.version == 2, f"not picked up after {added.picked_up_s:.1f} s"
    assert added.picked_up_s <= POLL_SECONDS + LOAD_ALLOWANCE_S
    print(f"version 2 served {added.picked_up_s:.1f} s after add-items pushed it (poll every {POLL_SECONDS} s)")
    user = (added.root / "mobile" / "1" / "user_vocab.txt").read_text().split("\n")[1]
    (ranked,) = added.client.recommend([user], [[]])
    ids = [item for item, _ in ranked]
    assert set(NEW_IDS) <= set(ids)  # K = 100 covers this tiny catalog: every item is ranked
    loaded = tf.saved_model.load(str(added.root / "serving" / "recdistill" / "2"))
    direct = loaded.signatures[signatures.SERVING_DEFAULT]
    history = direct.structured_input_signature[1][signatures.HISTORY].shape[1]
    want = direct(user_id=tf.constant([user]), history=tf.constant([[""] * history]))
    np.testing.assert_allclose([s for _, s in ranked], want[signatures.SCORES].numpy()[0], atol=1e-6)


def test_old_items_score_as_before_and_new_items_are_scored(added):
    from components.teacher.training import latest_histories
    from models import interaction_data

    (student_dir,) = glob.glob(str(added.base / "run" / "pipeline_root" / "StudentTrainer" / "model" / "*"))
    dataset = interaction_data.load_dataset(os.path.join(student_dir, "dataset.npz"))
    v1, v2 = (tf.saved_model.load(str(added.root / "serving" / "recdistill" / v)) for v in ("1", "2"))
    users = np.arange(1, dataset.num_users)
    latest = latest_histories(dataset, v1.score.input_signature[1].shape[1])
    before = v1.score(tf.constant(users), tf.constant(latest[users])).numpy()
    after = v2.score(tf.constant(users), tf.constant(latest[users])).numpy()
    assert after.shape == (len(users), before.shape[1] + 3)
    np.testing.assert_allclose(after[:, : before.shape[1]], before, rtol=0, atol=1e-6)
    assert np.all(np.isfinite(after[:, before.shape[1]:]))


def test_new_columns_are_the_candidate_towers_features_scaled_and_pruned(added):
    from components.compression.compress import load_student
    from models import feature_tables, interaction_data

    (student_dir,) = glob.glob(str(added.base / "run" / "pipeline_root" / "StudentTrainer" / "model" / "*"))
    dataset = interaction_data.load_dataset(os.path.join(student_dir, "dataset.npz"))
    kd = load_student(student_dir, dataset, feature_tables.load_from(student_dir))
    loaded = [tf.saved_model.load(str(added.root / "serving" / "recdistill" / n)) for n in ("1", "2")]
    kernels = [{v.name: v.numpy() for v in model.scorer.variables} for model in loaded]
    old, new = kernels[0]["scores/kernel:0"], kernels[1]["scores/kernel:0"]
    np.testing.assert_array_equal(new[:, : old.shape[1]], old)
    for name, value in kernels[0].items():  # the query tower and every quantization range as they were
        if name != "scores/kernel:0":
            np.testing.assert_array_equal(kernels[1][name], value, err_msg=name)
    # factorized (compression.rank): the kernel is down [dim, r] @ old [r, V - 1], after a head block
    down = kernels[0].get("scores_rank/kernel:0")
    effective = old if down is None else down @ old
    head = kernels[0].get("scores_head/kernel:0")  # mixed dimensions: the frequent items' columns kept whole
    if head is not None:
        effective = np.concatenate([head, effective], axis=1)
    trained = kd.all_items().numpy()[1:].T
    scale = np.linalg.lstsq(trained.reshape(-1, 1), effective.reshape(-1), rcond=None)[0][0]
    # new-b has an extra genre that is out of vocabulary: index 0, left out of the genres' mean.
    sources = [dataset.item_ids.index(source["item_id"]) for source in added.sources]
    expected = scale * kd.candidate_tower.features(tf.constant(sources, tf.int64)).numpy().T  # [dim, 3]
    if down is not None:  # the new columns of the second factor: numpy's pseudo-inverse of the first
        expected = np.linalg.pinv(down.astype(np.float64)) @ expected
    zeros = int(round(np.mean(old == 0) * expected.size))
    threshold = np.sort(np.abs(expected).ravel())[zeros - 1] if zeros else -1.0
    expected[np.abs(expected) <= threshold] = 0.0
    np.testing.assert_allclose(new[:, old.shape[1]:], expected, rtol=1e-5, atol=1e-6)
    assert abs(np.mean(new[:, old.shape[1]:] == 0) - np.mean(old == 0)) < 1.0 / expected.size + 1e-9


def test_litert_ranks_the_new_items_with_builtin_int8_ops(added):
    from serving import tflite_predict
    from models.foundation.tflite_runner import TFLiteRanker

    mobile = added.root / "mobile"
    metadata = json.loads((mobile / "2" / "metadata.json").read_text())
    old_metadata = json.loads((mobile / "1" / "metadata.json").read_text())
    assert metadata["version"] == 2 and metadata["num_items"] == old_metadata["num_items"] + 3
    assert metadata["metrics"] == old_metadata["metrics"]
    (extension,) = metadata["added_items"]
    assert extension["count"] == 3 and extension["extends"] == {"serving": 1, "mobile": 1}
    users = (mobile / "1" / "user_vocab.txt").read_text().split("\n")
    ranked = tflite_predict.recommend(str(mobile / "2"), users[1], [], k=1000)
    assert set(NEW_IDS) <= {item for item, _ in ranked}
    old, new = TFLiteRanker(str(mobile / "1" / "model.tflite"), full_scores=True), \
        TFLiteRanker(str(mobile / "2" / "model.tflite"), full_scores=True)
    for user in range(1, 6):
        before, after = old.all_scores(user, []), new.all_scores(user, [])
        np.testing.assert_allclose(after[: len(before)], before, atol=new.scores_step * 1.001)
        assert np.all(np.isfinite(after[len(before):]))
    ops = {op["op_name"] for op in new.interpreter._get_ops_details()}
    assert ops and all(re.fullmatch(r"[A-Z0-9_]+", op) for op in ops), ops  # no Flex or custom ops
    widths = {tuple(t["shape"]) for t in new.interpreter.get_tensor_details() if t["dtype"] == np.int8}
    assert any(metadata["num_items"] - 1 in shape for shape in widths)  # the scoring kernel, int8, extended


def test_a_pipeline_push_of_the_extended_model_leaves_the_new_versions(added, tmp_path):
    from components.push import push

    (model_dir,) = glob.glob(str(added.base / "run" / "pipeline_root" / "StudentCompressor" / "model" / "*"))
    serving = push.push(os.path.join(model_dir, "Format-Serving"), str(added.root / "serving" / "recdistill"),
                        commit_file="saved_model.pb")
    mobile = push.push(os.path.join(model_dir, "mobile"), str(added.root / "mobile"),
                       compare_exclude=["metadata.json"], commit_file="metadata.json")
    assert (serving[::2], mobile[::2]) == ((2, False), (2, False))  # what a cached rerun's pushers do


@pytest.mark.parametrize("case", ["too_many_bad", "id_in_catalog", "other_columns"])
def test_bad_input_stops_with_exit_2_one_line_and_nothing_pushed(added, case, tmp_path):
    known = added.catalog[5]
    header = "item_id,title,year,genres\n"
    text, share = {
        "too_many_bad": (header + f"new-q,Only two fields\n{_row('new-r', known)}\n", None),  # 1 of 2: above 1%
        "id_in_catalog": (header + f"{_row('new-s', known)}\n{_row(known['item_id'], known)}\n", "0.5"),
        "other_columns": ("item_id,title,colour\nnew-t,T,red\n", None),
    }[case]
    path = tmp_path / "NEW.csv"
    path.write_text(text, encoding="utf-8")
    before = _versions(added.root)
    code, _, err = _cli("add-items", "--run", str(added.base / "run"), "--items", str(path),
                        "--push-root", str(added.root), *(["--max-bad-share", share] if share else []))
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "NEW.csv" in line
    assert {"too_many_bad": "1 of 2 rows (50.0%) are bad" in line and "line 2" in line and "wrong_field_count" in line,
            "id_in_catalog": f"line 3: {known['item_id']!r}" in line and "already in the deployed catalog" in line,
            "other_columns": "colour" in line and "missing column(s) genres, year" in line}[case], line
    assert _versions(added.root) == before
