"""Shared fixtures: tiny input directories written by hand, so expected values are known."""

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# gs:// in tests is a storage emulator on this machine (fixture `gcs_emulator`); every client
# (TensorFlow, Beam, the pipeline's subprocesses) must know where before it starts.
_GCS_PORTS = (_free_port(), _free_port())
_GCS_CERTIFICATES = tempfile.mkdtemp(prefix="recdistill-test-gcs-")
atexit.register(shutil.rmtree, _GCS_CERTIFICATES, True)  # made at import, before pytest's tmp_path exists
os.environ.update({
    "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{_GCS_PORTS[0]}",
    "https_proxy": f"http://127.0.0.1:{_GCS_PORTS[1]}",
    "CURL_CA_BUNDLE": os.path.join(_GCS_CERTIFICATES, "ca.pem"),
    "REQUESTS_CA_BUNDLE": os.path.join(_GCS_CERTIFICATES, "ca.pem"),
    "NO_GCE_CHECK": "true",
    "no_proxy": "127.0.0.1,localhost",
})

from models.foundation import env  # noqa: F401,E402  (TF_USE_LEGACY_KERAS before any test imports TF)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.interaction_data import Dataset, Split

USERS = "user_id,age,gender\nu1,24,M\nu2,53,F\nu3,,F\n"
ITEMS = (
    "item_id,title,year,genres\n"
    'i1,"Toy Story, The",1995,Animation|Comedy\n'
    "i2,GoldenEye,1995,Action\n"
    'i3,"Say ""Hi""",,Drama\n'
    "i4,Heat,1995,Action|Crime\n"
)


