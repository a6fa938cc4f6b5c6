"""Interactions, users and items as numpy arrays in one index space, for the models.

Index spaces (shared by teacher, students and evaluation; 0 is out-of-vocabulary and padding):
  users  1..U in the order of Transform's `user_id` vocabulary (train users, most active first)
  items  1..V in the order of Transform's `item_id` vocabulary, then V+1.. for the catalog items
         that never occur in train (sorted by id), so that every catalog item can be ranked.
"""

import dataclasses
import os
from typing import Dict, List, Sequence

import numpy as np

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from models.foundation import storage


@dataclasses.dataclass
class Split:
    """One split's interactions: [N] arrays (user and item indices, Unix seconds)."""

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray


@dataclasses.dataclass
class Dataset:
    user_ids: List[str]  # index -> raw id ("" at 0)
    item_ids: List[str]
    user_texts: List[str]  # index -> profile text ("" at 0 and for users without features)
    item_texts: List[str]
    splits: Dict[str, Split]
    # Not saved: one raw tf.Example per user (its first row) and per catalog item, by index, for
    # running Transform's graph over the users' and items' features (models/feature_tables.py).
    user_records: Dict[int, bytes] = dataclasses.field(default_factory=dict)
    item_records: Dict[int, bytes] = dataclasses.field(default_factory=dict)
    # The cold items' indices, ascending (ExampleGen's `cold_items`, held out of train and eval);
    # empty without a cold-item evaluation.
    cold_items: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros([0], np.int64))

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


def read_records(split_dir: str) -> List[bytes]:
    """The serialized tf.Examples of a Split-<name> directory (gzipped TFRecord files)."""
    import tensorflow as tf

    # storage.glob: the split may be in a bucket. Its "*" also matches dot-files, glob.glob's does not.
    files = [f for f in storage.glob(os.path.join(split_dir, "*")) if not os.path.basename(f).startswith(".")]
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")] if files else []


def record_batches(split_dir: str, size: int = 65536):
    """The split's serialized tf.Examples as string tensors of up to `size` records, in file order."""
    import tensorflow as tf

    files = [f for f in storage.glob(os.path.join(split_dir, "*")) if not os.path.basename(f).startswith(".")]
    return iter(tf.data.TFRecordDataset(files, compression_type="GZIP").batch(size)) if files else iter(())


def parse(record: bytes) -> Dict[str, list]:
    """One serialized tf.Example as {feature: [values]} (bytes decoded as UTF-8)."""
    import tensorflow as tf

    features = tf.train.Example.FromString(record).features.feature
    return {name: _values(f) for name, f in features.items()}


def build_dataset(
    split_dirs: Dict[str, str],
    catalog_dir: str,
    user_vocabulary: Sequence[str],
    item_vocabulary: Sequence[str],
    item_text_columns: Sequence[str] = ("title",),
    cold_item_ids: Sequence[str] = (),
) -> Dataset:
    """Reads ExampleGen's splits and catalog into index arrays and texts (see the docstring);
    cold_item_ids: the items ExampleGen held out (its summary's `cold_items`)."""
    import tensorflow as tf

    catalog_records = read_records(catalog_dir)
    catalog = [parse(r) for r in catalog_records]
    user_ids = [""] + list(user_vocabulary)
    known = set(item_vocabulary)
    cold = sorted(row["item_id"][0] for row in catalog if row["item_id"][0] not in known)
    item_ids = [""] + list(item_vocabulary) + cold
    user_index = {u: i for i, u in enumerate(user_ids) if i}
    item_index = {v: i for i, v in enumerate(item_ids) if i}

    item_texts = [""] * len(item_ids)
    item_records = {}
    for row, record in zip(catalog, catalog_records):
        item_texts[item_index[row["item_id"][0]]] = item_text(row, item_text_columns)
        item_records[item_index[row["item_id"][0]]] = record
    user_records = {}
    user_texts = [""] * len(user_ids)
    spec = {"user_id": tf.io.FixedLenFeature([], tf.string), "item_id": tf.io.FixedLenFeature([], tf.string),
            "timestamp": tf.io.FixedLenFeature([], tf.int64)}
    splits = {}
    for name, split_dir in split_dirs.items():
        users, items, times = [], [], []
        # A batch of records at a time: memory holds the index arrays (24 bytes a row), not the split.
        for batch in record_batches(split_dir):
            ids = tf.io.parse_example(batch, spec)
            batch_users = np.array([user_index.get(u.decode(), 0) for u in ids["user_id"].numpy().tolist()], np.int64)
            fresh = np.flatnonzero(batch_users)
            for row in fresh[np.unique(batch_users[fresh], return_index=True)[1]]:
                user = int(batch_users[row])
                if user not in user_records:  # profile features are the same on every row
                    user_records[user] = batch[row].numpy()
                    user_texts[user] = user_text(parse(user_records[user]))
            users.append(batch_users)
            items.append(np.array([item_index.get(i.decode(), 0) for i in ids["item_id"].numpy().tolist()], np.int64))
            times.append(ids["timestamp"].numpy().astype(np.int64))
        splits[name] = Split(*(np.concatenate(parts) if parts else np.zeros([0], np.int64)
                               for parts in (users, items, times)))
    cold_items = np.array(sorted(item_index[i] for i in cold_item_ids if i in item_index), np.int64)
    return Dataset(user_ids, item_ids, user_texts, item_texts, splits, user_records, item_records, cold_items)


