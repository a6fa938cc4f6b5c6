"""Digests that key TFX's cache: of the input files, and of the code a component runs.

TFX reuses a component's outputs when its inputs and parameters are unchanged. It cannot see a
change in the files under an input directory, nor in the modules a component's code imports, so
those are digested here and passed to the components as parameters.

The code a component runs is found, not listed: closure_digest follows the imports of the
component's entry module (its executor, run_fn or preprocessing_fn) through the project's
packages, so a module imported deep down changes the digest of every component that runs it,
and of no other.
"""

import ast
import hashlib
import os
from types import ModuleType
from typing import BinaryIO, Callable, Dict, Iterable, List, Optional, Sequence, Union

from components.ingest import rows, spans
from models.foundation import storage

INPUT_FILES = (rows.INTERACTIONS_FILE, rows.USERS_FILE, rows.ITEMS_FILE)
# The project's top-level packages: imports of anything else (TensorFlow, TFX, the standard
# library) are pinned by the environment, not by this repository's source.
PROJECT_PACKAGES = ("tfx_pipeline", "components", "models", "serving")
# The directory holding the project packages (this file is <root>/tfx_pipeline/fingerprints.py).
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_digest(data_dir: str, window: Optional[spans.SpanWindow] = None) -> str:
    """A digest of the input files' bytes (a missing file is left to ExampleGen to report); with
    spans, of the files the window reads, each named with its span (span-3/items.csv)."""
    # The data directory may be a bucket (gs://): its files are read through storage.
    return _digest((os.path.join(data_dir, name) for name in input_names(window)), storage.isfile,
                   lambda path: storage.open_file(path, "rb"), root=data_dir)


def input_names(window: Optional[spans.SpanWindow] = None) -> List[str]:
    """The files a run reads, under its data directory: the three CSVs, or with spans those the
    window reads (span-3/interactions.csv, ...)."""
    if window is None:
        return list(INPUT_FILES)
    return [f"{window.name(s)}/{rows.INTERACTIONS_FILE}" for s in window.window] + \
        [f"{window.name(s)}/{name}" for s in window.catalog for name in (rows.USERS_FILE, rows.ITEMS_FILE)]


def closure_digest(*entry_modules: Union[str, ModuleType], root: Optional[str] = None,
                   packages: Sequence[str] = PROJECT_PACKAGES) -> str:
    """A digest of the source of the entry modules and of every project module they import,
    directly or not (module_closure), each file's path under `root` included."""
    root = root or SOURCE_ROOT  # read when called: a test may point it at a copy of the source
    digest = hashlib.sha256()
    for relative in module_closure(*entry_modules, root=root, packages=packages):
        with open(os.path.join(root, relative), "rb") as f:
            content = f.read()
        # Path and length first: a file renamed, or bytes moved between two files, changes the digest.
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:32]


def module_closure(*entry_modules: Union[str, ModuleType], root: Optional[str] = None,
                   packages: Sequence[str] = PROJECT_PACKAGES) -> List[str]:
    """The project source files that importing the entry modules executes, found by parsing, not
    importing: each entry, what it imports anywhere in the file (deferred imports in functions
    included) and the packages' __init__.py on the way, transitively. Paths relative to `root`
    ("/"-separated), sorted. `packages`: the top-level names that are the project's."""
    root = root or SOURCE_ROOT
    pending = [name if isinstance(name, str) else name.__name__ for name in entry_modules]
    for name in pending:
        # A misspelt entry would otherwise digest nothing, and its component would never rerun.
        if _module_file(name, root, packages) is None:
            raise ValueError(f"{name!r} is not a module of the project under {root}")
    files: Dict[str, str] = {}  # module name -> its file
    while pending:
        name = pending.pop()
        path = None if name in files else _module_file(name, root, packages)
        if path is None:  # done already, or not the project's
            continue
        files[name] = path
        pending += _parents(name)  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        pending += _imports(path, name)
    return sorted(os.path.relpath(path, root).replace(os.sep, "/") for path in files.values())


def _module_file(name: str, root: str, packages: Sequence[str]) -> Optional[str]:
    """The file of project module `name` under root (a package's __init__.py), or None when it is
    not a project module (another library, or a name defined inside a module)."""
    parts = name.split(".")
    if parts[0] not in packages:
        return None
    base = os.path.join(root, *parts)
    for path in (os.path.join(base, "__init__.py"), base + ".py"):
        if os.path.isfile(path):
            return path
    return None


def _parents(name: str) -> List[str]:
    """The packages above a dotted module name: a.b.c -> a, a.b."""
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _imports(path: str, name: str) -> List[str]:
    """The dotted names a source file (of module `name`) imports, anywhere in it: `import p.q`
    names p.q; `from p import x` names p and p.x. Names of other libraries, and p.x where x is an
    attribute of p rather than a submodule, find no file in module_closure and are dropped there."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), filename=path)
    package = name if os.path.basename(path) == "__init__.py" else name.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            # p's __init__ always runs; x may be a submodule (from models import scored_rows).
            names += [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


def _absolute(module: Optional[str], level: int, package: str) -> str:
    """The absolute name of `from <level dots><module> import ...` in a module of `package`."""
    if level == 0:
        return module or ""
    parts = package.split(".")
    if level > len(parts):
        raise ImportError(f"relative import beyond the top-level package in {package!r}")
    base = ".".join(parts[: len(parts) - level + 1])
    return f"{base}.{module}" if module else base


def _digest(paths: Iterable[str], isfile: Callable[[str], bool], open_binary: Callable[[str], BinaryIO],
            root: Optional[str] = None) -> str:
    """Each file's name (its path under `root` where it lies deeper than root, else its basename)
    and bytes."""
    digest = hashlib.sha256()
    for path in paths:
        name = os.path.basename(path)
        if root is not None and os.path.dirname(os.path.relpath(path, root)):
            name = os.path.relpath(path, root)
        digest.update(name.encode() + b"\0")
        if isfile(path):
            with open_binary(path) as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:32]
