"""Files by path or URI: local paths and object storage (gs://...) through one set of functions.

On Kubeflow, Vertex AI and Dataflow every artifact, input and push destination is an object-store
URI, which Python's open/os/shutil/glob cannot reach. Everything the pipeline reads or writes goes
through here, on top of TensorFlow's `tf.io.gfile` (the filesystem TFX's `fileio` uses too); Beam
code uses Beam's FileSystems instead. Local paths behave exactly as with the builtins.

What object storage is not, and how these functions hide it:
- no directories: `listdir` names come back without the trailing "/" gs:// listings may carry,
  `makedirs` is harmless, a "directory" exists while some object has its prefix (an emptied one
  is gone), and writing a file needs no parent to be made first;
- no rename of a directory: `copy_tree` copies object by object (a reader can see a half-copied
  tree: components/push/ publishes versions so that a server never loads one);
- TensorFlow's gs:// glob does not match wildcards in directory components: `glob` walks them.
"""

import contextlib
import fnmatch
import io
import json
import os
import posixpath
import shutil
import tempfile
from typing import Dict, Iterator, List

import numpy as np

from models.foundation import env  # noqa: F401  (the gs:// filesystem is chosen before TensorFlow loads)


def _gfile():
    import tensorflow as tf  # deferred: `recdistill query` and the CSV checks never load TensorFlow

    return tf.io.gfile


def is_uri(path: str) -> bool:
    """True for scheme://... (gs://, s3://, ...), False for local paths."""
    return "://" in str(path)


def absolute(path: str) -> str:
    """Local paths made absolute; URIs unchanged (os.path.abspath would mangle them)."""
    path = str(path)
    return path.rstrip("/") if is_uri(path) else os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    return posixpath.join(str(base), *parts) if is_uri(base) else os.path.join(str(base), *parts)


def dirname(path: str) -> str:
    return posixpath.dirname(str(path).rstrip("/")) if is_uri(path) else os.path.dirname(path)


def exists(path: str) -> bool:
    """As os.path.exists; on object storage a "directory" exists when objects have its prefix."""
    return _gfile().exists(str(path)) or (is_uri(path) and _gfile().isdir(str(path)))


def isdir(path: str) -> bool:
    return _gfile().isdir(str(path))


def isfile(path: str) -> bool:
    return exists(path) and not isdir(path)


def makedirs(path: str) -> None:
    _gfile().makedirs(str(path))


def listdir(path: str) -> List[str]:
    """Sorted entry names (no trailing "/")."""
    path = str(path).rstrip("/") + "/" if is_uri(path) else str(path)  # a bucket's root needs the "/"
    return sorted({name.rstrip("/") for name in _gfile().listdir(path)})


