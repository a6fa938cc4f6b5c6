"""Benchmark (not a test): the student's training step with the full-catalog softmax against in-batch
negatives, by catalog size, for StudentConfig.full_softmax_items (where "auto" switches).

    .venv/bin/python -m tfx_pipeline.bench_hard_loss [--items 1683,5000,20000,50000,100000] [--steps 30]

The student of the pipeline (dim 32, batch 512, history 10, KD with 1 + 2 x 12 scored candidates,
an item feature table of 8 values per item) on random indices; milliseconds per step after two
warm-up steps, median of `steps`.
"""

import argparse
import time

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)


def step_ms(num_items: int, hard: str, steps: int, num_users: int = 10_000, candidates: int = 25) -> float:
    import dataclasses

    import tensorflow as tf

    from models import student

    config = dataclasses.replace(student.StudentConfig(), hard_negatives=hard)
    rng = np.random.default_rng(0)
    tables = {"user": {"user_age_bucket": rng.integers(0, 10, num_users)},
              "item": {"item_genres_indices": rng.integers(0, 20, (num_items, 8))},
              "size": {"user_age_bucket": 10, "item_genres_indices": 20}}
    tf.keras.utils.set_random_seed(0)
    model = student.StudentModel(num_users, num_items, tables, config, np.ones(num_items))
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    b = config.batch_size
    batch = {"user_index": rng.integers(1, num_users, b), "item_index": rng.integers(1, num_items, b),
             "history": rng.integers(0, num_items, (b, config.history)),
             "candidates": rng.integers(1, num_items, (b, candidates)),
             "teacher_scores": rng.normal(size=(b, candidates)).astype(np.float32)}
    batch = {k: tf.constant(v) for k, v in batch.items()}
    step = tf.function(model.train_step)
    times = []
    for n in range(steps + 2):
        started = time.perf_counter()
        float(step(batch)["loss"])
        if n >= 2:
            times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="1683,5000,20000,50000,100000")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    print("| catalog items | full softmax ms/step | in-batch ms/step | full / in-batch |")
    print("|---:|---:|---:|---:|")
    for items in (int(n) for n in args.items.split(",")):
        full, in_batch = step_ms(items, "full", args.steps), step_ms(items, "in_batch", args.steps)
        print(f"| {items:,} | {full:.1f} | {in_batch:.1f} | {full / in_batch:.1f} |", flush=True)


if __name__ == "__main__":
    main()
