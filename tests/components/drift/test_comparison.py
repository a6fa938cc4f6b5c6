"""The drift check's measures (TFDV's comparators) against numpy, and the decision taken on them."""

import numpy as np
import pandas as pd
import pytest

from models.foundation import env  # noqa: F401  (TF_USE_LEGACY_KERAS before TFDV loads TensorFlow)

from components.drift.comparison import DriftSettings, compare, decide  # noqa: E402

tfdv = pytest.importorskip("tensorflow_data_validation")


def _frame(rng, n, item_p, rating_mean):
    return pd.DataFrame({"item_id": rng.choice(["a", "b", "c", "d"], n, p=item_p),
                         "user_id": rng.choice([f"u{k}" for k in range(20)], n),
                         "rating": rng.normal(rating_mean, 1.0, n)})


def _measure(previous, newest, settings=DriftSettings()):
    stats_prev, stats_new = (tfdv.generate_statistics_from_dataframe(f) for f in (previous, newest))
    return compare(stats_new, stats_prev, tfdv.infer_schema(stats_prev), settings)


def _linf(a: pd.Series, b: pd.Series) -> float:
    """The L-infinity distance of two value-frequency distributions, by hand."""
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return float(max(abs(pa.get(v, 0.0) - pb.get(v, 0.0)) for v in set(pa.index) | set(pb.index)))


def test_l_infinity_is_the_largest_frequency_change_and_a_shift_is_over_its_threshold():
    rng = np.random.default_rng(0)
    previous, newest = _frame(rng, 1000, [.4, .3, .2, .1], 3.0), _frame(rng, 800, [.1, .2, .3, .4], 3.0)
    measured = _measure(previous, newest)
    item = next(d for d in measured["distances"] if d["feature"] == "item_id")
    assert item["measure"] == "L_INFTY" and item["value"] == pytest.approx(_linf(previous.item_id, newest.item_id), abs=1e-4)
    assert item["over"] and item["threshold"] == DriftSettings().categorical["item_id"]
    assert measured["skipped"] == ["item_genres"]  # not in this data
    assert measured["examples"] == {"newest": 800, "previous": 1000, "ratio": 0.8, "min_ratio": 0.25,
                                    "max_ratio": 4.0, "over": False}
    decision = decide(measured, DriftSettings())
    assert decision["decision"] == "scratch" and "item_id L-infinity" in decision["reason"]
    assert decide(measured, DriftSettings(on_drift="warm"))["decision"] == "warm"


def test_the_same_distribution_twice_is_no_drift_and_a_moved_rating_is():
    rng = np.random.default_rng(1)
    p = [.25, .25, .25, .25]
    calm = _measure(_frame(rng, 2000, p, 3.0), _frame(rng, 2000, p, 3.0))
    assert not any(d["over"] for d in calm["distances"])
    assert decide(calm, DriftSettings()) == {"decision": "warm", "reason": decide(calm, DriftSettings())["reason"]}
    assert decide(calm, DriftSettings())["reason"].startswith("no drift")
    moved = _measure(_frame(rng, 2000, p, 3.0), _frame(rng, 2000, p, 5.0))
    rating = next(d for d in moved["distances"] if d["feature"] == "rating")
    calm_rating = next(d for d in calm["distances"] if d["feature"] == "rating")
    assert rating["measure"] == "JENSEN_SHANNON_DIVERGENCE" and rating["over"]
    assert rating["value"] > 5 * calm_rating["value"]


def test_the_count_of_examples_and_the_first_span():
    rng = np.random.default_rng(2)
    p = [.25, .25, .25, .25]
    grown = _measure(_frame(rng, 200, p, 3.0), _frame(rng, 1000, p, 3.0))
    assert grown["examples"]["ratio"] == 5.0 and grown["examples"]["over"]
    assert "examples newest/previous 5 outside [0.25, 4]" in decide(grown, DriftSettings())["reason"]
    assert decide(None, DriftSettings())["decision"] == "scratch"


@pytest.mark.parametrize("bad, message", [
    ({"categorical": {"item_genres": 0}}, "categorical bound of item_genres must be in"),
    ({"numeric": [0.1]}, "numeric must map feature names to bounds"),
    ({"min_ratio": 1.5}, "min_ratio and max_ratio"),
    ({"on_drift": "panic"}, "on_drift must be one of warm, scratch"),
])
def test_settings_are_checked(bad, message):
    with pytest.raises(ValueError, match=message):
        DriftSettings(**bad)
