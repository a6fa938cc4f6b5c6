"""TeacherTrainer's own checks: a catalog the wide part cannot hold is one clear error, before any work."""

import pytest

from components.teacher import training
from models import ease


def test_a_catalog_above_the_wide_parts_limit_is_a_clear_error(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(ease, "MAX_ITEMS", toy.num_items - 1)
    with pytest.raises(ValueError, match=f"the catalog has {toy.num_items - 1} items: .* at most {toy.num_items - 1}"):
        training.fit_and_export(toy, str(tmp_path), {"encoder": "tiny"})
    assert not list(tmp_path.iterdir())  # nothing written
