"""Pushes as compare-and-publish transactions (components/push/push.py, lock.py), on tiny local
directories: concurrent pushes, a push racing another between picking its base and publishing,
the lock's waiting and breaking, and what a push may remove."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from unittest import mock

import pytest
from tfx.types import standard_artifacts

from components.push import lock as lock_lib
from components.push import push as push_lib
from components.push.component import ModelPusher
from models.foundation import signatures

PUSH = ModelPusher.EXECUTOR_SPEC.executor_class._FUNCTION  # the component's Python function


def _model(directory, content, files=("saved_model.pb", "variables/variables.index")):
    """A tiny model directory whose files hold `content`."""
    for name in files:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return str(directory)


def _contents(base):
    """{version: saved_model.pb's text} of every integer directory in base."""
    return {int(n): (base / n / "saved_model.pb").read_text() for n in os.listdir(base) if n.isdigit()}


def _dead_pid():
    """The pid of a process of this host that has exited."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(finished.stdout)


@contextlib.contextmanager
def _before_the_lock(action):
    """Runs `action` once, when the next push has staged its copy and is about to take the lock:
    between picking the version it builds on and publishing (where a real race happens)."""
    held, ran = lock_lib.held, []

    def first_runs_action(*args, **kwargs):
        if not ran:
            ran.append(True)
            action()
        return held(*args, **kwargs)

    with mock.patch.object(lock_lib, "held", side_effect=first_runs_action):
        yield
    assert ran, "the push never reached its lock"


class _Lingering:
    """A push's prepare step (it runs after the check, before publishing) that lingers 20 ms, so
    that without the lock other pushes' checks would fall inside it; counts how many ran at once."""

    def __init__(self):
        self.inside, self.most, self._count = 0, 0, threading.Lock()

    def __call__(self, staging, version):
        with self._count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        threading.Event().wait(0.02)  # a window, not a synchronisation: nothing is waited for
        with self._count:
            self.inside -= 1


def test_concurrent_pushes_built_on_one_version_one_publishes_the_others_conflict(tmp_path):
    base = tmp_path / "base"
    push_lib.push(_model(tmp_path / "v1", "v1"), str(base))
    sources = [_model(tmp_path / f"m{k}", f"v1 + items {k}") for k in range(6)]
    start, outcomes, prepare = threading.Barrier(len(sources)), {}, _Lingering()

    def push(k):
        start.wait()
        try:
            outcomes[k] = push_lib.push(sources[k], str(base), built_on=1, prepare=prepare)
        except push_lib.PushConflict as conflict:
            outcomes[k] = conflict

    threads = [threading.Thread(target=push, args=(k,)) for k in range(len(sources))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    won = [k for k, outcome in outcomes.items() if isinstance(outcome, tuple)]
    lost = [outcome for outcome in outcomes.values() if isinstance(outcome, push_lib.PushConflict)]
    assert len(won) == 1 and len(lost) == len(sources) - 1 and prepare.most == 1
    assert all(str(conflict).endswith("version 2 appeared while this push was built; rerun") for conflict in lost)
    assert _contents(base) == {1: "v1", 2: f"v1 + items {won[0]}"}  # the losers' content is in no version
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging and no lock left behind


def test_concurrent_whole_model_pushes_each_get_their_own_version(tmp_path):
    base = tmp_path / "base"
    sources = [_model(tmp_path / f"m{k}", f"model {k}") for k in range(6)]
    start, prepare = threading.Barrier(len(sources)), _Lingering()

    def push(k):
        start.wait()
        push_lib.push(sources[k], str(base), prepare=prepare)

    threads = [threading.Thread(target=push, args=(k,)) for k in range(len(sources))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    contents = _contents(base)
    assert sorted(contents) == list(range(1, 7)) and sorted(contents.values()) == [f"model {k}" for k in range(6)]
    assert prepare.most == 1


def _joint_targets(tmp_path, built_on, content="v1 + items"):
    """add-items' transaction: a serving and a mobile version built on `built_on` of each base."""
    serving, mobile = tmp_path / "out" / "serving" / "recdistill", tmp_path / "out" / "mobile"
    return serving, mobile, [
        push_lib.Target(_model(tmp_path / "ext" / "serving", content), str(serving), "saved_model.pb",
                        built_on=built_on),
        push_lib.Target(_model(tmp_path / "ext" / "mobile", content, ("saved_model.pb", "metadata.json")),
                        str(mobile), "metadata.json", compare_exclude=("metadata.json",), built_on=built_on)]


def test_add_items_racing_a_pipeline_push_of_another_model_publishes_nothing_and_says_rerun(tmp_path):
    serving, mobile, targets = _joint_targets(tmp_path, built_on=1)
    push_lib.push(_model(tmp_path / "v1s", "v1"), str(serving), commit_file="saved_model.pb")
    push_lib.push(_model(tmp_path / "v1m", "v1", ("saved_model.pb", "metadata.json")), str(mobile),
                  commit_file="metadata.json")
    retrained = _model(tmp_path / "retrained", "v2")
    with _before_the_lock(lambda: push_lib.push(retrained, str(serving), commit_file="saved_model.pb")):
        with pytest.raises(push_lib.PushConflict, match="version 2 appeared while this push was built; rerun"):
            push_lib.publish(targets)
    assert _contents(serving) == {1: "v1", 2: "v2"} and _contents(mobile) == {1: "v1"}  # mobile: nothing either
    assert sorted(os.listdir(mobile)) == ["1"] and sorted(os.listdir(serving)) == ["1", "2"]


def test_a_pipeline_push_racing_add_items_leaves_the_extension_in_service(tmp_path):
    serving, mobile, targets = _joint_targets(tmp_path, built_on=1)
    trained = _model(tmp_path / "v1s", "v1")
    push_lib.push(trained, str(serving), commit_file="saved_model.pb")
    push_lib.push(_model(tmp_path / "v1m", "v1", ("saved_model.pb", "metadata.json")), str(mobile),
                  commit_file="metadata.json")
    for target in targets:  # as add-items marks its versions
        with open(os.path.join(target.source_dir, push_lib.EXTENDS_FILE), "w") as f:
            f.write(push_lib.extends_marker(os.path.join(target.base_dir, "1"), target.compare_exclude))
    # the pipeline's rerun saw version 1 (its own model) and pushes; add-items publishes first
    with _before_the_lock(lambda: push_lib.publish(targets)):
        version, _, new = push_lib.push(trained, str(serving), commit_file="saved_model.pb")
    assert (version, new) == (2, False)  # decided under the lock: the latest extends this model
    assert _contents(serving) == {1: "v1", 2: "v1 + items"} and _contents(mobile) == {1: "v1", 2: "v1 + items"}


def test_one_transaction_publishes_serving_and_mobile_under_one_number(tmp_path):
    serving, mobile, targets = _joint_targets(tmp_path, built_on=3)
    for k in (1, 2, 3):
        push_lib.push(_model(tmp_path / f"s{k}", f"v{k}"), str(serving), commit_file="saved_model.pb")
    (mobile / "1").mkdir(parents=True)  # mobile: versions 1 and 3 only (2 removed by hand) and a foreign 5/
    for k in (1, 3):
        _model(mobile / str(k), f"v{k}", ("saved_model.pb", "metadata.json"))
    (mobile / "5").mkdir()
    pushed = push_lib.publish(targets)
    assert [(version, new) for version, _, new in pushed] == [(6, True), (6, True)]
    assert sorted(os.listdir(mobile)) == ["1", "3", "5", "6"] and sorted(os.listdir(serving)) == ["1", "2", "3", "6"]


def _artifacts(model_dir, tmp_path, name):
    model = standard_artifacts.Model()
    model.uri = str(model_dir)
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 1)
    blessing.set_string_custom_property("metrics", "null")
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / name)
    return model, blessing, pushed


def _run_pushers(model_dir, out, tmp_path, order=("serving", "mobile")):
    """The pipeline's two pushers on one model; returns {kind: (version, pushed_destination)}."""
    destinations = {"serving": out / "serving" / signatures.MODEL_NAME, "mobile": out / "mobile"}
    found = {}
    for kind in order:
        model, blessing, pushed = _artifacts(model_dir, tmp_path, f"pushed-{kind}")
        PUSH(model=model, blessing=blessing, kind=kind, destination=str(destinations[kind]), run_token="t",
             pushed_model=pushed)
        found[kind] = (pushed.get_int_custom_property("pushed_version"),
                       pushed.get_string_custom_property("pushed_destination"))
    return found


def _compressed_model(directory, content):
    _model(directory / "Format-Serving", content)
    _model(directory / "mobile", content, (signatures.TFLITE_FILE,))
    (directory / "mobile" / signatures.METADATA).write_text(json.dumps({"version": None}))
    return directory


def test_the_pipelines_two_pushers_pair_their_version_numbers(tmp_path):
    out = tmp_path / "out"
    for k in (1, 2, 3):  # mobile already has versions 1-3 (e.g. pushed by hand): both go to 4
        _model(out / "mobile" / str(k), f"old {k}", (signatures.TFLITE_FILE, signatures.METADATA))
    first = _compressed_model(tmp_path / "first", "first")
    assert {kind: v for kind, (v, _) in _run_pushers(first, out, tmp_path).items()} == {"serving": 4, "mobile": 4}
    second = _compressed_model(tmp_path / "second", "second")  # mobile's pusher runs first this time
    pushed = _run_pushers(second, out, tmp_path, order=("mobile", "serving"))
    assert {kind: v for kind, (v, _) in pushed.items()} == {"serving": 5, "mobile": 5}
    assert json.loads((out / "mobile" / "5" / signatures.METADATA).read_text())["version"] == 5
    # the serving versions deleted by hand: the rerun pushes it again, under the number mobile has it
    for version in ("4", "5"):
        shutil.rmtree(out / "serving" / signatures.MODEL_NAME / version)
    assert {kind: v for kind, (v, _) in _run_pushers(second, out, tmp_path).items()} == {"serving": 5, "mobile": 5}


def test_a_directory_the_push_did_not_write_survives_it(tmp_path):
    base = tmp_path / "serving" / "recdistill"
    push_lib.push(_model(tmp_path / "v1", "v1"), str(base), commit_file="saved_model.pb")
    operators = base / "10" / "variables"  # an operator's copy, half done: no saved_model.pb yet
    operators.mkdir(parents=True)
    (operators / "variables.data-00000-of-00001").write_text("half")
    version, path, new = push_lib.push(_model(tmp_path / "v2", "v2"), str(base), commit_file="saved_model.pb")
    assert (version, new) == (11, True)  # above every integer directory present, ours or not
    assert (operators / "variables.data-00000-of-00001").read_text() == "half"
    assert sorted(os.listdir(base)) == ["1", "10", "11"]
    assert push_lib.latest_version(str(base), "saved_model.pb") == 11


def test_a_lock_held_by_a_live_push_is_waited_for_then_refused_in_one_line(tmp_path, monkeypatch):
    base = tmp_path / "base"
    base.mkdir()
    holder = lock_lib.Owner(socket.gethostname(), os.getpid(), "another-push", 0.0)  # this live process
    (base / lock_lib.LOCK_NAME).write_text(holder.text())
    monkeypatch.setattr(lock_lib, "WAIT_S", 0.3)
    with pytest.raises(lock_lib.LockBusy) as raised:
        push_lib.push(_model(tmp_path / "m", "v1"), str(base))
    assert len(str(raised.value).splitlines()) == 1 and str(base / lock_lib.LOCK_NAME) in str(raised.value)
    assert f"pid {os.getpid()}" in str(raised.value) and "waited 0 s" in str(raised.value)
    assert sorted(os.listdir(base)) == [lock_lib.LOCK_NAME]  # nothing published, the holder's lock kept


def test_a_lock_left_by_a_dead_process_of_this_host_is_broken(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    stale = lock_lib.Owner(socket.gethostname(), _dead_pid(), "killed-push", 0.0)
    (base / lock_lib.LOCK_NAME).write_text(stale.text())
    assert push_lib.push(_model(tmp_path / "m", "v1"), str(base))[::2] == (1, True)
    assert sorted(os.listdir(base)) == ["1"]


def test_a_lock_of_another_host_is_broken_only_after_its_lease(tmp_path, monkeypatch):
    base = tmp_path / "base"
    base.mkdir()
    monkeypatch.setattr(lock_lib, "WAIT_S", 0.2)
    recent = lock_lib.Owner("another-host", 1, "pushing", lock_lib.time.time())
    (base / lock_lib.LOCK_NAME).write_text(recent.text())
    with pytest.raises(lock_lib.LockBusy, match="held by another-host pid 1"):
        push_lib.push(_model(tmp_path / "m", "v1"), str(base))
    expired = lock_lib.Owner("another-host", 1, "killed", lock_lib.time.time() - lock_lib.LEASE_S - 1)
    (base / lock_lib.LOCK_NAME).write_text(expired.text())
    assert push_lib.push(_model(tmp_path / "m", "v1"), str(base))[::2] == (1, True)


def test_only_stagings_of_dead_or_old_pushes_are_removed(tmp_path):
    base = tmp_path / "base"
    now, host = int(lock_lib.time.time()), socket.gethostname()
    names = {"dead here": f"{push_lib.STAGING_PREFIX}{now}-aaaa-{host}.{_dead_pid()}",
             "live here": f"{push_lib.STAGING_PREFIX}{now}-bbbb-{host}.{os.getpid()}",
             "elsewhere": f"{push_lib.STAGING_PREFIX}{now}-cccc-another-host.1",
             "elsewhere, old": f"{push_lib.STAGING_PREFIX}{now - push_lib.STAGING_MAX_AGE_S - 1}-dddd-another-host.1",
             "not ours": ".copying-by-hand"}
    for name in names.values():
        (base / name).mkdir(parents=True)
    push_lib.push(_model(tmp_path / "m", "v1"), str(base))
    assert sorted(os.listdir(base)) == sorted(["1", names["live here"], names["elsewhere"], names["not ours"]])


def test_the_pushers_pair_only_in_the_pipelines_layout():
    from components.push import component

    partner = component._partner("serving", "gs://b/root/serving/recdistill", "gs://b/artifacts/model/7")
    assert (partner.base_dir, partner.source_dir, partner.commit_file) == (
        "gs://b/root/mobile", "gs://b/artifacts/model/7/mobile", signatures.METADATA)
    assert component._partner("mobile", "/srv/root/mobile", "/m").base_dir == "/srv/root/serving/recdistill"
    assert component._partner("serving", "/srv/models/recdistill-canary", "/m") is None  # numbered on its own
