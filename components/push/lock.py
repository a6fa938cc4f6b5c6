"""One lock per model base directory, so that "which version is the latest" and "publish the next
one" happen as one step for every push into it (components/push/push.py).

The lock is <base>/.push-lock (not an integer name: servers and `push.versions` ignore it), whose
content names its holder: {"host", "pid", "token", "since" (unix seconds)}.
- Local disks: the file is created with os.open(O_CREAT | O_EXCL): of two creators exactly one
  succeeds. Its holder removes it. A lock whose pid is dead on this host is stale and is broken;
  breaking happens under a second exclusive file, <base>/.push-lock.break, so that two waiters
  never both break it (one could remove the lock the other had just taken).
- Object storage (gs://): the object is created through google-cloud-storage with
  if_generation_match=0, which the service performs only if no object has that name (HTTP 412
  otherwise: held). Its holder deletes it with if_generation_match=<its generation>, so a holder
  whose lock was broken never deletes its successor's. A stale lock (dead pid on this host) is
  deleted with the same precondition, so only that stale object goes.
- Either place: a lock older than LEASE_S whose holder is on another machine (a pipeline pod
  killed while pushing; its pid cannot be checked from here) is broken too. A push holds the lock
  for a check and a rename locally, a check and a copy of one version on gs://: seconds for the
  models here. Machines' clocks must agree to well within LEASE_S.
Waiting for a lock held by a live push is bounded: WAIT_S, then LockBusy, one line naming the lock
and its holder.
"""

import contextlib
import dataclasses
import json
import os
import socket
import time
import uuid
from typing import Iterator, Optional, Sequence

from models.foundation import storage

LOCK_NAME = ".push-lock"
WAIT_S = 30.0  # a push holds the lock for seconds; a wait this long means something is wrong
POLL_S = 0.05
LEASE_S = 600.0


class LockBusy(RuntimeError):
    """The lock of a base directory stayed held by a live push for WAIT_S."""


class LockUnsupported(ValueError):
    """A URI scheme for which no lock is implemented (local paths and gs:// are)."""


@dataclasses.dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    token: str
    since: float
    generation: Optional[int] = None  # gs:// only: the lock object's generation

    @staticmethod
    def me() -> "Owner":
        return Owner(socket.gethostname(), os.getpid(), uuid.uuid4().hex, time.time())

    def text(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "token": self.token, "since": self.since})

    @staticmethod
    def parse(text: str, since: float, generation: Optional[int] = None) -> "Owner":
        """A holder from a lock's content; content cut short (its creator still writing, or killed
        while writing) is an unknown holder since the file's own time."""
        try:
            held = json.loads(text)
            return Owner(str(held["host"]), int(held["pid"]), str(held["token"]), float(held["since"]), generation)
        except (ValueError, KeyError, TypeError):
            return Owner("", -1, "", since, generation)

    def stale(self, now: float) -> bool:
        if self.host == socket.gethostname() and self.pid > 0:
            return not pid_alive(self.pid)
        return now - self.since > LEASE_S

    def describe(self) -> str:
        return f"{self.host or 'an unknown host'} pid {self.pid} for {time.time() - self.since:.0f} s"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def held(base_dirs: Sequence[str], wait_s: Optional[float] = None) -> Iterator[None]:
    """Holds the locks of all base_dirs while inside; they are taken in sorted order, so that two
    pushes taking several never wait on each other crosswise."""
    with contextlib.ExitStack() as stack:
        for base_dir in sorted(set(base_dirs)):
            stack.enter_context(_held_one(base_dir, WAIT_S if wait_s is None else wait_s))
        yield


