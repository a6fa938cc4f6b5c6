"""Pushes to object storage (gs://, storage emulators on this machine): a push removes only the
half-copied versions it marked as its own, and the lock object is exclusive.

The session's emulator (tests/conftest.py `gcs_emulator`) serves the pushes. The lock tests need
`ifGenerationMatch`, which Google Cloud Storage honours and gcp-storage-emulator ignores: they run
against an emulator of their own, started with PRECONDITIONS applied (only google-cloud-storage,
which the lock uses, is pointed at it)."""

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from unittest import mock

import pytest

from components.push import lock as lock_lib
from components.push import push as push_lib
from models.foundation import storage
from tests.conftest import wait_until_listening

COMMIT = "saved_model.pb"


def _model(directory, content):
    for name in (COMMIT, "variables/variables.index", "variables/variables.data-00000-of-00001"):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{content} {name}")
    return str(directory)


def test_a_push_removes_its_own_killed_half_copy_and_never_a_foreign_one(gcs_root, tmp_path):
    base = storage.join(gcs_root, "serving", "recdistill")
    push_lib.push(_model(tmp_path / "v1", "v1"), base, commit_file=COMMIT)
    # a push of ours killed while copying version 2: its marker, some files, no saved_model.pb
    storage.write_text(storage.join(base, f"{push_lib.PUBLISHING_PREFIX}2"), '{"push": "killed"}')
    storage.write_text(storage.join(base, "2", "variables", "variables.index"), "ours, half")
    # an operator copying version 5 by hand, half done
    storage.write_text(storage.join(base, "5", "variables", "variables.index"), "theirs, half")
    version, _, new = push_lib.push(_model(tmp_path / "v2", "v2"), base, commit_file=COMMIT)
    assert (version, new) == (6, True)  # above 5 (present, not ours)
    assert storage.listdir(base) == ["1", "5", "6"]  # 2 and its marker gone, no staging, no lock
    assert storage.read_text(storage.join(base, "5", "variables", "variables.index")) == "theirs, half"
    assert storage.walk_files(storage.join(base, "6")) == sorted(
        [COMMIT, "variables/variables.data-00000-of-00001", "variables/variables.index"])
    storage.write_text(storage.join(base, f"{push_lib.PUBLISHING_PREFIX}7"), '{"push": "killed"}')
    storage.write_text(storage.join(base, "7", "variables", "variables.index"), "ours, half")
    version, _, _ = push_lib.push(_model(tmp_path / "v3", "v3"), base, commit_file=COMMIT)
    assert version == 8 and storage.listdir(base) == ["1", "5", "6", "8"]  # never 7: a server may have tried it


def test_a_copy_that_fails_takes_its_half_version_back_at_once(gcs_root, tmp_path):
    base = storage.join(gcs_root, "mobile")
    push_lib.push(_model(tmp_path / "v1", "v1"), base, commit_file=COMMIT)
    copy, copied = storage.copy, []

    def fail_on_second_file_of_the_version(source, destination, overwrite=True):
        if f"{push_lib.STAGING_PREFIX}" not in destination:
            copied.append(destination)
            if len(copied) == 2:
                raise OSError("connection reset")
        copy(source, destination, overwrite)

    with mock.patch.object(push_lib.storage, "copy", side_effect=fail_on_second_file_of_the_version):
        with pytest.raises(OSError, match="connection reset"):
            push_lib.push(_model(tmp_path / "v2", "v2"), base, commit_file=COMMIT)
    assert storage.listdir(base) == ["1"]


# ifGenerationMatch on uploads and deletes, as the service honours it (0: "only if no live object
# has that name", N: "only if its generation is N"; 412 otherwise).
PRECONDITIONS = textwrap.dedent('''
    import sys
    from http import HTTPStatus

    from gcp_storage_emulator import server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    from tfx_pipeline import gcs_emulator


    def mismatch(request, storage, object_id):
        wanted = request.query.get("ifGenerationMatch")
        if not wanted or object_id is None:
            return False
        try:
            current = str(storage.get_file_obj(request.params["bucket_name"], object_id)["generation"])
        except NotFound:
            current = "0"
        return current != wanted[0]


    def guarded(handler, object_id):
        def run(request, response, storage, *args, **kwargs):
            if mismatch(request, storage, object_id(request)):
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "Precondition Failed"}})
                return None
            return handler(request, response, storage, *args, **kwargs)
        return run


    def uploaded_name(request):
        if "name" in request.query:
            return request.query["name"][0]
        return request.data.get("meta", {}).get("name") if isinstance(request.data, dict) else None


    objects._media_upload = guarded(objects._media_upload, uploaded_name)
    objects._multipart_upload = guarded(objects._multipart_upload, uploaded_name)
    guarded_delete = guarded(objects.delete, lambda request: request.params["object_id"])
    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is objects.delete:
                handlers[method] = guarded_delete
    sys.exit(gcs_emulator.main(sys.argv[1:]))
''')


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def strict_emulator(tmp_path_factory):
    """STORAGE_EMULATOR_HOST of an emulator with bucket `locks` that honours ifGenerationMatch."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", PRECONDITIONS, "--port", str(port), "--proxy-port",
                                str(_free_port()), "--bucket", "locks", "--certificate-dir",
                                str(tmp_path_factory.mktemp("strict-gcs"))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_listening(process, (port,), "the emulator")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def lock_base(strict_emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", strict_emulator)
    return f"gs://locks/{uuid.uuid4().hex[:12]}/serving/recdistill"


def _lock_object(base):
    from google.cloud import storage as gcs

    return gcs.Client().bucket("locks").blob(f"{base[len('gs://locks/'):]}/{lock_lib.LOCK_NAME}")


def test_the_lock_object_is_exclusive_and_waiting_for_it_is_bounded(lock_base):
    taken, done = threading.Event(), threading.Event()

    def hold():
        with lock_lib.held([lock_base]):
            taken.set()
            done.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(30)
        started = time.monotonic()
        with pytest.raises(lock_lib.LockBusy) as raised:
            with lock_lib.held([lock_base], wait_s=0.3):
                pass
        assert 0.3 <= time.monotonic() - started < 10
        assert f"{lock_base}/{lock_lib.LOCK_NAME}: held by {socket.gethostname()} pid {os.getpid()}" in str(raised.value)
    finally:
        done.set()
        holder.join(30)
    with lock_lib.held([lock_base], wait_s=0.3):  # released: taken at once
        assert _lock_object(lock_base).exists()
    assert not _lock_object(lock_base).exists()


def test_a_stale_lock_object_is_broken_and_a_broken_holder_never_deletes_its_successors(lock_base):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = lock_lib.Owner(socket.gethostname(), int(dead.stdout), "killed", time.time())
    _lock_object(lock_base).upload_from_string(stale.text(), if_generation_match=0)
    with lock_lib.held([lock_base], wait_s=0.3):
        mine = _lock_object(lock_base)
        mine.reload()
        assert lock_lib.Owner.parse(mine.download_as_text(), 0).pid == os.getpid()
        # meanwhile our lock is broken (its lease over) and another push takes it
        mine.delete(if_generation_match=mine.generation)
        successor = lock_lib.Owner("another-host", 7, "successor", time.time())
        _lock_object(lock_base).upload_from_string(successor.text(), if_generation_match=0)
    left = _lock_object(lock_base)
    assert left.exists() and lock_lib.Owner.parse(left.download_as_text(), 0).token == "successor"
