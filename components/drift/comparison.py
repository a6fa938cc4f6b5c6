"""Drift between the newest span and the one before, measured with TFDV's drift comparators, and
the decision a run takes on it.

  categorical features (user and item ids, genres)  L-infinity distance of their value frequencies
  numeric features (rating, ...)                     Jensen-Shannon divergence of their histograms
  the count of examples                              newest / previous, within [min_ratio, max_ratio]

Statistics come from StatisticsGen over ExampleGen's `span_pair` (splits newest, previous); the
comparators are set on a copy of the run's schema and tfdv.validate_statistics measures every
one (its drift_skew_info holds each distance with its threshold). Features missing from the data
(genres in data without them) are skipped and listed.

The decision (the `policy` of DriftSettings):
  no previous span                  scratch   (the first span: nothing to start from or compare)
  every measure within its bound    warm      (warm start from the last blessed run, issue 25)
  a measure beyond its bound        on_drift  (scratch by default: the old model's knowledge is stale)
"""

import dataclasses
from typing import Dict, List, Mapping, Optional

WARM, SCRATCH = "warm", "scratch"
DECISIONS = (WARM, SCRATCH)


@dataclasses.dataclass(frozen=True)
class DriftSettings:
    # Bounds of the L-infinity distance between the newest and the previous span's value
    # frequencies, per categorical feature. Genres carry a change of taste: on the synthetic spans
    # (recdistill synth --spans), consecutive weeks measure 0.004-0.025 and an abrupt shift
    # 0.10-0.14; MovieLens-100K in 4-week spans 0.004-0.019. Ids churn every span (new items,
    # fading ones: MovieLens's users 0.03-0.07, items under 0.005), so their bounds are alarms for
    # what churn alone does not reach.
    categorical: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"item_genres": 0.05, "item_id": 0.1, "user_id": 0.1})
    # Bounds of the Jensen-Shannon divergence of their histograms, per numeric feature
    numeric: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"rating": 0.1})
    # examples in the newest span / in the previous one: drift outside [min_ratio, max_ratio]
    # (MovieLens-100K in 4-week spans: 0.41-1.33, the last span cut short by the data's end)
    min_ratio: float = 0.25
    max_ratio: float = 4.0
    # what a run does when a measure is beyond its bound
    on_drift: str = SCRATCH

    def __post_init__(self):
        for kind in ("categorical", "numeric"):
            bounds = getattr(self, kind)
            if not isinstance(bounds, Mapping):
                raise ValueError(f"drift {kind} must map feature names to bounds, got {bounds!r}")
            for feature, bound in bounds.items():
                if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0 < bound <= 1:
                    raise ValueError(f"drift {kind} bound of {feature} must be in (0, 1], got {bound!r}")
        if not 0 <= self.min_ratio < 1 < self.max_ratio:
            raise ValueError(f"drift min_ratio and max_ratio must satisfy 0 <= min_ratio < 1 < max_ratio, "
                             f"got {self.min_ratio!r} and {self.max_ratio!r}")
        if self.on_drift not in DECISIONS:
            raise ValueError(f"drift on_drift must be one of {', '.join(DECISIONS)}, got {self.on_drift!r}")


def compare(newest, previous, schema, settings: DriftSettings) -> Dict:
    """newest, previous: DatasetFeatureStatisticsList of one dataset each; schema: the run's Schema.
    Returns {"distances": [{"feature", "measure", "value", "threshold", "over"}], "skipped": [...],
    "examples": {"newest", "previous", "ratio", "min_ratio", "max_ratio", "over"}}."""
    import tensorflow_data_validation as tfdv

    schema = _with_comparators(schema, newest, settings)
    anomalies = tfdv.validate_statistics(newest, schema, previous_statistics=previous)
    distances = []
    for info in anomalies.drift_skew_info:
        feature = ".".join(info.path.step)
        for measurement in info.drift_measurements:
            measure = "L_INFTY" if measurement.type == measurement.L_INFTY else "JENSEN_SHANNON_DIVERGENCE"
            distances.append({"feature": feature, "measure": measure, "value": round(float(measurement.value), 6),
                              "threshold": float(measurement.threshold),
                              "over": bool(measurement.value > measurement.threshold)})
    present = {name for name in _feature_names(newest)} & {name for name in _feature_names(previous)}
    skipped = sorted(name for name in (*settings.categorical, *settings.numeric) if name not in present)
    counts = {"newest": _count(newest), "previous": _count(previous)}
    ratio = counts["newest"] / counts["previous"] if counts["previous"] else float("inf")
    examples = {**counts, "ratio": round(ratio, 6), "min_ratio": settings.min_ratio, "max_ratio": settings.max_ratio,
                "over": not settings.min_ratio <= ratio <= settings.max_ratio}
    return {"distances": sorted(distances, key=lambda d: d["feature"]), "skipped": skipped, "examples": examples}


def decide(measured: Optional[Dict], settings: DriftSettings) -> Dict:
    """{"decision": warm | scratch, "reason": one line} for `compare`'s result (None: no previous span)."""
    if measured is None:
        return {"decision": SCRATCH, "reason": "the first span: no previous span to compare with or start from"}
    over = [f"{d['feature']} {_SHORT[d['measure']]} {d['value']:.4f} > {d['threshold']:g}"
            for d in measured["distances"] if d["over"]]
    examples = measured["examples"]
    if examples["over"]:
        over.append(f"examples newest/previous {examples['ratio']:.3g} outside "
                    f"[{examples['min_ratio']:g}, {examples['max_ratio']:g}]")
    if over:
        return {"decision": settings.on_drift, "reason": "drift: " + "; ".join(over)}
    largest = max(measured["distances"], key=lambda d: d["value"] / d["threshold"], default=None)
    detail = f" (closest: {largest['feature']} {_SHORT[largest['measure']]} {largest['value']:.4f} <= " \
             f"{largest['threshold']:g})" if largest else ""
    return {"decision": WARM, "reason": "no drift: every measure within its bound" + detail}


_SHORT = {"L_INFTY": "L-infinity", "JENSEN_SHANNON_DIVERGENCE": "Jensen-Shannon"}


def _with_comparators(schema, statistics, settings: DriftSettings):
    from tensorflow_metadata.proto.v0 import schema_pb2

    copy = schema_pb2.Schema()
    copy.CopyFrom(schema)
    names = set(_feature_names(statistics))
    for feature in copy.feature:
        if feature.name in settings.categorical and feature.name in names:
            feature.drift_comparator.infinity_norm.threshold = settings.categorical[feature.name]
        elif feature.name in settings.numeric and feature.name in names:
            feature.drift_comparator.jensen_shannon_divergence.threshold = settings.numeric[feature.name]
    return copy


def _feature_names(statistics) -> List[str]:
    return [".".join(f.path.step) or f.name for f in statistics.datasets[0].features] if statistics.datasets else []


def _count(statistics) -> int:
    return int(statistics.datasets[0].num_examples) if statistics.datasets else 0
