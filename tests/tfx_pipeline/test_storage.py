"""models.foundation.storage behaves the same on a local directory and on gs:// (a storage emulator)."""

import os

import numpy as np
import pytest

from models.foundation import storage


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("gcs_root")


def _tree(root):
    storage.makedirs(storage.join(root, "a", "b"))
    storage.write_text(storage.join(root, "a", "one.txt"), "one\n")
    storage.write_text(storage.join(root, "a", "b", "two.txt"), "twö\n")
    storage.write_bytes(storage.join(root, "a", "b", "three.bin"), bytes(range(256)))
    storage.write_json(storage.join(root, "c", "four.json"), {"k": [1, 2]})


def test_round_trips(root):
    _tree(root)
    assert storage.read_text(storage.join(root, "a", "b", "two.txt")) == "twö\n"
    assert storage.read_bytes(storage.join(root, "a", "b", "three.bin")) == bytes(range(256))
    assert storage.read_json(storage.join(root, "c", "four.json")) == {"k": [1, 2]}
    arrays = {"ints": np.arange(7, dtype=np.int64), "floats": np.linspace(0, 1, 5, dtype=np.float32)}
    storage.save_npz(storage.join(root, "x.npz"), **arrays)
    loaded = storage.load_npz(storage.join(root, "x.npz"))
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype
    storage.save_npy(storage.join(root, "y.npy"), arrays["floats"])
    np.testing.assert_array_equal(storage.load_npy(storage.join(root, "y.npy")), arrays["floats"])


def test_listing_and_globs_match_the_local_semantics(root):
    _tree(root)
    assert storage.listdir(root) == ["a", "c"]
    assert storage.listdir(storage.join(root, "a")) == ["b", "one.txt"]
    assert storage.isdir(storage.join(root, "a", "b")) and storage.exists(storage.join(root, "a", "b"))
    assert storage.isfile(storage.join(root, "a", "one.txt"))
    assert not storage.isdir(storage.join(root, "a", "one.txt"))
    assert not storage.exists(storage.join(root, "nothing"))
    # wildcards in directory components (the gs:// plugin's own glob finds nothing here)
    assert storage.glob(storage.join(root, "*", "*.txt")) == [storage.join(root, "a", "one.txt")]
    assert storage.glob(storage.join(root, "a", "*", "t*")) == [
        storage.join(root, "a", "b", "three.bin"), storage.join(root, "a", "b", "two.txt")]
    assert storage.glob(storage.join(root, "a", "*")) == [storage.join(root, "a", "b"), storage.join(root, "a", "one.txt")]
    assert list(storage.walk_files(root)) == ["a/b/three.bin", "a/b/two.txt", "a/one.txt", "c/four.json"]


def test_copy_tree_rename_and_rmtree(root):
    _tree(root)
    copied = storage.copy_tree(storage.join(root, "a"), storage.join(root, "copy"), skip=("one.txt",))
    assert copied == ["b/three.bin", "b/two.txt"]
    assert list(storage.walk_files(storage.join(root, "copy"))) == copied
    assert storage.read_bytes(storage.join(root, "copy", "b", "three.bin")) == bytes(range(256))
    storage.rename(storage.join(root, "a", "one.txt"), storage.join(root, "a", "uno.txt"))
    assert storage.listdir(storage.join(root, "a")) == ["b", "uno.txt"]
    storage.rmtree(storage.join(root, "a"))
    storage.rmtree(storage.join(root, "a"))  # already gone: nothing happens
    assert not storage.exists(storage.join(root, "a"))
    assert storage.listdir(root) == ["c", "copy"]


def test_local_copy_and_staged_output(root, tmp_path):
    _tree(root)
    with storage.local_copy(storage.join(root, "a")) as local:
        assert os.path.isdir(local)
        with open(os.path.join(local, "b", "two.txt"), encoding="utf-8") as handle:
            assert handle.read() == "twö\n"
    with storage.local_copy(storage.join(root, "c", "four.json")) as local:
        assert os.path.isfile(local)
    target = storage.join(root, "staged")
    with storage.staged_output(target) as local:
        os.makedirs(os.path.join(local, "d"))
        with open(os.path.join(local, "d", "five.txt"), "w", encoding="utf-8") as handle:
            handle.write("5")
    assert storage.read_text(storage.join(target, "d", "five.txt")) == "5"
    with pytest.raises(RuntimeError):
        with storage.staged_output(storage.join(root, "failed")) as local:
            with open(os.path.join(local, "partial.txt"), "w", encoding="utf-8") as handle:
                handle.write("half")
            raise RuntimeError("the writer failed")
    assert not storage.exists(storage.join(root, "failed", "partial.txt")) or not storage.is_uri(root)


def test_write_atomic_replaces_whole_files(root):
    path = storage.join(root, "atomic", "file.bin")
    storage.makedirs(storage.dirname(path))
    storage.write_atomic(path, b"first")
    storage.write_atomic(path, b"second")
    assert storage.read_bytes(path) == b"second"
    assert storage.listdir(storage.dirname(path)) == ["file.bin"]  # no temporary left behind


def test_paths():
    assert storage.is_uri("gs://b/x") and not storage.is_uri("/tmp/x")
    assert storage.absolute("gs://b/x/") == "gs://b/x"
    assert storage.absolute("rel") == os.path.abspath("rel")
    assert storage.join("gs://b", "x", "y") == "gs://b/x/y"
    assert storage.dirname("gs://b/x/y") == "gs://b/x"