def item_text(row: Dict[str, list], text_columns: Sequence[str]) -> str:
    """'Toy Story (1995). genres: Animation, Comedy' from an item's raw features."""
    title = " ".join(str(v) for c in text_columns for v in row.get(f"item_{c}", []))
    year = row.get("item_year", [])
    parts = [f"{title} ({year[0]})" if year else title]
    for name, values in sorted(row.items()):
        column = name[len("item_"):]
        if name.startswith("item_") and column not in (*text_columns, "id", "year") and values:
            parts.append(f"{column.replace('_', ' ')}: {', '.join(str(v) for v in values)}")
    return ". ".join(p for p in parts if p)


def user_text(row: Dict[str, list]) -> str:
    """'age 24, gender M, occupation technician' from a user's raw features."""
    return ", ".join(
        f"{name[len('user_'):].replace('_', ' ')} {', '.join(str(v) for v in values)}"
        for name, values in sorted(row.items())
        if name.startswith("user_") and name != "user_id" and values
    )


def histories(train: Split, num_users: int, length: int) -> (np.ndarray, np.ndarray):
    """Most recent items first, 0-padded.

    Returns:
      per_row: [N, length] for each train row, the user's train items strictly before it in time
        (ties broken by row order), so a row never sees itself or the future.
      latest: [num_users, length] each user's last `length` train items (for ranking at test).
    """
    order = np.lexsort((np.arange(len(train.user)), train.timestamp, train.user))
    per_row = np.zeros([len(train.user), length], np.int64)
    latest = np.zeros([num_users, length], np.int64)
    start = 0
    while start < len(order):
        user = train.user[order[start]]
        end = start
        while end < len(order) and train.user[order[end]] == user:
            end += 1
        items = train.item[order[start:end]]
        for k, row in enumerate(order[start:end]):
            recent = items[max(0, k - length):k][::-1]
            per_row[row, :len(recent)] = recent
        recent = items[max(0, len(items) - length):][::-1]
        latest[user, :len(recent)] = recent
        start = end
    return per_row, latest


def latest_items(split: Split, num_users: int, length: int) -> np.ndarray:
    """[num_users, length] each user's last `length` items of the split, most recent first, 0-padded
    (ties in time broken by row order): `histories`' second array, in O(rows) memory."""
    order = np.lexsort((np.arange(len(split.user)), split.timestamp, split.user))
    users, items = np.asarray(split.user)[order], np.asarray(split.item)[order]
    latest = np.zeros([num_users, length], np.int64)
    back = np.searchsorted(users, users, side="right") - 1 - np.arange(len(users))  # 0: the user's latest
    keep = back < length
    latest[users[keep], back[keep]] = items[keep]
    return latest


def items_with_interactions(items: np.ndarray, num_items: int) -> np.ndarray:
    """[num_items] bool: the items that occur in `items` (index 0, padding, never does)."""
    known = np.bincount(np.asarray(items, np.int64), minlength=num_items) > 0
    known[0] = False
    return known


def masked_histories(users: np.ndarray, items: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """[N, H]: each row's user's latest items (`latest`: [num_users, H]) with the row's own item
    replaced by 0, so that a training row never sees its label in its history."""
    rows = latest[users]
    return np.where(rows == np.asarray(items)[:, None], 0, rows)


def _values(feature) -> list:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return []
    values = list(getattr(feature, kind).value)
    return [v.decode("utf-8") for v in values] if kind == "bytes_list" else values


def save_dataset(dataset: Dataset, path: str) -> None:
    """One .npz file: ids, texts and every split's arrays (read back by load_dataset).

    No pickle: strings are stored as their UTF-8 bytes end to end (`<name>.utf8`, uint8) and where
    each one ends (`<name>.ends`, int64), exact for any string; the file loads with
    allow_pickle=False, so whoever can write an artifact cannot make a reader run code."""
    arrays = {"cold_items": np.asarray(dataset.cold_items, np.int64)}
    for name in _STRING_LISTS:
        arrays.update(_strings_to_arrays(name, getattr(dataset, name)))
    for name, split in dataset.splits.items():
        for field in ("user", "item", "timestamp"):
            arrays[f"split.{name}.{field}"] = getattr(split, field)
    storage.save_npz(path, **arrays)


def load_dataset(path: str) -> Dataset:
    """save_dataset's file; raises storage.PickledArrayError (a ValueError) for one with pickled strings."""
    try:
        z = storage.load_npz(path)
    except storage.PickledArrayError as error:
        raise storage.PickledArrayError(
            f"{error}: a dataset.npz of an older recdistill (strings pickled); rerun the pipeline") from None
    names = sorted({k.split(".")[1] for k in z if k.startswith("split.")})
    splits = {n: Split(z[f"split.{n}.user"], z[f"split.{n}.item"], z[f"split.{n}.timestamp"]) for n in names}
    cold = z["cold_items"] if "cold_items" in z else np.zeros([0], np.int64)  # files of before had none
    return Dataset(*(_strings_from_arrays(z, name) for name in _STRING_LISTS), splits=splits, cold_items=cold)


_STRING_LISTS = ("user_ids", "item_ids", "user_texts", "item_texts")


def _strings_to_arrays(name: str, strings: Sequence[str]) -> Dict[str, np.ndarray]:
    """{name.utf8: [total bytes] uint8, name.ends: [len(strings)] int64}: string i is
    utf8[ends[i - 1]:ends[i]] (from 0 for i = 0)."""
    encoded = [s.encode("utf-8") for s in strings]
    return {f"{name}.utf8": np.frombuffer(b"".join(encoded), np.uint8),
            f"{name}.ends": np.cumsum([len(e) for e in encoded], dtype=np.int64)}


def _strings_from_arrays(arrays: Dict[str, np.ndarray], name: str) -> List[str]:
    data, ends = arrays[f"{name}.utf8"].tobytes(), arrays[f"{name}.ends"].tolist()
    return [data[start:end].decode("utf-8") for start, end in zip([0] + ends[:-1], ends)]
