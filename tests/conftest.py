"""Shared fixtures: tiny input directories written by hand, so expected values are known."""

import os

from tfx_pipeline import env  # noqa: F401  (TF_USE_LEGACY_KERAS before any test imports TF)

import pytest

USERS = "user_id,age,gender\nu1,24,M\nu2,53,F\nu3,,F\n"
ITEMS = (
    "item_id,title,year,genres\n"
    'i1,"Toy Story, The",1995,Animation|Comedy\n'
    "i2,GoldenEye,1995,Action\n"
    'i3,"Say ""Hi""",,Drama\n'
    "i4,Heat,1995,Action|Crime\n"
)


def _write_files(directory, interactions: str, users: str = USERS, items: str = ITEMS, mode: str = "w"):
    """Writes the three input files (text, or bytes with mode="wb") and returns the directory."""
    os.makedirs(directory, exist_ok=True)
    for name, content in (("interactions.csv", interactions), ("users.csv", users), ("items.csv", items)):
        with open(os.path.join(directory, name), mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(content)
    return str(directory)


@pytest.fixture
def write_input():
    """write_input(directory, interactions, users=USERS, items=ITEMS, mode="w") -> directory."""
    return _write_files


@pytest.fixture
def tiny_dir(tmp_path):
    """Three users, four items, each user with several interactions; one of each bad kind."""
    rows = ["user_id,item_id,timestamp,rating"]
    stamp = 1000
    for user, items in (("u1", "i1 i2 i3 i4"), ("u2", "i2 i4 i1"), ("u3", "i3 i1 i2 i4")):
        for item in items.split():
            stamp += 10
            rows.append(f"{user},{item},{stamp},4")
    rows += [
        "u9,i1,2000,3",  # unknown user
        "u1,i9,2001,3",  # unknown item
        "u1,i1,notatime,3",  # bad timestamp
        "u2,i2,1020",  # wrong field count
        rows[1],  # exact duplicate of the first row
    ]
    return _write_files(tmp_path / "data", "\n".join(rows) + "\n")
