"""Atomic, versioned pushes into a model base directory (TF Serving's layout: <base>/<version>/).

A version is written beside its final place under a name that is not an integer (TF Serving and
`latest_version` ignore it), then renamed into place: a reader sees the whole version or none.
Versions are increasing integers: one more than the highest present. A push of a model whose
files equal the latest version's is not repeated (a cached rerun blesses the same model again).
Staging directories left by an interrupted push are removed by the next push.
"""

import hashlib
import os
import shutil
from typing import Callable, Iterable, Optional, Tuple

STAGING_PREFIX = ".incomplete-"
COLLISION_RETRIES = 10


def versions(base_dir: str) -> list:
    """The version numbers present in base_dir, ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir) if name.isdigit())


def latest_version(base_dir: str) -> Optional[int]:
    found = versions(base_dir)
    return found[-1] if found else None


def push(source_dir: str, base_dir: str, prepare: Optional[Callable[[str, int], None]] = None,
         compare_exclude: Iterable[str] = ()) -> Tuple[int, str, bool]:
    """Copies source_dir to base_dir/<next version>; returns (version, path, new).

    prepare(staging_dir, version) may edit the copy before it is published (e.g. write the version
    into metadata). new is False when the latest version already holds the same files (compared
    without `compare_exclude`), and nothing is written then.
    """
    os.makedirs(base_dir, exist_ok=True)
    _remove_stale_staging(base_dir)
    latest = latest_version(base_dir)
    if latest is not None and _digest(source_dir, compare_exclude) == _digest(
            os.path.join(base_dir, str(latest)), compare_exclude):
        return latest, os.path.join(base_dir, str(latest)), False
    version = (latest or 0) + 1
    staging = os.path.join(base_dir, f"{STAGING_PREFIX}{version}-{os.getpid()}")
    try:
        shutil.copytree(source_dir, staging)
        for _ in range(COLLISION_RETRIES):
            if prepare is not None:
                prepare(staging, version)
            final = os.path.join(base_dir, str(version))
            try:
                os.rename(staging, final)  # atomic on one filesystem
                return version, final, True
            except OSError:
                if not os.path.isdir(final):
                    raise
                version = latest_version(base_dir) + 1  # another push took the number: take the next
        raise RuntimeError(f"could not find a free version number in {base_dir}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(base_dir: str) -> None:
    for name in os.listdir(base_dir):
        if not name.startswith(STAGING_PREFIX):
            continue
        pid = name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another process is pushing right now
        shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)


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
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name in skipped:
                continue
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()