def glob(pattern: str) -> List[str]:
    """Sorted paths matching `pattern`; wildcards may stand in any component, as in glob.glob."""
    pattern = str(pattern)
    if not is_uri(pattern):
        return sorted(_gfile().glob(pattern))
    scheme, rest = pattern.split("://", 1)
    parts = rest.split("/")
    fixed = next((k for k, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
    found = [f"{scheme}://" + "/".join(parts[:fixed])]
    for part in parts[fixed:]:
        found = [join(base, name) for base in found for name in _names(base) if fnmatch.fnmatchcase(name, part)]
    return sorted(path for path in found if exists(path))


def _names(directory: str) -> List[str]:
    """listdir, or nothing where `directory` is not one."""
    try:
        return listdir(directory)
    except Exception:  # tf.errors.NotFoundError and friends, without importing TensorFlow here
        return []


def remove(path: str) -> None:
    _gfile().remove(str(path))


def rmtree(path: str) -> None:
    """Removes a directory tree; nothing happens when it does not exist."""
    if exists(path):
        _gfile().rmtree(str(path))


def copy(source: str, destination: str, overwrite: bool = True) -> None:
    _gfile().copy(str(source), str(destination), overwrite=overwrite)


def rename(source: str, destination: str, overwrite: bool = True) -> None:
    """A file's rename: atomic on local disks, a copy and a delete on object storage."""
    _gfile().rename(str(source), str(destination), overwrite=overwrite)


def walk_files(top: str) -> List[str]:
    """Every file under `top`, as sorted paths relative to it ("/"-separated)."""
    top = str(top).rstrip("/")
    found = []
    for directory, _, files in _gfile().walk(top):
        relative = str(directory).rstrip("/")[len(top):].strip("/")
        found += [f"{relative}/{name}" if relative else name for name in files]
    return sorted(found)


def copy_tree(source: str, destination: str, skip=()) -> List[str]:
    """Copies every file under `source` to the same place under `destination` (files whose
    relative path is in `skip` are left out); returns the relative paths copied."""
    copied = []
    for relative in walk_files(source):
        if relative in skip:
            continue
        target = join(destination, *relative.split("/"))
        makedirs(dirname(target))
        copy(join(source, *relative.split("/")), target, overwrite=True)
        copied.append(relative)
    return copied


def open_file(path: str, mode: str = "r"):
    """A file object for any path ("r", "w", "rb", "wb", "a"); text modes are UTF-8. Writing
    creates the parent directories, as object storage (which has none) does in effect."""
    if not is_uri(path) and any(flag in mode for flag in "wa"):
        os.makedirs(os.path.dirname(os.path.abspath(str(path))), exist_ok=True)
    return _gfile().GFile(str(path), mode)


def read_text(path: str) -> str:
    with open_file(path, "r") as handle:
        return handle.read()


def read_bytes(path: str) -> bytes:
    with open_file(path, "rb") as handle:
        return handle.read()


def write_text(path: str, text: str) -> None:
    with open_file(path, "w") as handle:
        handle.write(text)


def write_bytes(path: str, data: bytes) -> None:
    with open_file(path, "wb") as handle:
        handle.write(data)


def read_json(path: str):
    return json.loads(read_text(path))


def write_json(path: str, value, indent: int = 2) -> None:
    write_text(path, json.dumps(value, indent=indent, sort_keys=True) + "\n")


def write_atomic(path: str, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one: on object storage a single
    object upload already is; on a local disk a temporary file is renamed over it."""
    if is_uri(path):
        write_bytes(path, data)
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def save_npz(path: str, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


class PickledArrayError(ValueError):
    """An .npy/.npz array holds pickled Python objects: never loaded (unpickling runs code)."""


def load_npz(path: str) -> Dict[str, np.ndarray]:
    """Every array of an .npz file, read whole (np.load's lazy file would need a seekable local file).

    Never with pickle: an artifact store's writer must not be able to run code in its readers (no
    allow_pickle parameter to pass). An object array raises PickledArrayError naming the file."""
    with np.load(io.BytesIO(read_bytes(path)), allow_pickle=False) as arrays:
        return {name: _unpickled(path, name, lambda: arrays[name]) for name in arrays.files}


def save_npy(path: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getvalue())


def load_npy(path: str) -> np.ndarray:
    """An .npy file's array, never with pickle (see load_npz)."""
    return _unpickled(path, None, lambda: np.load(io.BytesIO(read_bytes(path)), allow_pickle=False))


def _unpickled(path: str, name, load):
    try:
        return load()
    except ValueError as error:
        if "allow_pickle" not in str(error):  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
            raise
        where = f"{path} ({name})" if name else path
        raise PickledArrayError(f"{where}: holds pickled Python objects, which are never loaded") from None


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path with the contents of `path` (file or directory) for libraries that only read
    local files; a local `path` is given as it is, a URI is downloaded to a temporary place."""
    if not is_uri(path):
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="recdistill-") as scratch:
        local = os.path.join(scratch, posixpath.basename(str(path).rstrip("/")) or "object")
        if isdir(path):
            copy_tree(path, local)
        else:
            copy(path, local)
        yield local


@contextlib.contextmanager
def staged_output(path: str) -> Iterator[str]:
    """A local directory to write into for libraries that only write local files; on leaving
    without an error its contents are copied to `path` (for a local `path`, it is `path` itself)."""
    if not is_uri(path):
        os.makedirs(path, exist_ok=True)
        yield str(path)
        return
    scratch = tempfile.mkdtemp(prefix="recdistill-")
    try:
        yield scratch
        copy_tree(scratch, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
