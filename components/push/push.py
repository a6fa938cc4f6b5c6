"""Versioned pushes into a model base directory (TF Serving's layout: <base>/<version>/), local or
on object storage, as compare-and-publish transactions: a reader never loads half a version, and
no push replaces a version it did not see.

A push
  1. copies its files beside their final place under a name that is not an integer (staging,
     `.incomplete-<time>-<token>-<host>.<pid>`: TF Serving, `recdistill serve` and `versions`
     ignore it), without any lock: this is the slow part;
  2. takes the base directory's lock (components/push/lock.py: an exclusively created file on a
     local disk, an object created with if_generation_match=0 on gs://) and, holding it, checks
     what the push was built on. `built_on` names the version it was made from (None: made when
     there was none) and must still be the latest published version, else PushConflict ("version
     N appeared while this push was built; rerun") and nothing is published. A whole model not
     made from a version (the pipeline's pushers: built_on=ANY_BASE) is instead compared with the
     version that is latest then: it is not pushed when that version holds the same files, or
     extends it (EXTENDS_FILE: `recdistill add-items` pushes a model with items appended and the
     digest of the model it extends, so that a pipeline rerun blessing that model again, even one
     racing the add-items, does not take the added items out of service);
  3. publishes the next number, still holding the lock:
     - on a local disk by one rename: a reader sees the whole version or none;
     - on object storage, which cannot rename a directory, by copying object by object with the
       version's `commit_file` last (saved_model.pb for TF Serving, metadata.json for phones): a
       reader can see <version>/ without its commit file while it is copied, and TF Serving's
       loader and `recdistill serve` need saved_model.pb, so they do not load it before it is whole.
`publish` does this for several bases at once (add-items' serving and mobile models): all their
locks are taken (in sorted order), all checked, and only then is any published.

Numbers: one more than the highest integer name present in the base (published or not, ours or
not: a number a server may have tried and given up on, or an operator's copy, is never reused).
Serving and mobile versions of one model carry the same number. add-items publishes both in one
transaction under the next number above both bases. The pipeline's two pushers are separate
components; each names the other's base as its `partner`: a pusher whose partner's latest version
holds exactly the partner half of the same model takes that version's number (when it is above
every number in its own base), else the next number above both bases, so that serving/N and
mobile/N are one model's halves whichever pusher runs first. When that cannot hold (a base edited
by hand, one half not pushed because its base already held it), the numbers differ; mobile's
metadata.json then still says what it holds (`version`, and `added_items[].extends` for add-items).

What holds where:
  - Local disks: pushes into one base (threads, processes, add-items and the pipeline's pushers)
    are serialised by the lock file; a version appears whole by rename; a push killed at any point
    leaves at most its staging and, while its pid is dead, a lock the next push breaks at once.
  - gs://: the same serialisation, as long as the service honours if_generation_match (Google
    Cloud Storage does; gcp-storage-emulator does not, which tests/components/push patches) and
    a holder does not stall for longer than the lock's lease (lock.LEASE_S, 10 minutes) with a
    clock within minutes of the others'. A version appears object by object, commit file last. A
    push killed on another machine blocks the base's pushes until its lease ends (LockBusy names
    the lock object meanwhile; deleting it by hand is safe when no push is running).
  - Neither: writers that do not take the lock (an operator's copy) are not serialised, only
    never overwritten or removed; serving and mobile versions of one add-items are published one
    after the other under both locks, so a crash between the two leaves the first without the second.

What a push removes: only what it wrote.
  - Its own staging; a staging whose owner is dead on this host, or older than STAGING_MAX_AGE_S.
  - On object storage, a version it was copying when it was killed: the copy first writes
    <base>/.publishing-<version> (naming the push) and deletes it after the commit file. The next
    push, holding the lock (so that copier is gone), removes every version so marked that has no
    commit file. A version without such a marker (an operator's half copy) is never removed.
  - On a local disk, no version directory ever (a version of ours is never half there).
"""

import dataclasses
import hashlib
import json
import os
import socket
import time
import uuid
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from components.push import lock
from components.push.lock import LockBusy  # noqa: F401  (raised by push and publish)
from models.foundation import signatures, storage

STAGING_PREFIX = ".incomplete-"
PUBLISHING_PREFIX = ".publishing-"  # <base>/.publishing-<version>: that version is being copied (object storage)
STAGING_MAX_AGE_S = 24 * 3600  # a staging this old was left by a push killed on another machine
COLLISION_RETRIES = 10
EXTENDS_FILE = "extends.json"  # {"digest": sha256 of the pushed model a version extends}
ANY_BASE = "any"  # built_on of a whole model, not made from a version: compared with the latest under the lock

Pushed = Tuple[int, str, bool]  # (version, its path, new: False when the latest already held the model)