@contextlib.contextmanager
def _held_one(base_dir: str, wait_s: float) -> Iterator[None]:
    lock = _GcsLock(base_dir) if storage.is_uri(base_dir) else _LocalLock(base_dir)
    me = Owner.me()
    deadline = time.monotonic() + wait_s
    while not lock.try_create(me):
        holder = lock.holder()
        stale = holder is not None and holder.stale(time.time())
        if stale:
            lock.break_stale(holder, me)
        if time.monotonic() > deadline:
            raise LockBusy(f"{lock.path}: held by {holder.describe() if holder else 'another push'}; waited "
                           f"{wait_s:.0f} s (if no push is running, remove it)")
        if not stale:
            time.sleep(POLL_S)  # a live holder releases it within seconds: its check and publish
    try:
        yield
    finally:
        lock.release()


class _LocalLock:
    def __init__(self, base_dir: str):
        self.path = os.path.join(base_dir, LOCK_NAME)
        self._breaker = self.path + ".break"
        self._mine: Optional[Owner] = None

    def try_create(self, me: Owner) -> bool:
        if not _create_exclusive(self.path, me.text()):
            return False
        self._mine = me
        return True

    def holder(self) -> Optional[Owner]:
        return _read_local(self.path)

    def break_stale(self, seen: Owner, me: Owner) -> None:
        if not _create_exclusive(self._breaker, me.text()):
            breaker = _read_local(self._breaker)  # a waiter breaking it now, or one killed doing so
            if breaker is not None and breaker.stale(time.time()):
                _unlink(self._breaker)
            return
        try:
            if self.holder() == seen:  # still the stale one: no one else can remove or replace it now
                _unlink(self.path)
        finally:
            _unlink(self._breaker)

    def release(self) -> None:
        holder = self.holder()
        if self._mine is not None and holder is not None and holder.token == self._mine.token:
            _unlink(self.path)


def _create_exclusive(path: str, text: str) -> bool:
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return True


def _read_local(path: str) -> Optional[Owner]:
    try:
        with open(path) as handle:
            text, since = handle.read(), os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return None
    return Owner.parse(text, since)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _GcsLock:
    def __init__(self, base_dir: str):
        scheme, _, rest = str(base_dir).partition("://")
        if scheme != "gs":
            raise LockUnsupported(f"{base_dir}: pushes need a lock, implemented for local paths and gs:// only")
        from google.cloud import storage as gcs  # deferred: only pushes to gs:// need the client

        bucket, _, prefix = rest.rstrip("/").partition("/")
        self.path = f"gs://{bucket}/{prefix}/{LOCK_NAME}" if prefix else f"gs://{bucket}/{LOCK_NAME}"
        self._blob_name = self.path[len(f"gs://{bucket}/"):]
        self._bucket = gcs.Client().bucket(bucket)
        self._generation: Optional[int] = None

    def try_create(self, me: Owner) -> bool:
        from google.api_core import exceptions

        blob = self._bucket.blob(self._blob_name)
        try:
            blob.upload_from_string(me.text(), content_type="application/json", if_generation_match=0)
        except exceptions.PreconditionFailed:
            return False
        self._generation = blob.generation
        return True

    def holder(self) -> Optional[Owner]:
        from google.api_core import exceptions

        blob = self._bucket.get_blob(self._blob_name)
        if blob is None:
            return None
        try:
            text = blob.download_as_bytes(if_generation_match=blob.generation).decode("utf-8", "replace")
        except (exceptions.NotFound, exceptions.PreconditionFailed):
            return None  # released or replaced meanwhile: look again
        created = blob.time_created.timestamp() if blob.time_created else time.time()
        return Owner.parse(text, created, blob.generation)

    def break_stale(self, seen: Owner, me: Owner) -> None:
        del me  # the generation precondition makes the delete exclusive: no second file needed
        self._delete(seen.generation)

    def release(self) -> None:
        if self._generation is not None:
            self._delete(self._generation)

    def _delete(self, generation: Optional[int]) -> None:
        from google.api_core import exceptions

        with contextlib.suppress(exceptions.NotFound, exceptions.PreconditionFailed):
            self._bucket.blob(self._blob_name).delete(if_generation_match=generation)
