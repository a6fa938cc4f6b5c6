"""A tiny exported model version (an untrained student with 5 users and 8 items) for serving tests."""

from tfx_pipeline import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)

import pytest  # noqa: E402

H, K = 4, 5
USER_IDS = [""] + [f"u{i}" for i in range(1, 6)]
ITEM_IDS = [""] + [f"i{i}" for i in range(1, 9)]


def export_version(path, seed):
    """A tiny untrained student exported as a version directory; returns the loaded SavedModel."""
    import tensorflow as tf

    from models import deployable, serving_export, student

    tf.keras.utils.set_random_seed(seed)
    model = student.StudentModel(len(USER_IDS), len(ITEM_IDS), {"user": {}, "item": {}, "size": {}},
                                 student.StudentConfig(dim=4, history=H))
    model.score(tf.constant([1], tf.int64), tf.zeros([1, H], tf.int64))  # builds the towers
    serving_export.export(deployable.build(model), deployable.feature_bins(model), serving_export.hash_bins_of(model),
                          USER_IDS, ITEM_IDS, H, str(path), k=K)
    return tf.saved_model.load(str(path))


@pytest.fixture(scope="session")
def export():
    """export(path, seed) -> the loaded SavedModel of a tiny version written to path."""
    return export_version
