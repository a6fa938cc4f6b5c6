"""What produced a report: report.json "run" (docs/design.md): the code, the settings, the data, the
seeds, the library versions, the machine and the times, so that two reports can be told apart and
compared (`recdistill report A B` shows the settings that differ).
"""

import codecs
import csv
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from typing import Any, Dict, Iterable, List, Optional, Tuple

from models.foundation import storage

# The libraries whose versions decide a run's numbers, by their distribution names.
LIBRARIES = ("tensorflow", "tfx", "tf-keras", "keras", "keras-hub", "keras-nlp", "tensorflow-recommenders",
             "tensorflow-model-optimization", "tensorflow-transform", "tensorflow-data-validation",
             "apache-beam", "numpy", "ai-edge-litert")
_LINE_END = re.compile(r"(\r\n|\r|\n)")
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def now() -> str:
    """UTC, to the second, ISO 8601 (2026-12-04T17:31:02Z)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(config, input_files: Iterable[Tuple[str, str]], started: str, ended: str) -> Dict[str, Any]:
    """report.json "run". config: the PipelineConfig (a dataclass); input_files: (name, path) of
    each file the run read (name: as it appears under --data, e.g. span-3/items.csv)."""
    settings = _jsonable(dataclasses.asdict(config))
    return {
        "recdistill": _version("recdistill"),
        "git_commit": git_commit(),
        "config": settings,
        "config_digest": config_digest(settings),
        "inputs": {name: input_file(path) for name, path in input_files},
        "seeds": seeds(settings),
        "versions": {"python": platform.python_version(),
                     **{name: v for name in LIBRARIES if (v := _version(name)) is not None}},
        "machine": machine(),
        "started": started,
        "ended": ended,
    }


def config_digest(settings: Dict[str, Any]) -> str:
    """sha256 of the settings as canonical JSON (sorted keys), first 16 hex digits: equal
    digests, equal settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def seeds(settings: Dict[str, Any], path: str = "") -> Dict[str, int]:
    """Every setting named seed, by its dotted path (teacher.seed, student.seed, ...)."""
    found = {}
    for key, value in settings.items():
        name = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            found.update(seeds(value, name))
        elif key == "seed" or key.endswith("_seed"):
            found[name] = value
    return found


def input_file(path: str) -> Dict[str, Any]:
    """{"sha256", "bytes", "rows"}: rows are the non-empty CSV records after the header, read as
    the ingest reads them (a quoted field may span lines; \n, \r\n or \r end a line; blank lines do
    not count); rows is None where the file is not CSV the reader can follow, all None where it is
    absent."""
    if not storage.isfile(path):
        return {"sha256": None, "bytes": None, "rows": None}
    digest, size = hashlib.sha256(), 0

    def lines():  # one pass: the digest and the CSV records from the same blocks
        nonlocal size
        decoder, partial = codecs.getincrementaldecoder("utf-8")(errors="replace"), ""
        with storage.open_file(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
                complete, partial = _split_lines(partial + decoder.decode(block))
                yield from complete
        rest = partial + decoder.decode(b"", final=True)
        if rest:
            yield rest

    source = lines()
    try:
        rows = sum(1 for record in csv.reader(source, strict=False) if record)
    except csv.Error:  # e.g. a field over the csv module's limit: the digest still stands
        for _ in source:  # the rest of the file, for the digest
            pass
        rows = None
    return {"sha256": digest.hexdigest(), "bytes": size, "rows": None if rows is None else max(rows - 1, 0)}


def _split_lines(text: str):
    """(whole lines with their ends, the rest): lines end at \r\n, \r or \n, not at the other
    characters str.splitlines breaks at (\x1c, \u2028 may sit inside a field); a trailing \r is
    held back, since the next block may start with its \n."""
    pieces = _LINE_END.split(text)  # text, end, text, end, ..., text
    complete = [pieces[i] + pieces[i + 1] for i in range(0, len(pieces) - 1, 2)]
    rest = pieces[-1]
    if complete and not rest and complete[-1].endswith("\r"):
        rest = complete.pop()
    return complete, rest


def git_commit(root: str = _SOURCE_ROOT) -> Optional[str]:
    """The source tree's commit, "+dirty" when tracked files differ from it; None outside a git
    checkout (an installed wheel, a container image) or without git."""
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def machine() -> Dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        memory = None
    return {"cores": cores, "memory_gib": round(memory, 1) if memory else None,
            "platform": platform.platform(), "processor": platform.machine()}


def differences(a: Dict[str, Any], b: Dict[str, Any], path: str = "") -> List[Tuple[str, Any, Any]]:
    """(dotted setting, value in a, value in b) for every setting that differs, sorted."""
    found = []
    for key in sorted(set(a) | set(b)):
        name = f"{path}.{key}" if path else key
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            found += differences(left, right, name)
        elif left != right:
            found.append((name, left, right))
    return found


def _version(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _jsonable(value: Any) -> Any:
    """Tuples as lists, anything else JSON cannot hold as its text."""
    return json.loads(json.dumps(value, default=str))