class PushConflict(RuntimeError):
    """Another push published into the base since this one picked the version it was built on."""

    def __init__(self, base_dir: str, built_on: Optional[int], latest: Optional[int]):
        self.base_dir, self.built_on, self.latest = base_dir, built_on, latest
        if latest is not None and (built_on is None or latest > built_on):
            message = f"{base_dir}: version {latest} appeared while this push was built; rerun"
        else:
            message = (f"{base_dir}: version {built_on}, which this push was built on, is no longer the latest "
                       f"published one (latest: {latest}); rerun")
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class Target:
    """One model directory to publish into one base directory (see the module docstring).

    prepare(staging_dir, version) may edit the copy before it is published (e.g. write the version
    into metadata); compare_exclude: file names left out when comparing with the latest version."""
    source_dir: str
    base_dir: str
    commit_file: Optional[str] = None
    prepare: Optional[Callable[[str, int], None]] = None
    compare_exclude: Tuple[str, ...] = ()
    built_on: Union[int, None, str] = ANY_BASE


@dataclasses.dataclass(frozen=True)
class Partner:
    """The other half of the same model, pushed by another component into another base: numbers pair."""
    source_dir: str
    base_dir: str
    commit_file: Optional[str] = None
    compare_exclude: Tuple[str, ...] = ()


def versions(base_dir: str, commit_file: Optional[str] = None) -> list:
    """The version numbers present in base_dir, ascending; with `commit_file`, only the versions
    that have it (published ones)."""
    if not storage.isdir(base_dir):
        return []
    return sorted(int(name) for name in storage.listdir(base_dir) if name.isdigit() and (
        commit_file is None or storage.exists(storage.join(base_dir, name, commit_file))))


def latest_version(base_dir: str, commit_file: Optional[str] = None) -> Optional[int]:
    found = versions(base_dir, commit_file)
    return found[-1] if found else None


def push(source_dir: str, base_dir: str, prepare: Optional[Callable[[str, int], None]] = None,
         compare_exclude: Iterable[str] = (), commit_file: Optional[str] = None,
         built_on: Union[int, None, str] = ANY_BASE, partner: Optional[Partner] = None) -> Pushed:
    """Publishes source_dir as base_dir/<next version>; returns (version, path, new).

    new is False when the latest version already holds the same files (compared without
    `compare_exclude`) or extends them, and nothing is written then. commit_file: the file whose
    presence makes a version whole, written last on object storage. Raises PushConflict (see
    `built_on` in the module docstring) and lock.LockBusy."""
    target = Target(source_dir, base_dir, commit_file, prepare, tuple(compare_exclude), built_on)
    return publish([target], partner)[0]


def publish(targets: Sequence[Target], partner: Optional[Partner] = None) -> List[Pushed]:
    """Publishes every target under one lock of all their bases, all checked first, all new ones
    under one number; returns (version, path, new) for each target, in order."""
    if len({target.base_dir for target in targets}) != len(targets):
        raise ValueError("publish: one target per base directory")
    stagings = []
    try:
        for target in targets:
            storage.makedirs(target.base_dir)
            _remove_stale_staging(target.base_dir)
            stagings.append(storage.join(target.base_dir, _staging_name()))
            storage.copy_tree(target.source_dir, stagings[-1])
        digests = [_digest(target.source_dir, target.compare_exclude) for target in targets]
        with lock.held([target.base_dir for target in targets]):
            return _publish_locked(targets, stagings, digests, partner)
    finally:
        for staging in stagings:
            storage.rmtree(staging)


def _publish_locked(targets: Sequence[Target], stagings: List[str], digests: List[str],
                    partner: Optional[Partner]) -> List[Pushed]:
    # taken before the clean-up: a removed half copy's number may have been tried (and given up) by a server
    highest = [_highest(target.base_dir) for target in targets]
    for target in targets:
        _remove_abandoned_copies(target.base_dir, target.commit_file)
    latest = [latest_version(target.base_dir, target.commit_file) for target in targets]
    for target, number in zip(targets, latest):
        if target.built_on != ANY_BASE and number != target.built_on:
            raise PushConflict(target.base_dir, target.built_on, number)
    pushed = {}
    for k, (target, number) in enumerate(zip(targets, latest)):
        if number is not None:
            latest_dir = storage.join(target.base_dir, str(number))
            if digests[k] in (_digest(latest_dir, target.compare_exclude), _extended(latest_dir)):
                pushed[k] = (number, latest_dir, False)
    todo = [k for k in range(len(targets)) if k not in pushed]
    if todo:
        number = _next_number(max(highest[k] for k in todo), partner)
        for _ in range(COLLISION_RETRIES):  # only a writer that does not take the lock can hold it
            finals = [storage.join(targets[k].base_dir, str(number)) for k in todo]
            if not any(storage.exists(final) for final in finals):
                break
            number += 1
        else:
            raise RuntimeError(f"could not find a free version number in {targets[todo[0]].base_dir}")
        for k, final in zip(todo, finals):
            if targets[k].prepare is not None:
                targets[k].prepare(stagings[k], number)
            _publish_one(stagings[k], final, targets[k].commit_file)
            pushed[k] = (number, final, True)
    return [pushed[k] for k in range(len(targets))]