def _write_files(directory, interactions: str, users: str = USERS, items: str = ITEMS, mode: str = "w"):
    """Writes the three input files (text, or bytes with mode="wb") and returns the directory."""
    os.makedirs(directory, exist_ok=True)
    for name, content in (("interactions.csv", interactions), ("users.csv", users), ("items.csv", items)):
        with open(os.path.join(directory, name), mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(content)
    return str(directory)


@pytest.fixture
def write_input():
    """write_input(directory, interactions, users=USERS, items=ITEMS, mode="w") -> directory."""
    return _write_files


@pytest.fixture
def tiny_dir(tmp_path):
    """Three users, four items, each user with several interactions; one of each bad kind."""
    rows = ["user_id,item_id,timestamp,rating"]
    stamp = 1000
    for user, items in (("u1", "i1 i2 i3 i4"), ("u2", "i2 i4 i1"), ("u3", "i3 i1 i2 i4")):
        for item in items.split():
            stamp += 10
            rows.append(f"{user},{item},{stamp},4")
    rows += [
        "u9,i1,2000,3",  # unknown user
        "u1,i9,2001,3",  # unknown item
        "u1,i1,notatime,3",  # bad timestamp
        "u2,i2,1020",  # wrong field count
        rows[1],  # exact duplicate of the first row
    ]
    return _write_files(tmp_path / "data", "\n".join(rows) + "\n")

def toy_dataset(num_users=40, num_items=31, per_user=8, seed=0) -> Dataset:
    """Users of cluster c interact mostly with items of cluster c (3 clusters, by index mod 3)."""
    rng = np.random.default_rng(seed)
    rows = {"train": [], "eval": [], "test": []}
    for user in range(1, num_users):
        own = [i for i in range(1, num_items) if i % 3 == user % 3]
        items = rng.choice(own, size=min(per_user, len(own)), replace=False)
        for k, item in enumerate(items):
            split = "test" if k >= per_user - 2 else "eval" if k == per_user - 3 else "train"
            rows[split].append((user, item, 1000 * user + k))
    splits = {name: Split(*(np.array(col, np.int64) for col in zip(*r))) for name, r in rows.items()}
    genres = ["comedy", "drama", "horror"]
    return Dataset(
        user_ids=[""] + [f"u{u}" for u in range(1, num_users)],
        item_ids=[""] + [f"i{i}" for i in range(1, num_items)],
        user_texts=[""] + [f"likes {genres[u % 3]}" for u in range(1, num_users)],
        item_texts=[""] + [f"movie {i} genres: {genres[i % 3]}" for i in range(1, num_items)],
        splits=splits,
    )


@pytest.fixture
def toy():
    return toy_dataset()


def write_tiny_mobile_run(run, newline: str = "\n"):
    """A run directory (pathlib) with mobile/1/ holding an untrained tiny student as a float TFLite
    model, its vocabularies and metadata, and input/items.csv with titles (lines end in `newline`).
    Returns (mobile/1 directory, toy dataset, the Keras student)."""
    import json

    import tensorflow as tf

    from models import deployable, mobile_export, student
    from models.foundation import signatures
    from tests.models.test_student import TINY, tables_for

    toy = toy_dataset()
    tf.keras.utils.set_random_seed(0)
    model = student.StudentModel(toy.num_users, toy.num_items, tables_for(toy), TINY)
    model.score(tf.zeros([1], tf.int64), tf.zeros([1, TINY.history], tf.int64))
    directory = run / "mobile" / "1"
    directory.mkdir(parents=True)
    content = mobile_export.convert(deployable.build(model), deployable.feature_bins(model), TINY.history,
                                    int8=False, num_users=toy.num_users)
    (directory / signatures.TFLITE_FILE).write_bytes(content)
    mobile_export.write_vocabularies(str(directory), toy.user_ids, toy.item_ids)
    (directory / signatures.METADATA).write_text(json.dumps({"k": toy.num_items - 1, "history": TINY.history}))
    (run / "input").mkdir()
    (run / "input" / "items.csv").write_text(f"item_id,title{newline}" + "".join(
        f"{i},Title {i}{newline}" for i in toy.item_ids[1:]))
    return directory, toy, model


# A random 2-layer, 32-wide BERT instead of MiniLM, and a small teacher: the DAG, not the quality.
TINY_CONFIG = """
teacher_encoder: tiny
text_length: 16
teacher: {dim: 8, layers: 2, intermediate: 16, sequence: 5, history: 10, epochs: 2, batch_size: 256, refit_epochs: 1}
scoring_negatives: 3
student: {dim: 8, history: 4, epochs: 2, batch_size: 256}
compression: {prune_epochs: 1, ramp_epochs: 1, qat_epochs: 1}  # the default factorization: mixed dimensions
# Tiny models are not the quality under test: the gate is opened so that the push path runs
# (the closed gate is tested in tests/components/push).
bless_tolerance: 0.9
bless_margin: -0.9
"""


def recdistill(*args, timeout=600):
    """`recdistill ARGS` in a subprocess (exit code, stdout and stderr as text)."""
    return subprocess.run([sys.executable, "-m", "tfx_pipeline.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """(base, synth summary, the run's CompletedProcess): the whole DAG, once per session, on tiny
    synthetic data in base/data with base/tiny.yaml, into base/run. Tests that push or change
    files work on copies (tests/tfx_pipeline/test_add_items.py pushes under a --push-root of its own)."""
    from tfx_pipeline.datasets.synth import write_synthetic

    base = tmp_path_factory.mktemp("e2e")
    synth = write_synthetic(base / "data", users=120, items=80, interactions=2500, seed=1, bad_share=0.004)
    (base / "tiny.yaml").write_text(TINY_CONFIG)
    result = recdistill("run", "--data", str(base / "data"), "--output", str(base / "run"), "--config", str(base / "tiny.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    return base, synth, result


def wait_until_listening(process: subprocess.Popen, ports, what: str, timeout_s: float = 60) -> None:
    """Returns once every port on 127.0.0.1 accepts a connection; kills `process` and raises with
    the end of its stderr if it exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            for listening in ports:
                socket.create_connection(("127.0.0.1", listening), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{what} did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)


GCS_BUCKET = "recdistill-test"


@pytest.fixture(scope="session")
def gcs_emulator():
    """gs://recdistill-test on a storage emulator (tfx_pipeline/gcs_emulator.py), for the session."""
    port, proxy_port = _GCS_PORTS
    process = subprocess.Popen([sys.executable, "-m", "tfx_pipeline.gcs_emulator", "--port", str(port),
                                "--proxy-port", str(proxy_port), "--bucket", GCS_BUCKET,
                                "--certificate-dir", _GCS_CERTIFICATES],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_listening(process, (port, proxy_port), "the storage emulator")
    yield f"gs://{GCS_BUCKET}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def gcs_root(gcs_emulator):
    """A fresh gs:// prefix for one test."""
    return f"{gcs_emulator}/{uuid.uuid4().hex[:12]}"


# The two pytest-xdist workers of `make test` (docs/testing.md) get whole groups of tests: the files
# that use the session's finished run form one group, so that the run is built once; every other
# file is a group of its own, so that a module's fixtures are built once. pytest-xdist's own
# `--dist loadgroup` cannot do it with pytest 9: it marks a test's group by renaming item._nodeid,
# which pytest 9 no longer reads, so every test went to either worker and the finished run, the warm
# runs and the added items were each built on both (measured at 6851ced: 1,109 s, 270 s of it twice).
FINISHED_RUN = "finished_run"
FINISHED_RUN_FILES = ("tests/tfx_pipeline/test_e2e.py", "tests/tfx_pipeline/test_add_items.py",
                      "tests/tfx_pipeline/test_add_items_transactions.py")
# Handed out first, longest first (seconds of one worker at 6851ced), so that no long group starts
# last while the other worker idles; the rest go in collection order.
HEAVIEST_FIRST = (
    FINISHED_RUN,  # about 540 s: the tiny run, its copy on gs://, the quality bench, add-items
    "tests/tfx_pipeline/test_warm_e2e.py",  # about 310 s: three runs of the DAG, the last mostly cached
    "tests/models/test_teacher.py",  # about 200 s
    "tests/tfx_pipeline/test_spans_e2e.py",  # about 90 s
    "tests/components/test_gcs_models.py",
    "tests/models/test_teacher_warm_start.py",
    "tests/components/student/test_multi_worker.py",
)


def group_of(nodeid: str) -> str:
    """The group a test id belongs to (the controller knows the ids alone: it collects nothing)."""
    path = nodeid.split("::")[0]
    return FINISHED_RUN if path in FINISHED_RUN_FILES else path


def pytest_xdist_make_scheduler(config, log):
    """Replaces pytest-xdist's `--dist loadgroup` scheduler (make test) by one that groups as above."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupsHeaviestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

        def _assign_work_unit(self, node) -> None:
            heaviest = next((group for group in HEAVIEST_FIRST if group in self.workqueue), None)
            if heaviest is not None:
                self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return GroupsHeaviestFirst(config, log)


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    """A test that uses the finished run outside FINISHED_RUN_FILES would build it a second time."""
    strays = sorted({item.nodeid.split("::")[0] for item in items
                     if "finished_run" in item.fixturenames and group_of(item.nodeid) != FINISHED_RUN})
    if strays:
        raise pytest.UsageError(f"{', '.join(strays)} use(s) the finished_run fixture: add to FINISHED_RUN_FILES "
                                "in tests/conftest.py")
