"""Cache keys: a changed input file, or a changed module anywhere in the code a component runs,
must change its digest; a module the component does not reach must not."""

import shutil

import pytest

from tfx_pipeline.fingerprints import PROJECT_PACKAGES, SOURCE_ROOT, closure_digest, data_digest, module_closure

STUDENT = "components.student.trainer_module"
COMPRESSOR = "components.compression.trainer_module"
INGEST = "components.ingest.component"
TRANSFORM = "components.transform_module"


def test_data_digest_follows_the_bytes_of_the_input_files(tiny_dir):
    before = data_digest(tiny_dir)
    assert data_digest(tiny_dir) == before
    with open(f"{tiny_dir}/items.csv", "a") as f:
        f.write("i5,New,2000,Drama\n")
    assert data_digest(tiny_dir) != before


def test_with_spans_the_digest_covers_the_files_the_window_reads(tmp_path):
    from components.ingest import spans

    for span in (1, 2, 3):
        for name in ("interactions.csv", "items.csv", "users.csv"):
            (tmp_path / f"span-{span}").mkdir(exist_ok=True)
            (tmp_path / f"span-{span}" / name).write_text(f"{name} of span {span}\n")
    settings = spans.SpanSettings(window=2)
    window = spans.resolve(str(tmp_path), settings)
    before = data_digest(str(tmp_path), window)
    # span 1's interactions are outside the window; its items are in the catalog
    (tmp_path / "span-1" / "interactions.csv").write_text("changed\n")
    assert data_digest(str(tmp_path), window) == before
    (tmp_path / "span-1" / "items.csv").write_text("changed\n")
    changed = data_digest(str(tmp_path), window)
    assert changed != before
    # a new span moves the window: another digest, and the same files pinned to span 3 keep theirs
    (tmp_path / "span-4").mkdir()
    for name in ("interactions.csv", "items.csv", "users.csv"):
        (tmp_path / "span-4" / name).write_text("new\n")
    assert data_digest(str(tmp_path), spans.resolve(str(tmp_path), settings)) != changed
    assert data_digest(str(tmp_path), spans.resolve(str(tmp_path), settings, newest=3)) == changed


def test_the_trainers_closures_hold_the_modules_they_reach_through_others():
    # The modules the hand-kept lists missed (issue 24): the student reaches scored_rows and distribute
    # only through components/student/distill.py and models/student_training.py, imported in run_fn.
    student = set(module_closure(STUDENT))
    assert {"components/student/trainer_module.py", "components/student/distill.py", "models/scored_rows.py",
            "models/distribute.py", "models/interaction_data.py", "models/feature_tables.py",
            "components/__init__.py", "components/student/__init__.py", "models/__init__.py"} <= student
    compressor = set(module_closure(COMPRESSOR))
    assert {"components/compression/trainer_module.py", "components/compression/compress.py",
            "components/student/distill.py", "models/scored_rows.py", "models/feature_tables.py",
            "models/interaction_data.py", "models/foundation/tflite_runner.py"} <= compressor
    # Ingestion and Transform run none of the model code: of models/, only the foundation (storage,
    # the Keras-2 switch), the contracts (artifact file names) and the settings codec.
    contracts = {"models/__init__.py", "models/artifacts.py", "models/settings_codec.py"}
    assert not [path for path in module_closure(INGEST) + module_closure(TRANSFORM)
                if path.startswith("models/") and path not in contracts and not path.startswith("models/foundation/")]


def test_editing_a_module_deep_in_a_closure_changes_the_digests_that_reach_it(tmp_path):
    for package in PROJECT_PACKAGES:
        shutil.copytree(f"{SOURCE_ROOT}/{package}", tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    entries = (STUDENT, COMPRESSOR, INGEST, TRANSFORM)
    before = {entry: closure_digest(entry, root=str(tmp_path)) for entry in entries}
    # The digest is of paths relative to the root and of contents: the copy digests as the original.
    assert before == {entry: closure_digest(entry) for entry in entries}
    with open(tmp_path / "models" / "scored_rows.py", "a") as f:
        f.write("# an edit deep in the trainers' closures\n")
    after = {entry: closure_digest(entry, root=str(tmp_path)) for entry in entries}
    assert after[STUDENT] != before[STUDENT]
    assert after[COMPRESSOR] != before[COMPRESSOR]
    assert after[INGEST] == before[INGEST]
    assert after[TRANSFORM] == before[TRANSFORM]


def _write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# A tiny tree whose closure is known by reading it: a imports b in a function; b imports the
# submodule d of package c, and an attribute of c's __init__; d imports g relatively; e, c/f and
# the standard library are not reached.
TREE = {
    "a.py": "import os\n\n\ndef f():\n    import b\n    return b\n",
    "b.py": "from c import d, VALUE\n",
    "c/__init__.py": "VALUE = 1\n",
    "c/d.py": "from . import g\nfrom .g import name\n",
    "c/g.py": "name = 'g'\n",
    "c/f.py": "import e\n",
    "e.py": "",
}
TREE_PACKAGES = ("a", "b", "c", "e")


def test_the_closure_of_a_hand_made_tree_is_what_its_imports_reach(tmp_path):
    _write(tmp_path, TREE)
    assert module_closure("a", root=str(tmp_path), packages=TREE_PACKAGES) == [
        "a.py", "b.py", "c/__init__.py", "c/d.py", "c/g.py"]
    assert module_closure("c.f", root=str(tmp_path), packages=TREE_PACKAGES) == ["c/__init__.py", "c/f.py", "e.py"]


def test_the_closure_digest_covers_contents_and_paths_of_its_files_only(tmp_path):
    _write(tmp_path, TREE)

    def digest():
        return closure_digest("a", root=str(tmp_path), packages=TREE_PACKAGES)

    before = digest()
    _write(tmp_path, {"e.py": "x = 1\n", "c/f.py": "import e  # unreached\n"})
    assert digest() == before
    _write(tmp_path, {"c/g.py": "name = 'G'\n"})
    assert digest() != before
    _write(tmp_path, {"c/g.py": TREE["c/g.py"]})
    assert digest() == before
    # The same bytes under another name are another module: the path is digested too.
    _write(tmp_path, {"c/h.py": TREE["c/g.py"]})
    assert closure_digest("c.h", root=str(tmp_path), packages=TREE_PACKAGES) != closure_digest(
        "c.g", root=str(tmp_path), packages=TREE_PACKAGES)


def test_an_entry_that_is_not_a_project_module_is_refused(tmp_path):
    _write(tmp_path, TREE)
    with pytest.raises(ValueError, match="'c.missing' is not a module"):
        module_closure("c.missing", root=str(tmp_path), packages=TREE_PACKAGES)
    with pytest.raises(ValueError, match="'json' is not a module"):
        closure_digest("json")