def _next_number(highest: int, partner: Optional[Partner]) -> int:
    """The number to publish under, above `highest` (the highest present in the bases published to)."""
    if partner is None:
        return highest + 1
    partner_latest = latest_version(partner.base_dir, partner.commit_file)
    if partner_latest is not None and partner_latest > highest:
        partner_dir = storage.join(partner.base_dir, str(partner_latest))
        if _digest(partner.source_dir, partner.compare_exclude) == _digest(partner_dir, partner.compare_exclude):
            return partner_latest  # the other half of this very model is published as that number
    return max(highest, _highest(partner.base_dir)) + 1


def _highest(base_dir: str) -> int:
    found = versions(base_dir)
    return found[-1] if found else 0


def _publish_one(staging: str, final: str, commit_file: Optional[str]) -> None:
    if storage.is_uri(final):
        _publish_by_copy(staging, final, commit_file)
        return
    if os.path.exists(final):  # checked just before; a writer that ignores the lock could be this fast
        raise RuntimeError(f"{final} appeared during this push: a writer that does not take the push lock")
    os.rename(staging, final)  # atomic on one filesystem


def _publish_by_copy(staging: str, final: str, commit_file: Optional[str]) -> None:
    """Copies staging to final, commit file last, under a marker that says the copy is ours."""
    base_dir, number = storage.dirname(final), final.rstrip("/").rsplit("/", 1)[-1]
    marker = storage.join(base_dir, f"{PUBLISHING_PREFIX}{number}")
    storage.write_text(marker, json.dumps({"push": _owner(), "since": time.time()}))
    last = (commit_file,) if commit_file and storage.exists(storage.join(staging, commit_file)) else ()
    committed = False
    try:
        storage.copy_tree(staging, final, skip=last)
        for name in last:
            storage.copy(storage.join(staging, name), storage.join(final, name))
        committed = True
    finally:
        if not committed:  # failed (not killed): take our half copy back now rather than at the next push
            storage.rmtree(final)
        storage.remove(marker)


def _remove_abandoned_copies(base_dir: str, commit_file: Optional[str]) -> None:
    """Object storage, under the lock: versions whose copy by a push was cut short (marked, no commit file)."""
    if not storage.is_uri(base_dir):
        return
    for name in storage.listdir(base_dir):
        if not name.startswith(PUBLISHING_PREFIX):
            continue
        number = name[len(PUBLISHING_PREFIX):]
        version_dir = storage.join(base_dir, number)
        if number.isdigit() and not (commit_file and storage.exists(storage.join(version_dir, commit_file))):
            storage.rmtree(version_dir)
        storage.remove(storage.join(base_dir, name))


def extends_marker(version_dir: str, compare_exclude: Iterable[str] = ()) -> str:
    """The EXTENDS_FILE text for a version that extends `version_dir` (compared as push compares,
    without `compare_exclude`); an extension of an extension names the model the first extended."""
    digest = _extended(version_dir) or _digest(version_dir, compare_exclude)
    return json.dumps({"digest": digest})


def stamp_version(staging_dir: str, version: int, **fields) -> None:
    """A mobile version's `prepare` step: its number (and `fields`, e.g. the blessed metrics) into
    the staged copy's metadata.json, so that the file names the version it is published as. Used
    by the mobile pusher and by add-items, so that both write the same bytes."""
    path = storage.join(staging_dir, signatures.METADATA)
    metadata = json.loads(storage.read_text(path))
    metadata.update(version=version, **fields)
    storage.write_text(path, json.dumps(metadata, indent=2))


def _extended(version_dir: str) -> Optional[str]:
    path = storage.join(version_dir, EXTENDS_FILE)
    return json.loads(storage.read_text(path))["digest"] if storage.exists(path) else None


def _owner() -> str:
    """Who is pushing: the host and the process id (object storage is shared by machines)."""
    return f"{socket.gethostname()}.{os.getpid()}"


def _staging_name() -> str:
    return f"{STAGING_PREFIX}{int(time.time())}-{uuid.uuid4().hex[:8]}-{_owner()}"


def _remove_stale_staging(base_dir: str) -> None:
    """Stagings (ours by their prefix) of a push killed on this host, or old enough to be dead anywhere."""
    now = time.time()
    for name in storage.listdir(base_dir):
        if not name.startswith(STAGING_PREFIX):
            continue
        started, _, rest = name[len(STAGING_PREFIX):].partition("-")  # <time>-<token>-<host>.<pid>
        host, _, pid = rest.partition("-")[2].rpartition(".")
        dead_here = host == socket.gethostname() and pid.isdigit() and not lock.pid_alive(int(pid))
        if dead_here or (started.isdigit() and now - int(started) > STAGING_MAX_AGE_S):
            storage.rmtree(storage.join(base_dir, name))


def _digest(directory: str, exclude: Iterable[str]) -> str:
    """sha256 over the relative paths and contents of every file (but `exclude`d file names)."""
    skipped = set(exclude)
    digest = hashlib.sha256()
    for relative in storage.walk_files(directory):
        if relative.rsplit("/", 1)[-1] in skipped:
            continue
        digest.update(relative.replace("/", os.sep).encode())
        with storage.open_file(storage.join(directory, *relative.split("/")), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
