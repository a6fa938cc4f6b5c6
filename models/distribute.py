"""The `tf.distribute` strategy a training runs under, chosen by a setting, and who is the chief.

  "default"                the current strategy (`tf.distribute.get_strategy()`): outside any scope,
                           one device, no distribution; what every training did before this module.
  "mirrored"               `tf.distribute.MirroredStrategy()`: synchronous data parallelism over the
                           GPUs of one machine (all-reduce of the gradients after each step); on a
                           machine without GPU, one replica on the CPU.
  "multi_worker_mirrored"  `tf.distribute.MultiWorkerMirroredStrategy()`: the same over several
                           machines (each with its GPUs, or its CPU), all-reduce by collective ops
                           over gRPC. Every worker runs the same program; TF_CONFIG says who is who.

TF_CONFIG is a JSON environment variable set on every replica of a distributed job:
    {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"]},
     "task": {"type": "worker", "index": 1}}
- Vertex AI Training sets it on each replica of a custom job (TensorFlow containers, prebuilt or
  custom): worker pool 0 is "chief", pool 1 "worker", pool 2 "ps", pool 3 "evaluator", with extra
  keys ("environment": "cloud", "job") that TensorFlow ignores. The legacy AI Platform could name
  the chief "master".
- Kubeflow's TFJob (training-operator) sets it in every pod from the job's replica specs: Chief (or
  Master), Worker, PS, Evaluator become the task types "chief", "worker", "ps", "evaluator", the
  addresses are the pods' service names. Without a Chief replica, worker 0 is the chief (TensorFlow's
  convention, `is_chief` below).
- tests/harness/local_workers.py sets it for worker processes on one machine (tests).

Caveat, TensorFlow 2.16 (verified): a MultiWorkerMirroredStrategy over a multi-worker TF_CONFIG must
be created before the process runs its first TensorFlow op (any eager op, e.g. `tf.constant`,
initialises the runtime; importing tensorflow, keras, keras_hub or tf_keras and listing devices do
not). Later, TensorFlow raises "RuntimeError: Collective ops must be configured at program startup";
`strategy_for` turns that into a ValueError saying what to change. Hence callers create the strategy
first thing (components/teacher/training.py does, before reading any data), and `strategy_for`
returns the same instance on later calls in the process (a second one would try to start a second
gRPC server on the task's port). MirroredStrategy has no such constraint; it is kept per process too,
so that a model built under it and the training steps that run it use one strategy.

Every worker computes the same thing from the same data (the input of each step is split among the
replicas, models/teacher_training.py); only the chief writes artifacts.
"""

import json
import os
from typing import Any, Dict, Optional

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
TF_CONFIG = "TF_CONFIG"
_WORKER_TYPES = ("chief", "worker")  # the task types that train (ps and evaluator do not)

_strategies: Dict[str, Any] = {}  # name -> the process's strategy ("mirrored", "multi_worker_mirrored")


def strategy_for(name: str):
    """name: one of STRATEGIES -> a tf.distribute.Strategy (the same object for the same name in one
    process, except "default", which is whatever `tf.distribute.get_strategy()` says when called).

    Raises ValueError, naming the setting, for an unknown name, and for "multi_worker_mirrored" without
    a valid TF_CONFIG or when created after TensorFlow already ran an op (module docstring).
    """
    if name not in STRATEGIES:
        raise ValueError(f"distribute must be one of {', '.join(STRATEGIES)}, got {name!r}")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _strategies:
        if name == "mirrored":
            _strategies[name] = tf.distribute.MirroredStrategy()
        else:
            _validate_multi_worker(tf_config())
            try:
                _strategies[name] = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as error:  # "Collective ops must be configured at program startup"
                raise ValueError(
                    "distribute 'multi_worker_mirrored': the strategy must be created before TensorFlow "
                    "runs its first op in this process; call models.distribute.strategy_for("
                    f"'multi_worker_mirrored') first thing ({error})") from None
    return _strategies[name]


def tf_config() -> Optional[Dict[str, Any]]:
    """TF_CONFIG as a dict; None when it is unset or empty. A ValueError when it is not JSON."""
    raw = os.environ.get(TF_CONFIG, "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}): {raw[:200]!r}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object, got {raw[:200]!r}")
    return config


def is_chief() -> bool:
    """Whether this process writes the artifacts: True without TF_CONFIG (or without a task in it),
    for task type "chief" (or "master"), and for worker 0 of a cluster without a chief. False for the
    other workers, and for "ps" and "evaluator" (TensorFlow's own is_chief counts an evaluator as
    the chief of its own cluster: it writes nothing of the training's here)."""
    config = tf_config()
    task = (config or {}).get("task") or {}
    if not task:
        return True
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind in ("chief", "master"):
        return True
    cluster = config.get("cluster") or {}
    return kind == "worker" and index == 0 and not ({"chief", "master"} & set(cluster))


def worker_count() -> int:
    """The number of processes that train together: "chief" + "worker" tasks of TF_CONFIG's cluster
    (1 without TF_CONFIG). Each of them has num_replicas_in_sync / worker_count replicas (devices)."""
    cluster = (tf_config() or {}).get("cluster") or {}
    return max(sum(len(cluster.get(kind) or ()) for kind in _WORKER_TYPES), 1)


def _validate_multi_worker(config: Optional[Dict[str, Any]]) -> None:
    """A ValueError unless TF_CONFIG names a cluster with workers and this process's task in it."""
    where = "distribute 'multi_worker_mirrored' needs TF_CONFIG"
    if config is None:
        raise ValueError(f"{where} (set by Vertex AI Training and Kubeflow's TFJob on every replica; "
                         "see models/distribute.py), and it is not set")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not any(cluster.get(kind) for kind in _WORKER_TYPES):
        raise ValueError(f"{where} with a cluster of \"chief\"/\"worker\" addresses, got {json.dumps(config)[:300]}")
    unknown = set(cluster) - {"chief", "worker", "ps", "evaluator"}
    if unknown:
        raise ValueError(f"{where} with task types chief, worker, ps or evaluator, got {sorted(unknown)}")
    if len(cluster.get("chief") or ()) > 1:
        raise ValueError(f"{where} with at most one chief, got {cluster['chief']}")
    if not isinstance(task, dict) or task.get("type") not in _WORKER_TYPES:
        raise ValueError(f"{where} with this process's task, {{\"type\": \"chief\" or \"worker\", \"index\": n}}, "
                         f"got {task!r}")
    index, addresses = task.get("index", 0), cluster.get(task["type"]) or ()
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(addresses):
        raise ValueError(f"{where} with a task index in the cluster's {task['type']} list "
                         f"({len(addresses)} addresses), got {index!r}")
