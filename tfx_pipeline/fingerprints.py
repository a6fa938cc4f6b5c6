"""Digests that key TFX's cache: of the input files, and of the code a component runs.

TFX reuses a component's outputs when its inputs and parameters are unchanged. It cannot see a
change in the files under an input directory, nor in a module named by a dotted path, so those
are digested here and passed to the components as parameters.
"""

import hashlib
import inspect
import os
from types import ModuleType
from typing import BinaryIO, Callable, Iterable

from components.ingest import rows
from tfx_pipeline import storage

INPUT_FILES = (rows.INTERACTIONS_FILE, rows.USERS_FILE, rows.ITEMS_FILE)


def data_digest(data_dir: str) -> str:
    """A digest of the input files' bytes (a missing file is left to ExampleGen to report)."""
    # The data directory may be a bucket (gs://): its files are read through storage.
    return _digest((os.path.join(data_dir, name) for name in INPUT_FILES), storage.isfile,
                   lambda path: storage.open_file(path, "rb"))


def code_digest(*modules: ModuleType) -> str:
    """A digest of the source of modules or packages (every .py file of a package)."""
    paths = []
    for module in modules:
        source = inspect.getsourcefile(module)
        if os.path.basename(source) == "__init__.py":
            folder = os.path.dirname(source)
            paths += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py"))
        else:
            paths.append(source)
    # The project's own source files: always local, read with the builtins.
    return _digest(paths, os.path.isfile, lambda path: open(path, "rb"))


def _digest(paths: Iterable[str], isfile: Callable[[str], bool], open_binary: Callable[[str], BinaryIO]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0")
        if isfile(path):
            with open_binary(path) as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:32]
