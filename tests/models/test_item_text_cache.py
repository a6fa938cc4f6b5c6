"""The items' text vectors between runs (models/item_text_cache.py): an unchanged item's vector comes
from the earlier run, a new or retitled item's is encoded, another encoder's vectors are never used."""

import dataclasses

import numpy as np

from models import artifacts, interaction_data, item_text_cache
from tests.conftest import toy_dataset


class CountingEncoder:
    """Encodes a text as [its length, its first letter's code, a per-source offset]; counts the texts."""

    def __init__(self, source, offset=0.0):
        self.source, self.offset, self.encoded = source, offset, []

    def encode(self, texts):
        self.encoded += list(texts)
        return np.array([[len(t), ord(t[0]) if t else 0, self.offset] for t in texts], np.float32)


def _blessed(tmp_path, dataset, encoder):
    """A directory holding what a blessed model carries: the dataset and the teacher's text vectors."""
    directory = str(tmp_path / "blessed")
    interaction_data.save_dataset(dataset, f"{directory}/{artifacts.DATASET_FILE}")
    vectors, reused = item_text_cache.encode(encoder, dataset, None)
    assert reused == 0
    item_text_cache.save(directory, vectors, encoder.source)
    return directory


def test_unchanged_items_reuse_their_vectors_and_new_or_retitled_ones_are_encoded(tmp_path):
    earlier = toy_dataset()
    blessed = _blessed(tmp_path, earlier, CountingEncoder("minilm 32"))
    # Now: item i5 retitled, item i31 new, the index moved (the new item first).
    texts = list(earlier.item_texts)
    texts[5] = "movie 5, the director's cut"
    now = dataclasses.replace(earlier, item_ids=["", "i31"] + earlier.item_ids[1:],
                              item_texts=["", "movie 31 genres: drama"] + texts[1:])
    encoder = CountingEncoder("minilm 32")
    vectors, reused = item_text_cache.encode(encoder, now, blessed)
    assert sorted(encoder.encoded) == sorted(["movie 31 genres: drama", "movie 5, the director's cut"])
    assert reused == len(now.item_ids) - 2
    expected = CountingEncoder("minilm 32").encode(now.item_texts)  # what encoding them all gives
    np.testing.assert_array_equal(vectors, expected)


def test_another_encoder_or_no_earlier_vectors_encodes_every_text(tmp_path):
    earlier = toy_dataset()
    blessed = _blessed(tmp_path, earlier, CountingEncoder("minilm 32", offset=1.0))
    other = CountingEncoder("minilm 64")
    vectors, reused = item_text_cache.encode(other, earlier, blessed)
    assert reused == 0 and len(other.encoded) == len(earlier.item_texts)
    np.testing.assert_array_equal(vectors[:, 2], 0.0)  # none of the earlier encoder's vectors
    again = CountingEncoder("minilm 32")
    assert item_text_cache.encode(again, earlier, str(tmp_path / "nothing-there"))[1] == 0
    assert len(again.encoded) == len(earlier.item_texts)
