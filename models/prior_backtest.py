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
new in the span is asked as a cold user (index 0, no history: the cold weight). The weight with the
best ndcg@10 is picked per group, 0 unless another is better. A group with fewer than MIN_USERS
users keeps the eval split's pick.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from models import interaction_data, recency_prior
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
    """{"known": ..., "cold": ...}, each {"users", and when there are MIN_USERS of them "weight" and
    "ndcg@10" (the curve by weight)}. score(users, histories [B, H]) -> [B, num_items]: the served
    model's scores without a prior; cold_scores [1, num_items]: its scores for a cold user."""

    def served(scores: np.ndarray) -> np.ndarray:
        return np.where(backtest.unknown[None, :], -np.inf, scores)  # what it never saw: a miss

    groups = {"known": (backtest.known, lambda users: served(score(users, backtest.latest[users]))),
              "cold": (backtest.cold, lambda users: served(np.repeat(cold_scores, len(users), axis=0)))}
    picked = {}
    for name, (evaluator, scores) in groups.items():
        users = 0 if evaluator is None else int(evaluator.users.size)
        picked[name] = {"users": users}
        if users >= MIN_USERS:
            weight, curve = recency_prior.pick(scores, evaluator, backtest.prior, grid)
            picked[name].update({"weight": weight, "ndcg@10": curve})
    return picked
