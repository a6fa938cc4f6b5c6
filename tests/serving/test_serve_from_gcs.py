"""Pushes to object storage (gs://, a storage emulator) and `recdistill serve` reading from it:
versions appear whole, are hot-reloaded, and a push killed during its copy is never served."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.push import push as push_lib  # noqa: E402
from models.artifacts import SAVED_MODEL_FILE  # noqa: E402
from models.foundation import signatures  # noqa: E402
from serving import client as client_lib  # noqa: E402
from serving import dev_server  # noqa: E402
from serving.model_versions import ModelVersions  # noqa: E402
from models.foundation import storage  # noqa: E402

pytestmark = pytest.mark.slow  # servers and a killed push subprocess on the storage emulator (~16 s)

USERS, HISTORIES = ["u1", "u4", "newcomer"], [["i1"], ["i5", "i6"], []]


@pytest.fixture(scope="module")
def versions(tmp_path_factory, export):
    """Two different local version directories and their loaded SavedModels."""
    root = tmp_path_factory.mktemp("versions")
    return {seed: (str(root / str(seed)), export(root / str(seed), seed=seed)) for seed in (0, 1)}


def _direct(loaded):
    rows = [h + [""] * (4 - len(h)) for h in HISTORIES]
    out = loaded.signatures[signatures.SERVING_DEFAULT](
        **{signatures.USER_ID: tf.constant(USERS), signatures.HISTORY: tf.constant(rows)})
    return out[signatures.ITEM_IDS].numpy().astype(str).tolist(), out[signatures.SCORES].numpy()


def _answers(client):
    ranked = client.recommend(USERS, HISTORIES)
    return [[i for i, _ in row] for row in ranked], np.array([[s for _, s in row] for row in ranked])


def _wait_for(server, version, seconds=60):
    deadline = time.monotonic() + seconds
    while (server.versions.current is None or server.versions.current.version != version) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    return server.versions.current.version


def test_serve_answers_from_gcs_and_picks_up_a_second_pushed_version(versions, gcs_root):
    base = storage.join(gcs_root, "serving", signatures.MODEL_NAME)
    assert push_lib.push(versions[0][0], base, commit_file=SAVED_MODEL_FILE)[::2] == (1, True)
    server = dev_server.serve(base, 0, poll_seconds=0.2, host="127.0.0.1")
    try:
        with client_lib.RecommendationClient(f"127.0.0.1:{server.port}", timeout_s=30) as client:
            ids, scores = _answers(client)
            want_ids, want_scores = _direct(versions[0][1])
            assert ids == want_ids and np.allclose(scores, want_scores, atol=1e-5)
            assert push_lib.push(versions[1][0], base, commit_file=SAVED_MODEL_FILE)[::2] == (2, True)
            assert _wait_for(server, 2) == 2
            ids, scores = _answers(client)
            want_ids, want_scores = _direct(versions[1][1])
            assert ids == want_ids and np.allclose(scores, want_scores, atol=1e-5)
    finally:
        server.stop(None).wait(10)
    # the pushed copy is the exported one, file for file
    assert storage.walk_files(storage.join(base, "2")) == storage.walk_files(versions[1][0])


KILLED_PUSH = textwrap.dedent("""
    import os, signal, sys
    from components.push import push as push_lib
    from models.foundation import storage

    copy, copied = storage.copy, []

    def copy_then_die(source, destination, overwrite=True):
        # killed while publishing: the version's directory has some files, and no saved_model.pb
        if "/.incomplete-" not in destination and len(copied) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        copy(source, destination, overwrite)
        copied.append(destination) if "/.incomplete-" not in destination else None

    storage.copy = copy_then_die
    push_lib.push(sys.argv[1], sys.argv[2], commit_file="saved_model.pb")
""")


def test_a_push_killed_during_its_copy_is_never_loaded_and_the_next_push_replaces_it(versions, gcs_root):
    base = storage.join(gcs_root, "serving", signatures.MODEL_NAME)
    push_lib.push(versions[0][0], base, commit_file=SAVED_MODEL_FILE)
    server = dev_server.serve(base, 0, poll_seconds=0.2, host="127.0.0.1")
    try:
        killed = subprocess.run([sys.executable, "-c", KILLED_PUSH, versions[1][0], base],
                                cwd=os.getcwd(), capture_output=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
        half = storage.join(base, "2")
        assert storage.isdir(half) and len(storage.walk_files(half)) == 2
        assert not storage.exists(storage.join(half, SAVED_MODEL_FILE))
        assert ModelVersions(base).on_disk() == [1]  # what a polling server considers loadable
        time.sleep(1.0)  # five polls
        assert server.versions.current.version == 1
        assert {v for v, _ in server.versions.states().items()} == {1}  # version 2 never even tried
        with client_lib.RecommendationClient(f"127.0.0.1:{server.port}", timeout_s=30) as client:
            assert _answers(client)[0] == _direct(versions[0][1])[0]

        version, path, new = push_lib.push(versions[1][0], base, commit_file=SAVED_MODEL_FILE)
        assert (version, new) == (3, True)  # not 2: a server may have given up on that number
        assert storage.listdir(base) == ["1", "3"]  # the half version and the staging are gone
        assert _wait_for(server, 3) == 3
    finally:
        server.stop(None).wait(10)
