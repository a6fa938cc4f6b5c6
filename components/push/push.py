"""Versioned pushes into a model base directory (TF Serving's layout: <base>/<version>/), local or
on object storage, so that a reader never loads half a version.

A version is first written beside its final place under a name that is not an integer (TF Serving,
`recdistill serve` and `latest_version` ignore it), then published:
- on a local disk by one rename: a reader sees the whole version or none;
- on object storage (gs://), where there is no rename of a directory, by copying it object by
  object into <base>/<version>/ with the version's `commit_file` last (saved_model.pb for
  TF Serving, metadata.json for phones). A reader polling the base path can see <version>/ with
  some files and no commit file for the length of the copy; TF Serving's loader and `recdistill
  serve` need saved_model.pb, so they do not load it before it is whole. A push killed half-way
  leaves such a directory; the next push removes it and publishes the next number.
Versions are increasing integers: one more than the highest present. A push of a model whose
files equal the latest version's is not repeated (a cached rerun blesses the same model again),
nor of the model that the latest version extends (`recdistill add-items` pushes a model with
items appended and an EXTENDS_FILE naming the digest of the model it extends): a rerun that
blesses that model again does not take the added items out of service.
Staging directories left by an interrupted push are removed by the next push.
"""

import hashlib
import json
import os
import socket
from typing import Callable, Iterable, Optional, Tuple

from tfx_pipeline import storage

STAGING_PREFIX = ".incomplete-"
COLLISION_RETRIES = 10
EXTENDS_FILE = "extends.json"  # {"digest": sha256 of the pushed model a version extends}


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
         compare_exclude: Iterable[str] = (), commit_file: Optional[str] = None) -> Tuple[int, str, bool]:
    """Copies source_dir to base_dir/<next version>; returns (version, path, new).

    prepare(staging_dir, version) may edit the copy before it is published (e.g. write the version
    into metadata). new is False when the latest version already holds the same files (compared
    without `compare_exclude`), and nothing is written then. commit_file: the file whose presence
    makes a version whole, written last on object storage.
    """
    storage.makedirs(base_dir)
    _remove_stale_staging(base_dir)
    highest = latest_version(base_dir) or 0
    if commit_file is not None:
        _remove_unpublished(base_dir, commit_file)
    latest = latest_version(base_dir)
    if latest is not None:
        latest_dir = storage.join(base_dir, str(latest))
        if _digest(source_dir, compare_exclude) in (_digest(latest_dir, compare_exclude), _extended(latest_dir)):
            return latest, latest_dir, False
    # Not the number of a removed half-copied version: a server may have tried it and given up.
    version = max(highest, latest or 0) + 1
    staging = storage.join(base_dir, f"{STAGING_PREFIX}{version}-{_owner()}")
    try:
        storage.copy_tree(source_dir, staging)
        for _ in range(COLLISION_RETRIES):
            if prepare is not None:
                prepare(staging, version)
            final = storage.join(base_dir, str(version))
            if storage.is_uri(base_dir):
                if not storage.exists(final):
                    _publish_by_copy(staging, final, commit_file)
                    return version, final, True
            else:
                try:
                    os.rename(staging, final)  # atomic on one filesystem
                    return version, final, True
                except OSError:
                    if not os.path.isdir(final):
                        raise
            version = latest_version(base_dir) + 1  # another push took the number: take the next
        raise RuntimeError(f"could not find a free version number in {base_dir}")
    finally:
        storage.rmtree(staging)


def extends_marker(version_dir: str, compare_exclude: Iterable[str] = ()) -> str:
    """The EXTENDS_FILE text for a version that extends `version_dir` (compared as push compares,
    without `compare_exclude`); an extension of an extension names the model the first extended."""
    digest = _extended(version_dir) or _digest(version_dir, compare_exclude)
    return json.dumps({"digest": digest})


def _extended(version_dir: str) -> Optional[str]:
    path = storage.join(version_dir, EXTENDS_FILE)
    return json.loads(storage.read_text(path))["digest"] if storage.exists(path) else None


def _publish_by_copy(staging: str, final: str, commit_file: Optional[str]) -> None:
    last = (commit_file,) if commit_file and storage.exists(storage.join(staging, commit_file)) else ()
    storage.copy_tree(staging, final, skip=last)
    for name in last:
        storage.copy(storage.join(staging, name), storage.join(final, name))


def _owner() -> str:
    """Who is pushing: the process id, and on object storage (shared by machines) the host too."""
    return f"{socket.gethostname()}.{os.getpid()}"


def _remove_stale_staging(base_dir: str) -> None:
    for name in storage.listdir(base_dir):
        if not name.startswith(STAGING_PREFIX):
            continue
        owner = name[len(STAGING_PREFIX):].partition("-")[2]  # <version>-<host>.<pid>
        host, _, pid = owner.rpartition(".")
        if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another process of this machine is pushing right now
        storage.rmtree(storage.join(base_dir, name))


def _remove_unpublished(base_dir: str, commit_file: str) -> None:
    """Integer directories without the commit file: a push to object storage killed while copying."""
    published = set(versions(base_dir, commit_file))
    for version in versions(base_dir):
        if version not in published:
            storage.rmtree(storage.join(base_dir, str(version)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
