"""Cache keys: a changed input file or a changed module must change its digest."""

from components import ingest, transform_module
from tfx_pipeline.fingerprints import code_digest, data_digest


def test_data_digest_follows_the_bytes_of_the_input_files(tiny_dir):
    before = data_digest(tiny_dir)
    assert data_digest(tiny_dir) == before
    with open(f"{tiny_dir}/items.csv", "a") as f:
        f.write("i5,New,2000,Drama\n")
    assert data_digest(tiny_dir) != before


def test_code_digest_covers_packages_and_modules(tmp_path, monkeypatch):
    assert code_digest(ingest) != code_digest(transform_module)
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pkg

    before = code_digest(pkg)
    (package / "a.py").write_text("x = 2\n")
    assert code_digest(pkg) != before
