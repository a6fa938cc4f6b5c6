"""The student trained by two worker processes under MultiWorkerMirroredStrategy (TF_CONFIG on
localhost, as Vertex AI Training and Kubeflow's TFJob set it) learns as one worker does."""

import pytest

from tests.harness import local_workers

EPOCHS = 4


def train_student(strategy_name: str, out_dir: str) -> dict:
    """A worker: the tiny student (KD) on toy data streamed from scored TFRecord shards; returns its
    curves and test ndcg@10. Runs in a fresh process: the strategy comes first (models/distribute.py)."""
    from models import distribute

    distribute.strategy_for(strategy_name)  # before any TensorFlow op
    import dataclasses
    import os

    from components.student import distill
    from models import scored_rows
    from models.interaction_data import histories
    from models.retrieval_metrics import split_evaluator
    conftest, stream, tiny = (_test_module(p) for p in ("conftest.py", "models/test_scored_rows.py",
                                                            "models/test_student.py"))
    write_rows, TINY, rows_for, tables_for = stream.write_rows, tiny.TINY, tiny.rows_for, tiny.tables_for

    toy = conftest.toy_dataset()
    config = dataclasses.replace(TINY, distribute=strategy_name, epochs=EPOCHS, patience=EPOCHS, refit=False)
    rows = rows_for(toy)
    worker_dir = os.path.join(out_dir, f"worker-{os.getpid()}")
    patterns = write_rows(os.path.join(worker_dir, "scored"), rows)
    _, latest = histories(toy.splits["train"], toy.num_users, config.history)
    data = (scored_rows.open_rows(patterns), latest, None, None)
    curves = distill.train_student(config, toy, tables_for(toy), data, split_evaluator(toy, ["train"], "eval"),
                                   os.path.join(worker_dir, "model"))
    result = {"loss": curves["loss"], "val": curves["val_ndcg@10"], "chief": distribute.is_chief(),
              "exported": os.path.exists(os.path.join(worker_dir, "model", "saved_model.pb"))}
    if result["exported"]:
        import tensorflow as tf

        model = tf.saved_model.load(os.path.join(worker_dir, "model"))
        _, known = histories(distill.teacher_training.latest_split(toy), toy.num_users, config.history)
        test = split_evaluator(toy, ["train", "eval"], "test")
        result["test"] = test.evaluate(lambda u: model.score(tf.constant(u), tf.constant(known[u])).numpy(),
                                       ks=(10,))["ndcg@10"]
    return result


def _test_module(relative: str):
    """A module of tests/ by its path: in a worker process the name "tests" may be another package."""
    import importlib.util
    import os
    import sys

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), relative)
    for module in list(sys.modules.values()):  # in pytest's process: the module it loaded (conftest.py
        if os.path.abspath(getattr(module, "__file__", None) or "") == path:  # sets the storage emulator's
            return module  # environment on import: a second import would point gs:// elsewhere)
    name = "_worker_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_two_workers_learn_as_one_worker(tmp_path):
    two = local_workers.run_workers(train_student, count=2, args=("multi_worker_mirrored", str(tmp_path / "two")),
                                    timeout=240)
    single = train_student("default", str(tmp_path / "one"))  # one worker: this process, no strategy
    chief, other = two[0].value, two[1].value
    print("one worker", single, "two workers", chief, other, "seconds", [r.seconds for r in two])
    # one program, in step: the same (all-reduced) losses and validation curves on both workers, and
    # the loss of the global batch, as one worker's (each replica's share scaled by the replicas)
    assert chief["loss"] == other["loss"] and chief["val"] == other["val"]
    assert chief["loss"][0] == pytest.approx(single["loss"][0], rel=0.1)
    assert len(chief["loss"]) == EPOCHS
    # the chief alone writes the model
    assert chief["chief"] and chief["exported"] and not other["chief"] and not other["exported"]
    # it learns: the loss falls, and test ndcg@10 is within noise of one worker's on the same data
    assert chief["loss"][-1] < chief["loss"][0]
    assert single["test"] > 0.3 and abs(chief["test"] - single["test"]) < 0.1, (single, chief)
