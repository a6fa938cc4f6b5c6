"""The student run's choice of scored rows: Split-train for phase one, Split-final for the refit."""

from components.student import distill


def test_split_files_picks_the_split_by_its_directory():
    patterns = ["/r/Scorer/scored_examples/7/Split-train/*", "/r/Scorer/scored_examples/7/Split-final/*",
                "gs://b/root/Split-train-old/Split-final/*"]
    assert distill.split_files(patterns, "train") == patterns[:1]
    assert distill.split_files(patterns, "final") == patterns[1:]
    assert distill.split_files(patterns, "eval") == []
