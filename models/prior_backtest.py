"""The recency prior's weights picked on what the served model met: the newest span.

models/recency_prior.py picks its two weights on the eval split: the newest span's interactions just
before the test, by users in mid-session, whose latest items say well what they do next. A model is
served to other users: those who come back days or weeks later, and new ones. On MovieLens-100K in
4-week spans (docs/spans.md) the eval split picked 0 for known users in every span, while the served
models' known users needed 1 to 10 on the next span (k = 4-6: their ndcg@10 0.117-0.156 at 0,
0.143-0.190 at the weight that span wanted), and trending beat the model there.

A warm run has the served model at hand: its students start from it. This backtest asks it the
question the next span will ask the candidate. The served student, restored as the warm start
restores it (before any training), ranks the newest span's interactions (the train and eval rows
from the span's first timestamp; the test stays the push gate's) from what came before them:
each user's history and seen items before the span, and the prior of the `days` before it. Items
new in the span are unknown to it, so they rank last (misses, as the push gate and the next span
score a served model by id). A user with rows before the span is known (the known weight); a user
new in the span is asked as a cold user (index 0, no history: the cold weight). Per group, the weight
with the best ndcg@10 is picked when it beats the grid's largest weight beyond the backtest's noise
(paired per user: the mean of best_u - largest_u above z standard errors, where z is the one-sided 95%
level for the grid's other weights tested against the largest, Bonferroni: 2.394 for six,
models/retrieval_metrics.py's noise_z); otherwise the largest. At the largest weight the prior decides the order (on MovieLens-100K the students' scores
have a standard deviation over the items of about 0.1, the prior at weight 10 about 10): what is
popular now, the trending baseline's ranking, with the model breaking its ties. So the model moves
away from what is popular now only where the newest span shows that it knows better. Why: a group
is a few dozen users on MovieLens-100K in 4-week spans (56-86 known, 69-107 cold), and the best
weight of one span's backtest was not the next span's: at span 4 the known users' backtest picked
0.1 (0.1467 against 0.1299 at 10); on the next span the model with it ranked them at 0.1197, at
weight 10 about 0.143 (the prior counted to the span's end), and trending at 0.1439 (docs/spans.md).
A group with fewer than MIN_USERS users keeps the eval split's pick.

Why Bonferroni: the best of six weights, tested alone at 1.645 standard errors, beat the largest on the
backtest and then lost to it on the next span at MovieLens-100K span 4 in two seeds (1.68 and 1.92
standard errors; docs/spans.md): picking the maximum first makes its test find a "better" weight far
more often than one time in twenty when none is.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from models import interaction_data, recency_prior, retrieval_metrics
from models.retrieval_metrics import RetrievalEvaluator

MIN_USERS = 20


@dataclass
class Backtest:
    """The newest span as a served model met it (see the module's docstring)."""

    known: Optional[RetrievalEvaluator]  # users with rows before the span, ranking their rows in it
    cold: Optional[RetrievalEvaluator]  # users new in the span
    latest: np.ndarray  # [num_users, history] each user's latest items before the span
    prior: np.ndarray  # [num_items] log(1 + interactions in the `days` before the span)
    unknown: np.ndarray  # [num_items] bool: items without a row before the span


def newest_span(rows: interaction_data.Split, num_users: int, num_items: int, span_from: int,
                history: int, days: int) -> Backtest:
    """rows: the train and eval interactions; span_from: the newest span's first timestamp."""
    user, item, timestamp = (np.asarray(a, np.int64) for a in (rows.user, rows.item, rows.timestamp))
    before = timestamp < span_from
    earlier = interaction_data.Split(user[before], item[before], timestamp[before])
    returning = np.zeros(num_users, bool)
    returning[earlier.user] = True
    unknown = np.ones(num_items, bool)
    unknown[earlier.item] = False
    unknown[0] = False  # padding: removed from every ranking anyway
    # Seen: each user's items before the span, and index 0 for everyone (never a recommendation).
    seen = (np.concatenate([earlier.user, np.arange(num_users)]),
            np.concatenate([earlier.item, np.zeros(num_users, np.int64)]))
    after = ~before & (user != 0)

    def group(mask) -> Optional[RetrievalEvaluator]:
        if not mask.any():
            return None
        return RetrievalEvaluator(num_items, seen, (user[mask], item[mask]))

    return Backtest(known=group(after & returning[user]), cold=group(after & ~returning[user]),
                    latest=interaction_data.latest_items(earlier, num_users, history),
                    prior=recency_prior.vector(earlier.item, earlier.timestamp, num_items, days),
                    unknown=unknown)


def pick(backtest: Backtest, score: Callable[[np.ndarray, np.ndarray], np.ndarray], cold_scores: np.ndarray,
         grid: Sequence[float] = recency_prior.GRID) -> Dict[str, Dict]:
    """{"known": ..., "cold": ...}, each {"users", and when there are MIN_USERS of them "weight" (the
    pick), "ndcg@10" (the curve by weight), "best" (the curve's best weight) and "paired" ({"mean",
    "standard_error", "z"} of best_u - largest_u, z the standard errors it had to beat)}. score(users, histories [B, H]) -> [B, num_items]: the
    served model's scores without a prior; cold_scores [1, num_items]: its scores for a cold user."""

    def served(scores: np.ndarray) -> np.ndarray:
        return np.where(backtest.unknown[None, :], -np.inf, scores)  # what it never saw: a miss

    groups = {"known": (backtest.known, lambda users: served(score(users, backtest.latest[users]))),
              "cold": (backtest.cold, lambda users: served(np.repeat(cold_scores, len(users), axis=0)))}
    picked = {}
    for name, (evaluator, scores) in groups.items():
        users = 0 if evaluator is None else int(evaluator.users.size)
        picked[name] = {"users": users}
        if users >= MIN_USERS:
            picked[name].update(_beyond_noise(scores, evaluator, backtest.prior, grid))
    return picked


def _beyond_noise(scores: Callable[[np.ndarray], np.ndarray], evaluator: RetrievalEvaluator, prior: np.ndarray,
                  grid: Sequence[float]) -> Dict:
    """{"weight", "ndcg@10", "best", "paired"}: the best weight of the grid if it beats the largest
    beyond the noise, else the largest."""
    per_user = {}
    best, curve = recency_prior.pick(scores, evaluator, prior, grid, per_user)
    largest = max(grid)
    difference = retrieval_metrics.paired(per_user[best] - per_user[largest])
    z = retrieval_metrics.noise_z(len(grid) - 1)  # every other weight was a candidate against the largest
    beyond = best != largest and difference["mean"] > z * difference["standard_error"]
    return {"weight": float(best if beyond else largest), "ndcg@10": curve, "best": best,
            "paired": {**{key: difference[key] for key in ("mean", "standard_error")}, "z": z}}
