"""Index spaces, histories and texts of the models' dataset."""

import numpy as np

from models import interaction_data as data
from models.interaction_data import Split


def test_histories_by_hand():
    # user 1: items 5 (t=10), 6 (t=30), 7 (t=20); user 2: item 9 (t=5). Rows in file order.
    train = Split(user=np.array([1, 1, 1, 2]), item=np.array([5, 6, 7, 9]), timestamp=np.array([10, 30, 20, 5]))
    per_row, latest = data.histories(train, num_users=3, length=2)
    # Time order of user 1: 5, 7, 6. Most recent first, strictly earlier, 0 pads.
    assert per_row.tolist() == [[0, 0], [7, 5], [5, 0], [0, 0]]
    assert latest.tolist() == [[0, 0], [6, 7], [9, 0]]


def test_texts_from_raw_features():
    item = {"item_id": ["i1"], "item_title": ["Toy Story"], "item_year": [1995], "item_genres": ["Animation", "Comedy"]}
    assert data.item_text(item, ["title"]) == "Toy Story (1995). genres: Animation, Comedy"
    user = {"user_id": ["u1"], "user_age": [24], "user_zip_code": ["85711"], "user_gender": []}
    assert data.user_text(user) == "age 24, zip code 85711"


def test_dataset_round_trip(toy, tmp_path):
    path = str(tmp_path / "d.npz")
    data.save_dataset(toy, path)
    back = data.load_dataset(path)
    assert back.user_ids == toy.user_ids and back.item_texts == toy.item_texts
    for name, split in toy.splits.items():
        assert np.array_equal(back.splits[name].item, split.item)
        assert np.array_equal(back.splits[name].timestamp, split.timestamp)


def test_masked_histories_hide_the_rows_own_item():
    latest = np.array([[0, 0, 0], [5, 3, 2]])
    out = data.masked_histories(np.array([1, 1]), np.array([3, 9]), latest)
    assert out.tolist() == [[5, 0, 2], [5, 3, 2]]
