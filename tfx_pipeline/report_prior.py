"""The report's line on the deployed models' recency prior (models/recency_prior.py): its weights,
where each was picked, and what the prior counts to."""

from typing import Any, Dict


def line(prior: Dict[str, Any]) -> str:
    """"recency prior of the deployed models: weight x log(1 + an item's interactions in the last 28 days
    to 2026-12-04, the push; the test figures count to 2026-11-29, the test's start): known users ...;
    cold users ..." (report.json's recency_prior)."""
    counted = prior.get("counted_to") or {}
    to = f" to {counted['exported'][:10]}, the push; the test figures count to {counted['test_figures'][:10]}, " \
         f"the test's start" if counted.get("exported") and counted.get("test_figures") else ""
    return (f"recency prior of the deployed models: weight x log(1 + an item's interactions in the last "
            f"{prior.get('days')} days{to}): "
            + "; ".join(pick(prior, who, key) for who, key in (("known users", "weight"), ("cold users", "cold_weight"))
                        if key in prior))


def pick(prior: Dict[str, Any], who: str, key: str) -> str:
    """"known users 0.3, picked on the eval split (ndcg@10 0.2500 against 0.2000 without)": one weight of
    the recency prior, and where it was picked (the eval split, or the served model's backtest of the
    newest span: models/prior_backtest.py)."""
    group = "known" if key == "weight" else "cold"
    if (prior.get("picked_on") or {}).get(key) == "backtest":
        picked = prior["backtest"][group]
        where, curve = f"on the served model's backtest of the newest span ({picked['users']:,} users)", picked["ndcg@10"]
        best = picked.get("best", prior[key])  # not the weight: it did not beat the largest beyond the noise
    else:
        where, curve = "on the eval split", prior.get("val_ndcg@10" if key == "weight" else "cold_val_ndcg@10") or {}
        best = prior[key]
    fallen = "" if best == prior[key] else f"; the best, {best} ({curve[str(best)]:.4f}), not better beyond the noise"
    against = f" (ndcg@10 {curve.get(str(prior[key]), float('nan')):.4f} against " \
              f"{curve.get('0.0', float('nan')):.4f} without{fallen})" if curve else ""
    return f"{who} {prior[key]}, picked {where}{against}"
