"""Every file the code cites exists in the repository: paths in docstrings and comments of the
project's and the tests' modules (tfx_pipeline/..., docs/....md, README.md), and the relative links
of README.md, docs/ and serving/README.md. A user reading a docstring finds what it points to."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A repository path: under a top-level package, tests/ or docs/, with a source or text suffix; or
# a capitalised Markdown file (README.md, and what a docstring might cite from elsewhere).
CITED = re.compile(r"(?<![\w/.<>-])((?:tfx_pipeline|components|models|serving|tests|docs)/[\w./-]*\w"
                   r"\.(?:py|md|yaml|toml|txt|pbtxt|cfg)|[A-Z][A-Za-z_]*\.md)\b")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def tracked(pattern: str):
    return subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def exists(citing_file: str, path: str) -> bool:
    """Relative to the repository, to the citing file's directory, or (a test) to tests/."""
    bases = [ROOT, os.path.dirname(os.path.join(ROOT, citing_file))]
    if citing_file.startswith("tests/"):
        bases.append(os.path.join(ROOT, "tests"))
    return any(os.path.exists(os.path.join(base, path)) for base in bases)


def test_every_file_a_module_cites_is_in_the_repository():
    modules = tracked("*.py")
    assert len(modules) > 100
    missing = [f"{name}:{number}: {match.group(1)}"
               for name in modules
               for number, line in enumerate(open(os.path.join(ROOT, name), encoding="utf-8"), 1)
               for match in CITED.finditer(line) if not exists(name, match.group(1))]
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_every_relative_link_of_the_docs_resolves():
    pages = tracked("*.md")
    assert "README.md" in pages and len(pages) > 10
    missing = [f"{name}: {match.group(1)}"
               for name in pages
               for match in LINK.finditer(open(os.path.join(ROOT, name), encoding="utf-8").read())
               if "://" not in match.group(1) and not match.group(1).startswith("mailto:")
               and not exists(name, match.group(1))]
    assert not missing, "links to nothing:\n" + "\n".join(missing)


def test_the_check_sees_a_missing_file():
    # the pattern finds what the tests above look for, and a made-up path fails `exists`
    # (the names are assembled, so that this file does not cite them itself)
    design, nowhere = "DESIGN" + ".md", "models/" + "nowhere.py"
    assert [m.group(1) for m in CITED.finditer(f'"""see {design} and {nowhere}, not x/y.py"""')] == [design, nowhere]
    assert not exists("models/ease.py", nowhere)
    assert exists("tests/components/student/test_multi_worker.py", "models/ease.py")
