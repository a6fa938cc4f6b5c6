"""Strategies by name, the chief from TF_CONFIG, and two local workers training one model together."""

import json
import time

import numpy as np
import pytest

from models import distribute
from tests.harness import local_workers


def test_strategy_for_names():
    import tensorflow as tf

    assert distribute.strategy_for("default") is tf.distribute.get_strategy()
    mirrored = distribute.strategy_for("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == max(len(tf.config.list_physical_devices("GPU")), 1)
    assert distribute.strategy_for("mirrored") is mirrored  # one per process
    with pytest.raises(ValueError, match="must be one of default, mirrored, multi_worker_mirrored, got 'tpu'"):
        distribute.strategy_for("tpu")


def _config(task_type=None, index=0, chief=False, workers=2):
    cluster = {"worker": [f"127.0.0.1:{2220 + n}" for n in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:2219"]
    return {"cluster": cluster, **({"task": {"type": task_type, "index": index}} if task_type else {})}


@pytest.mark.parametrize("config, chief, workers", [
    (None, True, 1),
    (_config("chief", chief=True), True, 3),
    (_config("worker", 0, chief=True), False, 3),  # a chief exists: worker 0 is a worker
    (_config("worker", 0), True, 2),  # no chief: worker 0 is the chief
    (_config("worker", 1), False, 2),
    (_config("evaluator", 0), False, 2),
    (_config("ps", 0), False, 2),
    ({"cluster": {"master": ["h:1"]}, "task": {"type": "master", "index": 0}}, True, 1),  # legacy AI Platform
    ({"cluster": {}, "environment": "cloud"}, True, 1),  # no task: a single process
])
def test_is_chief_and_worker_count(monkeypatch, config, chief, workers):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.is_chief() is chief
    assert distribute.worker_count() == workers


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs TF_CONFIG .* it is not set"),
    ("{not json", "TF_CONFIG is not JSON"),
    (json.dumps({"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}), "cluster of \"chief\"/\"worker\""),
    (json.dumps(_config()), "this process's task"),
    (json.dumps(_config("evaluator")), "this process's task"),
    (json.dumps(_config("worker", 2)), "task index in the cluster's worker list \\(2 addresses\\), got 2"),
    (json.dumps(_config("chief")), "task index in the cluster's chief list \\(0 addresses\\)"),
    (json.dumps({"cluster": {"worker": ["h:1"], "boss": ["h:2"]}, "task": {"type": "worker", "index": 0}}),
     "task types chief, worker, ps or evaluator, got \\['boss'\\]"),
])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        distribute.strategy_for("multi_worker_mirrored")


def test_multi_worker_after_the_first_op_says_what_to_change(monkeypatch):
    import tensorflow as tf

    tf.constant(0.0)  # TensorFlow has run an op in this process (pytest's tests did already, surely)
    config = local_workers.cluster_configs(local_workers.free_ports(2))[0]
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(ValueError, match="must be created before TensorFlow runs its first op"):
        distribute.strategy_for("multi_worker_mirrored")


def _regression_data():
    """64 rows of 3 features, y = x . (1, -2, 0.5) + 0.3 + noise (float32)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=[64, 3]).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=64)).astype(np.float32)[:, None]
    return x, y


def train_tiny_regression(steps: int):
    """In a worker: a tf_keras Dense(1) trained by model.fit under MultiWorkerMirroredStrategy on one
    global batch of all 64 rows (each worker's replica gets its half) -> its weights and the cluster."""
    strategy = distribute.strategy_for("multi_worker_mirrored")  # before TensorFlow's first op
    import tensorflow as tf
    from tensorflow.python.autograph.core import config as autograph_config

    assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__  # Keras 2, as the student
    # AutoGraph leaves `keras` alone but converts all of `tf_keras` (not in its DoNotConvert list, TF
    # 2.16): ~350 library functions at fit's first trace, 12-30 s on this machine, the same weights.
    autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert("tf_keras"), *autograph_config.CONVERSION_RULES)
    x, y = _regression_data()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input([3]), tf.keras.layers.Dense(1)])
        model.compile(tf.keras.optimizers.SGD(0.3), loss="mse")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(len(x)).with_options(options)
    history = model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    kernel, bias = model.get_weights()
    return {"kernel": kernel.ravel().tolist(), "bias": bias.tolist(), "loss": history.history["loss"],
            "replicas": strategy.num_replicas_in_sync, "chief": distribute.is_chief(),
            "workers": distribute.worker_count()}


@pytest.mark.slow  # two worker processes (~13 s)
def test_two_workers_fit_one_model():
    started = time.monotonic()
    results = local_workers.run_workers(train_tiny_regression, count=2, args=(60,), timeout=150)
    seconds = time.monotonic() - started
    first, second = (r.value for r in results)
    assert [first["chief"], second["chief"]] == [True, False]
    assert first["workers"] == second["workers"] == 2 and first["replicas"] == second["replicas"] == 2
    # Synchronous training: both workers end with the very same weights ...
    assert first["kernel"] == second["kernel"] and first["bias"] == second["bias"]
    # ... those of gradient descent on the whole data: the least-squares solution.
    x, y = _regression_data()
    solution, *_ = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y[:, 0].astype(np.float64), rcond=None)
    assert np.allclose(first["kernel"] + first["bias"], solution, atol=1e-3), (first, solution)
    assert seconds < 120, seconds


def _fails(code: int):
    """In a worker: worker 1 fails at once, worker 0 would wait for it forever."""
    import os
    import sys

    if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        print("worker 1 gives up", file=sys.stderr)
        sys.exit(code)
    time.sleep(600)


@pytest.mark.slow  # two worker processes (~3 s)
def test_a_failed_worker_ends_the_job():
    started = time.monotonic()
    with pytest.raises(local_workers.WorkersFailed, match="worker 1: exit 3") as failure:
        local_workers.run_workers(_fails, count=2, args=(3,), timeout=60)
    assert time.monotonic() - started < 30  # worker 0 was killed, not waited for
    assert [r.returncode for r in failure.value.results] == [None, 3]
    assert "worker 1 gives up" in failure.value.results[1].stderr and "gives up" in str(failure.value)
