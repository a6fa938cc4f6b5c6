"""The compression frontier bench's pieces that need no training (tfx_pipeline/bench_compression.py):
the default's rule, the ranks' parsing, the newest artifact of a run."""

import pytest

from tfx_pipeline import bench_compression


def _point(rank, form, ndcg, gzip_bytes):
    return {"rank": rank, "target_sparsity": 0.75, "form": form, "ndcg@10": ndcg, "gzip_bytes": gzip_bytes}


def test_the_pick_is_the_smallest_int8_point_within_the_gates_bound_and_headroom():
    reference = _point(None, "uncompressed", 0.50, 100_000)
    points = [_point(None, "int8", 0.497, 40_000), _point(8, "int8", 0.4925, 25_000),  # 0.985 x: kept
              _point(4, "int8", 0.491, 15_000),  # 0.982 x: within the gate's 0.98, not its headroom
              _point(4, "float", 0.499, 10_000)]  # a float point is never the pick
    assert bench_compression.pick(points, reference) == points[1]
    assert bench_compression.pick(points[2:], reference) is None
    assert bench_compression.pick(points, None) is None


def test_ranks_and_the_newest_artifact(tmp_path):
    assert bench_compression.parse_ranks("none, 16,8") == [None, 16, 8]
    for number in (3, 11, 7):
        (tmp_path / "pipeline_root" / "StudentTrainer" / "model" / str(number)).mkdir(parents=True)
    assert bench_compression.artifact(str(tmp_path), "StudentTrainer", "model").endswith("/model/11")
    with pytest.raises(FileNotFoundError, match="recdistill run"):
        bench_compression.artifact(str(tmp_path), "StudentCompressor", "model")
